package localrunner

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseRouteRefusesWhatItCannotMatchFaithfully(t *testing.T) {
	cases := []struct {
		name, template, wantErr string
	}{
		{"plain", "tenants/{t}/settings", ""},
		{"optional last", "tenants/{t}/services/{s?}", ""},
		{"catch-all", "files/{*path}", ""},
		{"double-star catch-all", "files/{**path}", ""},
		{"supported constraint", "items/{id:int}", ""},
		{"guid constraint, optional", "items/{id:guid?}", ""},
		{"empty", "", "empty"},
		{"leading slash", "/tenants/{t}", "must not start"},
		{"empty segment", "tenants//x", "empty segment"},
		{"unsupported constraint", "items/{id:min(1)}", `constraint "min(1)" is not supported`},
		{"regex constraint", "items/{id:regex(^a$)}", "not supported"},
		{"two constraints", "items/{id:int:long}", "several constraints"},
		{"complex segment", "files/{name}.{ext}", "complex segments"},
		{"literal and parameter mixed", "v{version}/x", "complex segments"},
		{"default value", "items/{id=5}", "default values"},
		{"bad parameter name", "items/{1id}", "not a valid identifier"},
		{"duplicate parameter", "a/{x}/b/{X}", "appears twice"},
		{"catch-all not last", "a/{*rest}/b", "must be the last"},
		{"optional then required", "a/{x?}/{y}", "followed by optional"},
		{"question mark in literal", "a/b?c", "outside a parameter"},
		{"unbalanced brace", "a/{x", "complex segments"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseRoute(c.template)
			switch {
			case c.wantErr == "" && err != nil:
				t.Errorf("ParseRoute(%q) = %v, want no error", c.template, err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Errorf("ParseRoute(%q) = %v, want an error containing %q", c.template, err, c.wantErr)
			}
		})
	}
}

func TestRouteMatch(t *testing.T) {
	cases := []struct {
		name, template, path string
		want                 map[string]string // nil: no match
	}{
		{"literal and parameter", "tenants/{t}/settings", "tenants/abc/settings", map[string]string{"t": "abc"}},
		{"literals are case-insensitive", "tenants/{t}/settings", "Tenants/abc/SETTINGS", map[string]string{"t": "abc"}},
		{"parameter value keeps its case", "users/{u}", "users/AbC", map[string]string{"u": "AbC"}},
		{"escaped parameter is decoded", "users/{u}", "users/a%20b", map[string]string{"u": "a b"}},
		{"escaped slash stays in one parameter", "users/{u}", "users/a%2Fb", map[string]string{"u": "a/b"}},
		{"trailing slash", "health", "health/", map[string]string{}},
		{"too short", "tenants/{t}/settings", "tenants/abc", nil},
		{"too long", "tenants/{t}", "tenants/abc/settings", nil},
		{"wrong literal", "tenants/{t}/settings", "tenants/abc/setting", nil},
		{"empty parameter", "tenants/{t}/settings", "tenants//settings", nil},
		{"optional given", "services/{s?}", "services/x", map[string]string{"s": "x"}},
		{"optional missing", "services/{s?}", "services", map[string]string{}},
		{"catch-all several segments", "files/{*rest}", "files/a/b/c", map[string]string{"rest": "a/b/c"}},
		{"catch-all empty", "files/{*rest}", "files", map[string]string{}},
		{"int constraint holds", "items/{id:int}", "items/42", map[string]string{"id": "42"}},
		{"int constraint fails", "items/{id:int}", "items/x", nil},
		{"guid constraint holds", "t/{id:guid}", "t/8f1d2a3b-0c4d-4e5f-8a9b-0c1d2e3f4a5b", map[string]string{"id": "8f1d2a3b-0c4d-4e5f-8a9b-0c1d2e3f4a5b"}},
		{"guid constraint fails", "t/{id:guid}", "t/nope", nil},
		{"bool constraint", "f/{b:bool}", "f/TRUE", map[string]string{"b": "TRUE"}},
		{"alpha constraint fails on digits", "f/{a:alpha}", "f/ab1", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := ParseRoute(c.template)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := r.Match(c.path)
			if c.want == nil {
				if ok {
					t.Errorf("Match(%q) = %v, want no match", c.path, got)
				}
				return
			}
			if !ok || fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("Match(%q) = %v, %v; want %v, true", c.path, got, ok, c.want)
			}
		})
	}
}

func TestRoutePrecedence(t *testing.T) {
	cases := []struct {
		a, b string // a is more specific than b
	}{
		{"tenants/{t}/settings", "tenants/{t}/{x}"},
		{"items/{id:int}", "items/{id}"},
		{"items/{id}", "items/{id?}"},
		{"items/{id?}", "items/{*rest}"},
		{"a/b/c", "a/{*rest}"},
	}
	for _, c := range cases {
		t.Run(c.a+" before "+c.b, func(t *testing.T) {
			a, _ := ParseRoute(c.a)
			b, _ := ParseRoute(c.b)
			if !moreSpecific(a, b) || moreSpecific(b, a) {
				t.Errorf("moreSpecific(%q, %q) = %v, reversed %v; want true, false", c.a, c.b, moreSpecific(a, b), moreSpecific(b, a))
			}
		})
	}
}
