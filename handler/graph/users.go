package graph

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"

	"switchboard/handler/switchboard"
)

// maxUserPages bounds the pages one user search follows: Graph fills a page
// up to $top (at most 50 here) but may cut one short; three pages or the
// search's top, whichever comes first.
const maxUserPages = 3

// UserReadPermission is the application permission GET /users needs.
const UserReadPermission = "User.Read.All"

// FindUsers implements the attendant capability's Directory: GET /users?$filter=...
// &$count=true&$top=...&$select=... with ConsistencyLevel: eventual (the
// advanced query parameters endsWith and its kind need), with the presence
// app's application permission (User.Read.All). A 429 or 503 with a
// Retry-After that ends before ctx's deadline is waited out once.
func (c *Client) FindUsers(ctx context.Context, tenant, filter string, top int) ([]switchboard.Contact, error) {
	const op = "graph.FindUsers"
	var out []switchboard.Contact
	next := c.usersURL(filter, top, switchboard.ContactFields)
	for page := 0; next != "" && len(out) < top && page < maxUserPages; page++ {
		coll, err := c.usersPage(ctx, op, tenant, next)
		if err != nil {
			return nil, err
		}
		for _, u := range coll.GetValue() {
			if u == nil || u.GetId() == nil {
				continue
			}
			out = append(out, switchboard.Contact{
				ID: strings.ToLower(*u.GetId()), DisplayName: deref(u.GetDisplayName()), UserPrincipalName: deref(u.GetUserPrincipalName()),
				Mail: deref(u.GetMail()), JobTitle: deref(u.GetJobTitle()), Department: deref(u.GetDepartment()),
			})
		}
		next = deref(coll.GetOdataNextLink())
	}
	if len(out) > top {
		out = out[:top]
	}
	return out, nil
}

// CheckUserFilter runs filter alone (GET /users?$filter=<filter>&$top=1
// &$count=true, ConsistencyLevel: eventual) to learn whether Graph accepts
// it. Returns nil when it does, EINVALID with Graph's message when Graph
// refuses it (400), EFORBIDDEN naming User.Read.All when the app may not
// read users (403), EUNAVAILABLE when Graph cannot tell now (unreachable,
// 5xx, 429).
func (c *Client) CheckUserFilter(ctx context.Context, tenant, filter string) error {
	_, err := c.usersPage(ctx, "graph.CheckUserFilter", tenant, c.usersURL(filter, 1, []string{"id"}))
	return err
}

// usersURL is the first page's URL. Parameter names keep their $ (Graph
// accepts both); values are percent-encoded, spaces as %20.
func (c *Client) usersURL(filter string, top int, fields []string) string {
	esc := func(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }
	return c.base + "/users?$filter=" + esc(filter) + "&$count=true&$top=" + strconv.Itoa(top) + "&$select=" + esc(strings.Join(fields, ","))
}

// usersPage reads one page of users, waiting out one Retry-After when it
// fits in ctx's time.
func (c *Client) usersPage(ctx context.Context, op, tenant, link string) (models.UserCollectionResponseable, error) {
	src := switchboard.PresenceSource(switchboard.SourceApplication)
	u, err := url.Parse(link)
	if err != nil || !strings.EqualFold(u.Host, hostOf(c.base)) {
		// A next link elsewhere would carry the token away from Graph.
		return nil, switchboard.Errorf(switchboard.EUNAVAILABLE, op, "Graph sent an unusable next page link")
	}
	a, err := c.adapter(tenant, src)
	if err != nil {
		return nil, usersError(op, classify(src, err), err)
	}
	for attempt := 0; ; attempt++ {
		ri := abs.NewRequestInformation()
		ri.Method = abs.GET
		ri.SetUri(*u)
		ri.Headers.TryAdd("Accept", "application/json")
		ri.Headers.TryAdd("ConsistencyLevel", "eventual")
		pctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
		res, err := a.Send(pctx, ri, models.CreateUserCollectionResponseFromDiscriminatorValue, errorMapping)
		cancel()
		if err == nil {
			coll, ok := res.(models.UserCollectionResponseable)
			if !ok {
				return nil, switchboard.Errorf(switchboard.EUNAVAILABLE, op, "Graph answered without a user list")
			}
			return coll, nil
		}
		se := classify(src, err)
		if attempt == 0 && se.Reason == switchboard.SourceThrottled && fitsBefore(ctx, se.RetryAfter) {
			t := time.NewTimer(se.RetryAfter)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, usersError(op, se, err)
			case <-t.C:
			}
			continue
		}
		return nil, usersError(op, se, err)
	}
}

// fitsBefore reports whether waiting d still leaves ctx time for the call.
func fitsBefore(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return false
	}
	deadline, ok := ctx.Deadline()
	return !ok || time.Until(deadline) > d+time.Second
}

func hostOf(base string) string {
	u, err := url.Parse(base)
	if err != nil {
		return ""
	}
	return u.Host
}

// usersError turns a failed user read into a domain error: Graph's own
// message for a refused filter, the missing permission for a 403.
func usersError(op string, se *switchboard.SourceError, err error) error {
	switch {
	case se.Status == http.StatusBadRequest:
		msg := graphMessage(err)
		if msg == "" {
			msg = se.Message
		}
		return &switchboard.Error{Code: switchboard.EINVALID, Op: op, Message: msg, Err: se}
	case se.Status == http.StatusForbidden || se.Reason == switchboard.SourcePermissionNotGranted:
		return &switchboard.Error{Code: switchboard.EFORBIDDEN, Op: op, Err: se,
			Message: fmt.Sprintf("Microsoft Graph refused to read the directory: a tenant admin must grant the application permission %s to the "+
				"presence app", UserReadPermission)}
	}
	return &switchboard.Error{Code: switchboard.EUNAVAILABLE, Op: op, Message: "Microsoft Graph could not search the directory now: " + se.Message, Err: se}
}

// graphMessage is the error message of Graph's OData reply, if err is one.
func graphMessage(err error) string {
	var ode *odataerrors.ODataError
	if errors.As(err, &ode) {
		if m := ode.GetErrorEscaped(); m != nil {
			return firstLine(deref(m.GetMessage()))
		}
	}
	return ""
}
