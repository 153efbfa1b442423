package settings_test

import (
	"context"
	"errors"
	"testing"

	"switchboard/handler/acs"
	"switchboard/handler/secrets"
	"switchboard/handler/settings"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

type stubChecker struct{ err error }

func (c stubChecker) CheckUserFilter(context.Context, string, string) error { return c.err }

// ContactSearch answers from its copy and follows this process's writes at
// once.
func TestContactSearchFollowsWrites(t *testing.T) {
	s, err := settings.New(ctx, settings.Options{Tables: store.NewMemoryTables(), Secrets: secrets.Ephemeral(), ACS: acs.New(acs.Options{}), Filters: stubChecker{}})
	if err != nil {
		t.Fatal(err)
	}
	f, v, err := s.ContactSearch(ctx, tenant)
	if err != nil || f != "" || v != settings.TeamVisibilityAllMembers {
		t.Fatalf("defaults: %q, %q, %v", f, v, err)
	}
	if _, _, err := s.Patch(ctx, tenant, []byte(`{"attendantConsole":{"contactSearchFilter":"department eq 'Sales'","teamVisibility":"OwnMembers"}}`), ""); err != nil {
		t.Fatal(err)
	}
	if f, v, _ := s.ContactSearch(ctx, tenant); f != "department eq 'Sales'" || v != settings.TeamVisibilityOwnMembers {
		t.Errorf("after the patch: %q, %q; want the new filter and OwnMembers at once", f, v)
	}
}

// A check that cannot reach Graph saves the filter as unverified; Graph's
// refusal refuses the patch and writes nothing.
func TestPatchFilterCheckOutcomes(t *testing.T) {
	for _, c := range []struct {
		name  string
		err   error
		field string
		state string
	}{
		{"refused", &switchboard.Error{Code: switchboard.EINVALID, Message: "Invalid filter clause"}, "attendantConsole.contactSearchFilter", ""},
		{"forbidden", &switchboard.Error{Code: switchboard.EFORBIDDEN, Message: "403"}, "attendantConsole.contactSearchFilter", ""},
		{"unreachable", errors.New("dial tcp 127.0.0.1:1: connection refused"), "", settings.FilterUnverified},
		{"ok", nil, "", settings.FilterOK},
	} {
		s, err := settings.New(ctx, settings.Options{Tables: store.NewMemoryTables(), Secrets: secrets.Ephemeral(), ACS: acs.New(acs.Options{}), Filters: stubChecker{c.err}})
		if err != nil {
			t.Fatal(err)
		}
		view, _, err := s.Patch(ctx, tenant, []byte(`{"attendantConsole":{"contactSearchFilter":"department eq 'Sales'"}}`), "")
		if got := switchboard.ErrorField(err); got != c.field {
			t.Errorf("%s: error %v, want field %q", c.name, err, c.field)
		}
		if c.field != "" {
			if st, _ := s.Lookup(ctx, tenant); st.AttendantConsole.ContactSearchFilter != "" {
				t.Errorf("%s: the refused filter was saved", c.name)
			}
			continue
		}
		if ch := view.AttendantConsole.ContactSearchFilterCheck; ch == nil || ch.State != c.state {
			t.Errorf("%s: check %+v, want %s", c.name, ch, c.state)
		}
	}
}
