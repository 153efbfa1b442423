package e2e_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"

	"switchboard/handler/dev/graphsim"
	"switchboard/handler/internal/e2e"
)

// The Attendant Console's contact search through the local runner and the
// real handler, on Azurite, against the Graph simulator: a filter is
// checked when saved (a broken one refused with Graph's message), the
// contacts are the tenant filter ANDed with the search, with their stored
// presence, and services are found whatever the filter says, with member
// lists by the team visibility relative to ?asUser=.
func TestAttendantSearchEndToEnd(t *testing.T) {
	const (
		tenant = "9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d"
		app    = "9a1b2c3d-0000-4000-8000-0000000000a1"
		secret = "e2e-secret"
	)
	// Departments go round Support, Sales, Billing, Reception: agents 1
	// and 5 are Support.
	tn := e2e.NewTenant(t, e2e.TenantOptions{Sim: graphsim.Options{Seed: 13}, ID: tenant, App: app, Secret: secret,
		Consent: graphsim.TenantOptions{UserReadConsent: true}, Users: 8, Domain: "contoso.onmicrosoft.com"})
	agents := tn.Users
	tn.Sim.SetPresence(tenant, agents[4].ID, "Busy", "InACall", false)

	env := tn.Start(t, e2e.Options{})
	base := "/api/tenants/" + tenant
	put := func(id, name string, us []graphsim.User) {
		var members []map[string]any
		for _, u := range us {
			members = append(members, map[string]any{"userId": u.ID})
		}
		if status, _, raw := env.Do(t, http.MethodPut, base+"/services/"+id, map[string]any{"name": name, "members": members}); status != http.StatusCreated {
			t.Fatalf("PUT %s: %d %s", id, status, raw)
		}
	}
	put("support", "Support", agents[:4])
	put("sales", "Sales", agents[4:])
	env.Invoke(t, "PresencePoll") // application permission: every agent's presence stored

	patch := func(body string) (int, []byte) {
		status, _, raw := env.Do(t, http.MethodPatch, base+"/settings", body, "Content-Type", "application/merge-patch+json")
		return status, raw
	}
	status, raw := patch(`{"attendantConsole":{"contactSearchFilter":"startswith(department,'Supp') and","teamVisibility":"OwnMembers"}}`)
	var problem struct{ Field, Detail string }
	if json.Unmarshal(raw, &problem); status != http.StatusBadRequest || problem.Field != "attendantConsole.contactSearchFilter" || !strings.Contains(problem.Detail, "Syntax error") {
		t.Errorf("broken filter: %d %s; want 400 naming the field with Graph's message", status, raw)
	}
	status, raw = patch(`{"attendantConsole":{"contactSearchFilter":"endsWith(userPrincipalName,'onmicrosoft.com') and department eq 'Support'","teamVisibility":"OwnMembers"}}`)
	if status != http.StatusOK || !strings.Contains(string(raw), `"contactSearchFilterCheck":{"state":"ok"`) {
		t.Fatalf("good filter: %d %s; want 200 with the check ok", status, raw)
	}
	status, _, raw = env.Do(t, http.MethodPost, base+"/settings/attendant-filter-check", map[string]any{"filter": "nickName eq 'x'"})
	if status != http.StatusOK || !strings.Contains(string(raw), `"state":"invalid"`) || !strings.Contains(string(raw), "nickName") {
		t.Errorf("filter check: %d %s; want invalid with Graph's message", status, raw)
	}

	type reply struct {
		Contacts []struct {
			ID       string `json:"id"`
			Presence *struct {
				Activity string `json:"activity"`
			} `json:"presence"`
		} `json:"contacts"`
		Services []struct {
			ServiceID  string            `json:"serviceId"`
			Members    int               `json:"members"`
			Available  int               `json:"available"`
			MemberList []json.RawMessage `json:"memberList"`
		} `json:"services"`
		ContactsError any `json:"contactsError"`
	}
	search := func(q string) reply {
		var r reply
		getJSON(t, env, base+"/attendant/search?q="+url.QueryEscape(q)+"&asUser="+agents[0].ID, &r)
		return r
	}
	// Contacts: the Support agents (1 and 5) only, with their presence.
	r := search("agent")
	var ids []string
	for _, c := range r.Contacts {
		ids = append(ids, c.ID)
		if c.Presence == nil {
			t.Errorf("contact %s without its stored presence", c.ID)
		}
		if c.ID == agents[4].ID && (c.Presence == nil || c.Presence.Activity != "InACall") {
			t.Errorf("agent 5's presence %+v, want InACall", c.Presence)
		}
	}
	sort.Strings(ids)
	want := []string{agents[0].ID, agents[4].ID}
	sort.Strings(want)
	if strings.Join(ids, ",") != strings.Join(want, ",") || r.ContactsError != nil {
		t.Errorf("contacts %v (error %v), want agents 1 and 5 of Support", ids, r.ContactsError)
	}
	// A search text that tries to leave its literal finds nobody outside.
	if r := search("agent') or (department eq 'Sales"); len(r.Contacts) != 0 || r.ContactsError != nil {
		t.Errorf("injection: contacts %+v, error %v; want none", r.Contacts, r.ContactsError)
	}
	// Services: both contain "s", whatever the filter; the attendant
	// (agent 1) is a member of Support only.
	r = search("S")
	if len(r.Services) != 2 || r.Services[0].ServiceID != "sales" || r.Services[1].ServiceID != "support" {
		t.Fatalf("services %+v, want sales and support", r.Services)
	}
	if r.Services[0].MemberList != nil || len(r.Services[1].MemberList) != 4 {
		t.Errorf("OwnMembers: sales list %v, support list %d; want none and 4", r.Services[0].MemberList, len(r.Services[1].MemberList))
	}
	if s := r.Services[0]; s.Members != 4 || s.Available != 3 {
		t.Errorf("sales: %d members, %d available; want 4 and 3 (agent 5 in a call)", s.Members, s.Available)
	}
}
