package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"switchboard/handler/switchboard"
)

const tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"

// The test router's own route gets a row in the route → roles table.
func init() {
	routeAccess["POST /api/tenants/{t}/things/{id}"] = access{roles: []string{switchboard.RoleAdmin}}
}

type fakeVerifier struct{ tid string }

func (f fakeVerifier) Verify(ctx context.Context, token string) (switchboard.Principal, error) {
	if token != "good" {
		return switchboard.Principal{}, switchboard.Errorf(switchboard.EUNAUTHORIZED, "auth", "the token is expired")
	}
	return switchboard.Principal{TenantID: f.tid, Roles: []string{switchboard.RoleAdmin}}, nil
}

type problemBody struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Field  string `json:"field"`
}

func do(t *testing.T, h http.Handler, method, path, body string, hdr ...string) (*httptest.ResponseRecorder, problemBody) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var p problemBody
	if rec.Code >= 400 {
		if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("%s %s: Content-Type %q, want application/problem+json", method, path, ct)
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
			t.Errorf("%s %s: problem body is not JSON: %s", method, path, rec.Body)
		}
	}
	return rec, p
}

func newTestRouter(v switchboard.Verifier) *Router {
	rt := NewRouter(slog.New(slog.NewTextHandler(io.Discard, nil)), v)
	rt.Anonymous("GET /api/health", func(w http.ResponseWriter, r *http.Request) error {
		return WriteJSON(w, 200, map[string]string{"status": "healthy"})
	})
	rt.Tenant("POST /api/tenants/{t}/things/{id}", func(w http.ResponseWriter, r *http.Request) error {
		id, err := PathID(r, "id")
		if err != nil {
			return err
		}
		var body struct {
			Count int    `json:"count"`
			Name  string `json:"name"`
		}
		if err := DecodeJSON(r, &body); err != nil {
			return err
		}
		switch body.Name {
		case "limit":
			return &switchboard.Error{Code: switchboard.ELIMIT, Type: "outbound-task-limit-reached", Message: "the service has 20 tasks scheduled"}
		case "secret":
			return switchboard.Errorf(switchboard.EINTERNAL, "test", "connection string AccountKey=abc failed")
		case "panic":
			panic("boom")
		}
		return WriteJSON(w, 200, map[string]any{"id": id, "count": body.Count})
	})
	return rt
}

func TestRouterRendersProblems(t *testing.T) {
	rt := newTestRouter(nil)
	base := "/api/tenants/" + tenant + "/things/"
	cases := []struct {
		name, method, path, body string
		hdr                      []string
		wantStatus               int
		wantType, wantField      string
	}{
		{"ok", "POST", base + "a1", `{"count":2}`, nil, 200, "", ""},
		{"tenant not a GUID", "POST", "/api/tenants/contoso/things/a1", `{}`, nil, 400, "validation-error", "t"},
		{"bad id", "POST", base + "a%20b", `{}`, nil, 400, "validation-error", "id"},
		{"wrong JSON type names the field", "POST", base + "a1", `{"count":"2"}`, nil, 400, "validation-error", "count"},
		{"unknown field", "POST", base + "a1", `{"cuont":2}`, nil, 400, "validation-error", "cuont"},
		{"empty body", "POST", base + "a1", ``, nil, 400, "validation-error", ""},
		{"malformed JSON", "POST", base + "a1", `{"count":`, nil, 400, "validation-error", ""},
		{"not JSON content type", "POST", base + "a1", `count=2`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 400, "validation-error", ""},
		{"body too large", "POST", base + "a1", `{"name":"` + strings.Repeat("x", MaxBodyBytes) + `"}`, nil, 400, "validation-error", ""},
		{"domain type passes through", "POST", base + "a1", `{"name":"limit"}`, nil, 409, "outbound-task-limit-reached", ""},
		{"internal error detail hidden", "POST", base + "a1", `{"name":"secret"}`, nil, 500, "internal-error", ""},
		{"panic becomes 500", "POST", base + "a1", `{"name":"panic"}`, nil, 500, "internal-error", ""},
		{"unknown route", "GET", "/api/nowhere", ``, nil, 404, "not-found", ""},
		{"wrong method", "DELETE", "/api/health", ``, nil, 405, "method-not-allowed", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec, p := do(t, rt, c.method, c.path, c.body, c.hdr...)
			if rec.Code != c.wantStatus {
				t.Fatalf("status = %d, want %d: %s", rec.Code, c.wantStatus, rec.Body)
			}
			if p.Type != c.wantType || p.Field != c.wantField {
				t.Errorf("type, field = %q, %q; want %q, %q", p.Type, p.Field, c.wantType, c.wantField)
			}
			if strings.Contains(rec.Body.String(), "AccountKey") {
				t.Errorf("reply leaks an internal error's text: %s", rec.Body)
			}
		})
	}
}

func TestTenantRoutesNeedATokenOfThatTenant(t *testing.T) {
	rt := newTestRouter(fakeVerifier{tid: tenant})
	path := "/api/tenants/" + tenant + "/things/a1"
	cases := []struct {
		name       string
		hdr        []string
		path       string
		wantStatus int
	}{
		{"no token", nil, path, 401},
		{"not a bearer token", []string{"Authorization", "Basic abc"}, path, 401},
		{"invalid token", []string{"Authorization", "Bearer bad"}, path, 401},
		{"valid token", []string{"Authorization", "Bearer good"}, path, 200},
		{"token of another tenant", []string{"Authorization", "Bearer good"}, "/api/tenants/00000000-0000-0000-0000-000000000001/things/a1", 403},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec, _ := do(t, rt, "POST", c.path, `{}`, c.hdr...)
			if rec.Code != c.wantStatus {
				t.Errorf("status = %d, want %d: %s", rec.Code, c.wantStatus, rec.Body)
			}
			if rec.Code == 401 && rec.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("401 without WWW-Authenticate")
			}
		})
	}
	if rec, _ := do(t, rt, "GET", "/api/health", ``); rec.Code != 200 {
		t.Errorf("health needs no token: status %d", rec.Code)
	}
}
