package settings

import (
	"context"
	"errors"
	"time"

	"switchboard/handler/switchboard"
)

// FilterChecker asks Microsoft Graph whether it accepts a contact search
// filter. The Graph adapter implements it; main wires it in.
type FilterChecker interface {
	// CheckUserFilter runs the filter alone against the tenant's
	// directory. Returns nil when Graph accepts it, EINVALID with Graph's
	// message when Graph refuses it, EFORBIDDEN when the app lacks the
	// permission to read users, anything else when Graph cannot tell now.
	CheckUserFilter(ctx context.Context, tenantID, filter string) error
}

// States and reasons of a contact search filter check.
const (
	FilterOK                      = switchboard.FilterOK
	FilterUnverified              = switchboard.FilterUnverified
	FilterInvalid                 = switchboard.FilterInvalid
	FilterReasonInvalid           = switchboard.FilterReasonInvalid
	FilterReasonPermissionMissing = switchboard.FilterReasonPermissionMissing
)

// UserReadPermission is the application permission the contact search and
// its filter check need.
const UserReadPermission = "User.Read.All"

// filterCheckTimeout bounds one check: a PATCH waits for it.
const filterCheckTimeout = 10 * time.Second

// FilterCheck is the outcome of checking a contact search filter.
type FilterCheck = switchboard.FilterCheck

// runFilterCheck asks Graph about filter. A refusal is a FilterCheck in
// state invalid with its reason and Graph's message.
func (s *Service) runFilterCheck(ctx context.Context, tenant, filter string) (FilterCheck, error) {
	fc := s.o.Filters
	at := s.o.Now().UTC().Round(time.Second)
	if fc == nil {
		return FilterCheck{State: FilterUnverified, At: at, Message: "not checked: this deployment has no Microsoft Graph access configured " +
			"(PRESENCE_APP_CLIENT_ID, PRESENCE_APP_CLIENT_SECRET)"}, nil
	}
	cctx, cancel := context.WithTimeout(ctx, filterCheckTimeout)
	defer cancel()
	err := fc.CheckUserFilter(cctx, tenant, filter)
	switch {
	case err == nil:
		return FilterCheck{State: FilterOK, At: at}, nil
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return FilterCheck{}, switchboard.Wrap(switchboard.EUNAVAILABLE, "settings.CheckFilter", err)
	case switchboard.IsCode(err, switchboard.EINVALID):
		return FilterCheck{State: FilterInvalid, At: at, Reason: FilterReasonInvalid, Message: switchboard.ErrorMessage(err)}, nil
	case switchboard.IsCode(err, switchboard.EFORBIDDEN):
		return FilterCheck{State: FilterInvalid, At: at, Reason: FilterReasonPermissionMissing,
			Message: "Microsoft Graph refused to read the directory: a tenant admin must grant the application " +
				"permission " + UserReadPermission + " to the presence app"}, nil
	}
	s.o.Log.Warn("settings: contact search filter not verified", "tenant", tenant, "err", err)
	return FilterCheck{State: FilterUnverified, At: at, Message: "Microsoft Graph could not be asked now; the filter is saved " +
		"unchecked: " + switchboard.ErrorMessage(err)}, nil
}

const filterField = "attendantConsole.contactSearchFilter"

// errFilterChanged stops recording a check of a filter replaced meanwhile.
var errFilterChanged = errors.New("the contact search filter changed during its check")

// refusal is the PATCH error for a filter whose check found it invalid.
func refusal(c FilterCheck) error {
	if c.Reason == FilterReasonPermissionMissing {
		return &switchboard.Error{Code: switchboard.EINVALID, Op: "settings.Patch", Field: filterField, Type: "graph-permission-missing",
			Message: filterField + " cannot be checked: " + c.Message}
	}
	return &switchboard.Error{Code: switchboard.EINVALID, Op: "settings.Patch", Field: filterField, Type: "contact-search-filter-invalid",
		Message: "Microsoft Graph refused " + filterField, Detail: c.Message}
}

// CheckFilter checks a contact search filter against Graph without saving
// it. Without a filter it checks the stored one and records the outcome as
// its attendantConsole.contactSearchFilterCheck (so a filter saved
// unverified can be verified later; one Graph now refuses shows as
// invalid). Returns EINVALID (field filter) for a malformed filter (too
// long, several lines, unbalanced quotes or parentheses) or for none given
// with none stored; a check that ran returns its outcome, whatever it is.
func (s *Service) CheckFilter(ctx context.Context, tenant, filter string) (FilterCheck, error) {
	const op = "settings.CheckFilter"
	stored := filter == ""
	if stored {
		st, err := s.lookupPlain(ctx, tenant)
		if err != nil {
			return FilterCheck{}, err
		}
		if filter = st.AttendantConsole.ContactSearchFilter; filter == "" {
			return FilterCheck{}, switchboard.FieldError(op, "filter", "filter is required: no %s is stored to check", filterField)
		}
	} else if err := checkFilter(op, "filter", filter); err != nil {
		return FilterCheck{}, err
	}
	c, err := s.runFilterCheck(ctx, tenant, filter)
	if err != nil {
		return c, err
	}
	s.o.Log.Info("contact search filter checked", "tenant", tenant, "stored", stored, "state", c.State, "reason", c.Reason)
	if stored {
		// Recorded only if the filter is still the one checked.
		_, err := s.update(ctx, op, tenant, "", nil, func(cur Settings) (Settings, error) {
			if cur.AttendantConsole.ContactSearchFilter != filter {
				return cur, errFilterChanged
			}
			cur.AttendantConsole.ContactSearchFilterCheck = c
			return cur, nil
		})
		if err != nil && !errors.Is(err, errFilterChanged) {
			return c, err
		}
	}
	return c, nil
}

// ContactSearch returns attendantConsole.contactSearchFilter and
// attendantConsole.teamVisibility (the defaults when never set). It
// implements attendant.Settings. It is on every search's path, before the
// Graph call, so it answers from an in-process copy (follow.Cache): this
// process's writes at once, another instance's within about a second (the
// copy is read again in the background once it is a second old, in line
// once it is 10 s old).
func (s *Service) ContactSearch(ctx context.Context, tenant string) (string, string, error) {
	ac, err := s.search.Get(ctx, tenant)
	return ac.ContactSearchFilter, ac.TeamVisibility, err
}

// How fresh ContactSearch's copies are kept.
const (
	searchRefresh = time.Second
	searchMaxLag  = 10 * time.Second
)

func (s *Service) loadSearch(ctx context.Context, tenant string, _ AttendantConsole) (AttendantConsole, error) {
	st, err := s.lookupPlain(ctx, tenant) // the search needs no secret
	return st.AttendantConsole, err
}

// balanced reports whether a filter's string literals end and its
// parentheses pair up outside them: an admin's filter is put in
// parentheses before the search is ANDed to it, and must not close them.
func balanced(f string) bool {
	depth, inLiteral := 0, false
	for i := 0; i < len(f); i++ {
		switch c := f[i]; {
		case inLiteral && c == '\'':
			if i+1 < len(f) && f[i+1] == '\'' {
				i++
				continue
			}
			inLiteral = false
		case inLiteral:
		case c == '\'':
			inLiteral = true
		case c == '(':
			depth++
		case c == ')':
			if depth--; depth < 0 {
				return false
			}
		}
	}
	return depth == 0 && !inLiteral
}
