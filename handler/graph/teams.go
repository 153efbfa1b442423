package graph

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models"

	"switchboard/handler/switchboard"
)

// maxMemberPages bounds the pages one TeamMembers call follows: Graph
// pages team members by a few hundred at most, and a team has at most
// 25,000 members.
const maxMemberPages = 1000

// TeamMembers returns the Entra object ids of a Microsoft Teams team's
// members (GET /teams/{id}/members, every page). It reads with the presence
// app's application permission, which needs TeamMember.Read.All
// (application) consented in the tenant. It implements
// routing.TeamDirectory: returns ENOTFOUND when there is no such team,
// EFORBIDDEN when the permission is missing, EUNAVAILABLE when Graph or the
// sign-in failed otherwise (throttled, down, not configured).
func (c *Client) TeamMembers(ctx context.Context, tenant, teamID string) ([]string, error) {
	const op = "graph.TeamMembers"
	src := switchboard.PresenceSource(switchboard.SourceApplication)
	a, err := c.adapter(tenant, src)
	if err != nil {
		return nil, teamError(op, teamID, classify(src, err))
	}
	next := c.base + "/teams/" + url.PathEscape(teamID) + "/members"
	var ids []string
	for page := 0; next != ""; page++ {
		if page == maxMemberPages {
			return nil, switchboard.Errorf(switchboard.EUNAVAILABLE, op, "team %s: more than %d pages of members", teamID, maxMemberPages)
		}
		u, err := url.Parse(next)
		if err != nil {
			return nil, switchboard.Errorf(switchboard.EUNAVAILABLE, op, "team %s: Graph sent an unusable next page link", teamID)
		}
		ri := abs.NewRequestInformation()
		ri.Method = abs.GET
		ri.SetUri(*u)
		ri.Headers.TryAdd("Accept", "application/json")
		pctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
		res, err := a.Send(pctx, ri, models.CreateConversationMemberCollectionResponseFromDiscriminatorValue, errorMapping)
		cancel()
		if err != nil {
			return nil, teamError(op, teamID, classify(src, err))
		}
		coll, ok := res.(models.ConversationMemberCollectionResponseable)
		if !ok {
			return nil, switchboard.Errorf(switchboard.EUNAVAILABLE, op, "team %s: Graph answered without a member list", teamID)
		}
		for _, m := range coll.GetValue() {
			// Members are Entra users (aadUserConversationMember); other
			// kinds (anonymous guests, skype users) cannot be routed to.
			if au, ok := m.(models.AadUserConversationMemberable); ok && au.GetUserId() != nil && *au.GetUserId() != "" {
				ids = append(ids, *au.GetUserId())
			}
		}
		next = deref(coll.GetOdataNextLink())
	}
	return ids, nil
}

// teamError turns a Graph failure of a member read into a domain error.
func teamError(op, teamID string, se *switchboard.SourceError) error {
	switch {
	case se.Status == http.StatusNotFound:
		return &switchboard.Error{Code: switchboard.ENOTFOUND, Op: op, Message: fmt.Sprintf("there is no Microsoft Teams team %s", teamID), Err: se}
	case se.Status != http.StatusForbidden && se.Reason == switchboard.SourcePermissionNotGranted:
		// The sign-in itself was refused: the tenant has not consented.
		return &switchboard.Error{Code: switchboard.EFORBIDDEN, Op: op, Err: se,
			Message: fmt.Sprintf("the members of team %s cannot be read: %s; a tenant admin must grant admin consent to the presence app, with the "+
				"application permission TeamMember.Read.All", teamID, se.Message)}
	case se.Status == http.StatusForbidden || se.Reason == switchboard.SourcePermissionNotGranted:
		return &switchboard.Error{Code: switchboard.EFORBIDDEN, Op: op, Err: se,
			Message: fmt.Sprintf("Microsoft Graph refused to list the members of team %s: a tenant admin must grant the application permission "+
				"TeamMember.Read.All to the presence app", teamID)}
	}
	return &switchboard.Error{Code: switchboard.EUNAVAILABLE, Op: op, Message: "the members of team " + teamID + " could not be read: " + se.Message, Err: se}
}
