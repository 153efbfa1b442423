package graph

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"

	"switchboard/handler/switchboard"
)

// Problem types of CreateMeeting's errors: what the tenant admin must do.
const (
	TypeMeetingPermissionMissing = "meeting-permission-missing" // OnlineMeetings.ReadWrite.All (application) not granted
	TypeMeetingPolicyMissing     = "meeting-policy-missing"     // no application access policy for the organizer
	TypeMeetingUserNotFound      = "meeting-user-not-found"     // interact.o365UserId is no user of the tenant
	TypeMeetingFailed            = "meeting-failed"             // Graph failed or throttled
)

// Meeting is a Teams online meeting.
type Meeting struct {
	ID      string
	JoinURL string
}

// CreateMeeting creates a Teams meeting organised by the user organizer
// (POST /users/{organizer}/onlineMeetings) with the presence app's
// application permission OnlineMeetings.ReadWrite.All, which also needs an
// application access policy granted to the app for that user. Returns
// EFORBIDDEN (Type TypeMeetingPermissionMissing or TypeMeetingPolicyMissing,
// Field "interact.o365UserId" for the policy), ENOTFOUND
// (TypeMeetingUserNotFound, Field "interact.o365UserId"), EUNAVAILABLE
// (TypeMeetingFailed) when Graph or the sign-in failed otherwise; each
// message says what the tenant admin must do.
func (c *Client) CreateMeeting(ctx context.Context, tenant, organizer, subject string, start time.Time, d time.Duration) (Meeting, error) {
	const op = "graph.CreateMeeting"
	src := switchboard.PresenceSource(switchboard.SourceApplication)
	a, err := c.adapter(tenant, src)
	if err != nil {
		return Meeting{}, meetingError(op, organizer, classify(src, err))
	}
	u, err := url.Parse(c.base + "/users/" + url.PathEscape(organizer) + "/onlineMeetings")
	if err != nil {
		return Meeting{}, switchboard.Wrap(switchboard.EINTERNAL, op, err)
	}
	body := models.NewOnlineMeeting()
	body.SetSubject(&subject)
	st, end := start.UTC(), start.Add(d).UTC()
	body.SetStartDateTime(&st)
	body.SetEndDateTime(&end)
	ri := abs.NewRequestInformation()
	ri.Method = abs.POST
	ri.SetUri(*u)
	ri.Headers.TryAdd("Accept", "application/json")
	if err := ri.SetContentFromParsable(ctx, a, "application/json", body); err != nil {
		return Meeting{}, switchboard.Wrap(switchboard.EINTERNAL, op, err)
	}
	rctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	res, err := a.Send(rctx, ri, models.CreateOnlineMeetingFromDiscriminatorValue, errorMapping)
	if err != nil {
		return Meeting{}, meetingError(op, organizer, classify(src, err))
	}
	m, ok := res.(models.OnlineMeetingable)
	if !ok || deref(m.GetId()) == "" || deref(m.GetJoinWebUrl()) == "" {
		return Meeting{}, &switchboard.Error{
			Code:    switchboard.EUNAVAILABLE,
			Op:      op,
			Type:    TypeMeetingFailed,
			Message: "Microsoft Graph created no meeting with an id and a join URL",
		}
	}
	return Meeting{ID: deref(m.GetId()), JoinURL: deref(m.GetJoinWebUrl())}, nil
}

// meetingError turns a failed meeting creation into an error a tenant
// admin can act on.
func meetingError(op, organizer string, se *switchboard.SourceError) error {
	graphMsg := ""
	var ode *odataerrors.ODataError
	if errors.As(se.Err, &ode) && ode.GetErrorEscaped() != nil {
		graphMsg = strings.ToLower(deref(ode.GetErrorEscaped().GetMessage()))
	}
	switch {
	case se.Status == http.StatusNotFound:
		return &switchboard.Error{Code: switchboard.ENOTFOUND, Op: op, Type: TypeMeetingUserNotFound, Field: "interact.o365UserId", Err: se,
			Message: fmt.Sprintf(
				"interact.o365UserId %s is not a user of this tenant (Graph answered 404): set it to the object id of the user meetings are created for",
				organizer,
			)}
	case se.Status == http.StatusForbidden && strings.Contains(graphMsg, "application access policy"):
		return &switchboard.Error{Code: switchboard.EFORBIDDEN, Op: op, Type: TypeMeetingPolicyMissing, Field: "interact.o365UserId", Err: se,
			Message: fmt.Sprintf(
				"no application access policy lets the presence app create meetings for user %s: a Teams admin must run "+
					"New-CsApplicationAccessPolicy and Grant-CsApplicationAccessPolicy (see the README)",
				organizer,
			)}
	case se.Status == http.StatusForbidden || se.Reason == switchboard.SourcePermissionNotGranted:
		return &switchboard.Error{Code: switchboard.EFORBIDDEN, Op: op, Type: TypeMeetingPermissionMissing, Err: se,
			Message: "Microsoft Graph refused to create the meeting: a tenant admin must grant the application permission " +
				"OnlineMeetings.ReadWrite.All to the presence app"}
	}
	return &switchboard.Error{
		Code:    switchboard.EUNAVAILABLE,
		Op:      op,
		Type:    TypeMeetingFailed,
		Err:     se,
		Message: "the Teams meeting could not be created: " + se.Message,
	}
}
