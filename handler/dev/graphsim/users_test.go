package graphsim

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func listUsers(t *testing.T, s *Sim, tok, rawQuery string, eventual bool) (int, string, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.GraphURL()+"/users?"+rawQuery, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if eventual {
		req.Header.Set("ConsistencyLevel", "eventual")
	}
	resp, err := s.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, resp.Header.Get("Content-Type"), m
}

func errorCode(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func TestListUsers(t *testing.T) {
	s, _ := newSim(t)
	s.AddTenant(testTenant, TenantOptions{DelegatedConsent: true, AppConsent: true, UserReadConsent: true, Guests: []string{"p1@ops.example"}})
	tok := appToken(t, s)
	q := func(filter string, extra string) string {
		return "$filter=" + url.QueryEscape(filter) + extra
	}

	// 700 agents of contoso.example; departments go round Support, Sales,
	// Billing, Reception: 175 Support.
	status, _, m := listUsers(t, s, tok, q("department eq 'Support'", "&$count=true&$top=100&$select=id,department"), false)
	if status != 200 || m["@odata.count"] != float64(175) || len(m["value"].([]any)) != 100 || m["@odata.nextLink"] == nil {
		t.Fatalf("first page: %d count %v, %d values, next %v", status, m["@odata.count"], len(m["value"].([]any)), m["@odata.nextLink"])
	}
	first := m["value"].([]any)[0].(map[string]any)
	if _, ok := first["displayName"]; ok || first["department"] != "Support" {
		t.Errorf("$select=id,department gave %v", first)
	}
	next, _ := url.Parse(m["@odata.nextLink"].(string))
	status, _, m = listUsers(t, s, tok, next.RawQuery, false)
	if status != 200 || len(m["value"].([]any)) != 75 || m["@odata.nextLink"] != nil {
		t.Errorf("second page: %d, %d values, next %v; want the last 75", status, len(m["value"].([]any)), m["@odata.nextLink"])
	}

	// endsWith is an advanced query: ConsistencyLevel eventual and $count.
	seed := "endsWith(userPrincipalName,'contoso.example') and preferredLanguage eq 'en-GB'"
	for _, c := range []struct {
		name     string
		query    string
		eventual bool
		status   int
		code     string
	}{
		{"advanced without header", q(seed, "&$count=true"), false, 400, "Request_UnsupportedQuery"},
		{"advanced without $count", q(seed, ""), true, 400, "Request_UnsupportedQuery"},
		{"advanced", q(seed, "&$count=true&$top=5"), true, 200, ""},
		{"syntax error", q("startswith(displayName,'a'", ""), false, 400, "BadRequest"},
		{"unknown property", q("nickName eq 'a'", ""), false, 400, "BadRequest"},
		{"$top 0", "$top=0", false, 400, "Request_BadRequest"},
		{"$top 1000", "$top=1000", false, 400, "Request_BadRequest"},
		{"unknown $select", "$select=password", false, 400, "BadRequest"},
		{"bad page token", "$skiptoken=bm90IGEgdG9rZW4", false, 400, "Request_BadRequest"},
	} {
		status, ct, m := listUsers(t, s, tok, c.query, c.eventual)
		if status != c.status || errorCode(m) != c.code || !strings.HasPrefix(ct, "application/json") {
			t.Errorf("%s: %d %s %v; want %d %q as JSON", c.name, status, ct, m["error"], c.status, c.code)
		}
		if c.code != "" {
			if e, _ := m["error"].(map[string]any); e == nil || e["message"] == "" {
				t.Errorf("%s: no message", c.name)
			}
		}
	}

	// Without User.Read.All an app token may not list users.
	s.AddTenant(testTenant, TenantOptions{AppConsent: true})
	if status, _, m := listUsers(t, s, tok, "$top=1", false); status != 403 {
		t.Errorf("without User.Read.All: %d %v, want 403", status, m)
	}
}
