// Package attendant is the Attendant Console's contact search (SPEC
// section 13): directory users found through Microsoft Graph within the
// tenant's own filter, with their stored presence, and the services whose
// name or id match, with their availability and, as the tenant's team
// visibility allows, their members.
//
// The attendant's text only ever appears inside OData string literals
// (every ' doubled), and the tenant's filter is ANDed around it, so a
// search can narrow the tenant's filter but never widen it.
package attendant

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"switchboard/handler/switchboard"
)

// Bounds of a search.
const (
	MinQueryLength = switchboard.AttendantMinQueryLength
	MaxQueryLength = switchboard.AttendantMaxQueryLength
	MinTop         = switchboard.AttendantMinTop
	MaxTop         = switchboard.AttendantMaxTop
	DefaultTop     = switchboard.AttendantDefaultTop
)

// Team visibilities (attendantConsole.teamVisibility).
const (
	NoMembers  = "NoMembers"
	OwnMembers = "OwnMembers"
	AllMembers = "AllMembers"
)

// Reasons of a ContactsError.
const (
	ReasonFilterInvalid     = switchboard.ContactsFilterInvalid
	ReasonPermissionMissing = switchboard.ContactsPermissionMissing
	ReasonUnavailable       = switchboard.ContactsUnavailable
)

// The search's domain types are the shared vocabulary's.
type (
	Contact       = switchboard.Contact
	Query         = switchboard.AttendantQuery
	Result        = switchboard.AttendantResult
	ContactResult = switchboard.ContactResult
	ServiceResult = switchboard.ServiceMatch
	ContactsError = switchboard.ContactsError
)

// Directory finds users in a tenant's directory: Microsoft Graph
// GET /users with $filter, $count=true, $top, $select and ConsistencyLevel:
// eventual, through the presence app's application permission. The Graph
// adapter implements it.
type Directory interface {
	// FindUsers returns at most top users matching filter. Returns
	// EINVALID with Graph's message when Graph refuses the filter,
	// EFORBIDDEN when the app lacks the permission (User.Read.All),
	// EUNAVAILABLE when Graph cannot answer now (unreachable, 5xx, 429
	// beyond what ctx leaves time to wait for).
	FindUsers(ctx context.Context, tenantID, filter string, top int) ([]Contact, error)
}

// Settings gives a tenant's Attendant Console settings. The settings
// capability implements it.
type Settings interface {
	// ContactSearch returns attendantConsole.contactSearchFilter ("" for
	// none) and attendantConsole.teamVisibility.
	ContactSearch(ctx context.Context, tenantID string) (filter, visibility string, err error)
}

// WaitingCounts tells how many conversations wait in each service's queue.
// This is where the distribution capability (SPEC section 10) plugs in;
// until it is wired, every service shows waiting 0.
type WaitingCounts interface {
	// Waiting returns the number of waiting conversations by service id
	// (a service absent has none).
	Waiting(ctx context.Context, tenantID string) (map[string]int, error)
}

// Options configures a Service.
type Options struct {
	// Directory is Graph; nil when the deployment has no presence app
	// (contacts then come back empty with a contactsError).
	Directory Directory
	Services  switchboard.Availability
	Presence  switchboard.PresenceStore
	Settings  Settings
	// Waiting is the distribution capability's queue lengths; nil: 0.
	Waiting WaitingCounts
	// GraphTimeout bounds the contact search within a request (default
	// 10 s): services come back even when Graph does not.
	GraphTimeout time.Duration
	Log          *slog.Logger
}

// Service answers searches.
type Service struct{ o Options }

// New returns a Service.
func New(o Options) (*Service, error) {
	switch {
	case o.Services == nil:
		return nil, fmt.Errorf("attendant: no services")
	case o.Presence == nil:
		return nil, fmt.Errorf("attendant: no presence store")
	case o.Settings == nil:
		return nil, fmt.Errorf("attendant: no settings")
	}
	if o.GraphTimeout <= 0 {
		o.GraphTimeout = 10 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Service{o: o}, nil
}

// Literal returns s as an OData string literal: quoted, every ' doubled,
// so nothing in s can end the literal.
func Literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// searchProperties are the properties a search matches the text's start
// against.
var searchProperties = []string{"displayName", "givenName", "surname", "mail", "userPrincipalName"}

// SearchFilter returns the $filter of a search for text: the text's start
// against each of the search properties, ORed.
func SearchFilter(text string) string {
	lit := Literal(text)
	parts := make([]string, len(searchProperties))
	for i, p := range searchProperties {
		parts[i] = "startswith(" + p + "," + lit + ")"
	}
	return strings.Join(parts, " or ")
}

// Filter returns the $filter Graph receives: (tenant) and (search) when the
// tenant has a filter, else the search alone.
func Filter(tenantFilter, text string) string {
	search := SearchFilter(text)
	if strings.TrimSpace(tenantFilter) == "" {
		return search
	}
	return "(" + tenantFilter + ") and (" + search + ")"
}

// CheckQuery validates q and returns it with Top defaulted. Returns
// EINVALID naming q or top.
func CheckQuery(q Query) (Query, error) {
	const op = "attendant.Search"
	n := utf8.RuneCountInString(q.Text)
	switch {
	case strings.TrimSpace(q.Text) == "":
		return q, switchboard.FieldError(op, "q", "q is required: the text to search for, %d to %d characters", MinQueryLength, MaxQueryLength)
	case !utf8.ValidString(q.Text):
		return q, switchboard.FieldError(op, "q", "q is not valid UTF-8 text")
	case n > MaxQueryLength:
		return q, switchboard.FieldError(op, "q", "q must be %d to %d characters; got %d", MinQueryLength, MaxQueryLength, n)
	case strings.IndexFunc(q.Text, unicode.IsControl) >= 0:
		return q, switchboard.FieldError(op, "q", "q must be one line of text without control characters")
	}
	if q.Top == 0 {
		q.Top = DefaultTop
	}
	if q.Top < MinTop || q.Top > MaxTop {
		return q, switchboard.FieldError(op, "top", "top must be an integer from %d to %d; got %d", MinTop, MaxTop, q.Top)
	}
	return q, nil
}

// Search finds contacts and services for the attendant. Graph failures are
// reported in Result.ContactsError, never as an error: the services still
// come back. Returns EINVALID (field q or top) for a query CheckQuery
// refuses, EUNAVAILABLE when the settings or the services cannot be read.
func (s *Service) Search(ctx context.Context, tenant string, q Query) (Result, error) {
	const op = "attendant.Search"
	q, err := CheckQuery(q)
	if err != nil {
		return Result{}, err
	}
	var (
		wg                   sync.WaitGroup
		filter, visibility   string
		settingsErr          error
		contacts             []Contact
		contactsErr          *ContactsError
		services             []switchboard.ServiceAvailability
		servicesErr, waitErr error
		waiting              map[string]int
	)
	wg.Add(3)
	go func() {
		defer wg.Done()
		filter, visibility, settingsErr = s.o.Settings.ContactSearch(ctx, tenant)
		if settingsErr != nil {
			return
		}
		contacts, contactsErr = s.contacts(ctx, tenant, Filter(filter, q.Text), q.Top)
	}()
	go func() {
		defer wg.Done()
		services, servicesErr = s.o.Services.ServicesAvailability(ctx, tenant)
	}()
	go func() {
		defer wg.Done()
		// The distribution capability's queue lengths plug in here.
		if s.o.Waiting != nil {
			waiting, waitErr = s.o.Waiting.Waiting(ctx, tenant)
		}
	}()
	wg.Wait()
	if settingsErr != nil {
		return Result{}, switchboard.Wrap(switchboard.EUNAVAILABLE, op, settingsErr)
	}
	if servicesErr != nil {
		return Result{}, switchboard.Wrap(switchboard.EUNAVAILABLE, op, servicesErr)
	}
	if waitErr != nil {
		// Waiting counts are a hint; a search is not refused for them.
		s.o.Log.Warn("attendant: waiting counts unavailable", "tenant", tenant, "err", waitErr)
		waiting = nil
	}

	res := Result{Contacts: []ContactResult{}, Services: []ServiceResult{}, ContactsError: contactsErr}
	if len(contacts) > 0 {
		ids := make([]string, len(contacts))
		for i, c := range contacts {
			ids[i] = c.ID
		}
		readings, err := s.o.Presence.Readings(ctx, tenant, ids)
		if err != nil {
			return Result{}, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
		}
		for _, c := range contacts {
			cr := ContactResult{Contact: c}
			if p, ok := readings[c.ID]; ok {
				cr.Presence = &p
			}
			res.Contacts = append(res.Contacts, cr)
		}
	}
	// Services match whatever the tenant's filter says: the filter limits
	// the directory, not the tenant's own services.
	for _, svc := range services {
		if !Matches(svc, q.Text) {
			continue
		}
		sr := ServiceResult{ServiceID: svc.ServiceID, Name: svc.Name, Members: len(svc.Members), Waiting: waiting[svc.ServiceID]}
		member := false
		for _, m := range svc.Members {
			if m.Eligible {
				sr.Available++
			}
			member = member || (q.Attendant != "" && m.UserID == q.Attendant)
		}
		if visibility == AllMembers || (visibility == OwnMembers && member) {
			sr.MemberList = slices.Clone(svc.Members)
		}
		res.Services = append(res.Services, sr)
	}
	slices.SortStableFunc(res.Services, func(a, b ServiceResult) int {
		if c := strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)); c != 0 {
			return c
		}
		return strings.Compare(a.ServiceID, b.ServiceID)
	})
	return res, nil
}

// Matches reports whether a service is found by text: its name contains
// it, or its id starts with it (both case-insensitive).
func Matches(svc switchboard.ServiceAvailability, text string) bool {
	t := strings.ToLower(text)
	return strings.Contains(strings.ToLower(svc.Name), t) || strings.HasPrefix(strings.ToLower(svc.ServiceID), t)
}

// contacts asks the directory, within the Graph budget, and turns its
// failure into a ContactsError.
func (s *Service) contacts(ctx context.Context, tenant, filter string, top int) ([]Contact, *ContactsError) {
	if s.o.Directory == nil {
		return nil, &ContactsError{Reason: ReasonUnavailable, Message: "contact search is not available: the deployment has no presence app " +
			"(PRESENCE_APP_CLIENT_ID, PRESENCE_APP_CLIENT_SECRET) to read the directory with"}
	}
	ctx, cancel := context.WithTimeout(ctx, s.o.GraphTimeout)
	defer cancel()
	users, err := s.o.Directory.FindUsers(ctx, tenant, filter, top)
	if err == nil {
		if len(users) > top {
			users = users[:top]
		}
		return users, nil
	}
	ce := &ContactsError{Reason: ReasonUnavailable, Message: switchboard.ErrorMessage(err)}
	switch switchboard.ErrorCode(err) {
	case switchboard.EINVALID:
		ce.Reason = ReasonFilterInvalid
	case switchboard.EFORBIDDEN:
		ce.Reason = ReasonPermissionMissing
	default:
		s.o.Log.Warn("attendant: contact search failed", "tenant", tenant, "err", err)
	}
	return nil, ce
}
