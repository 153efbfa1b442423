package httpapi

import (
	"net/http/httptest"
	"net/url"
	"testing"
)

// nextLink names the host and scheme the caller used (the forwarded ones
// behind the Functions host) and never carries a function key, however
// its name is spelled.
func TestNextLink(t *testing.T) {
	const path = "/api/tenants/t/services/s/outbound-tasks"
	tests := []struct {
		name    string
		target  string
		headers map[string]string
		want    string
	}{
		{"plain", path + "?top=2", nil, "http://switchboard.test" + path + "?continuationToken=tok&top=2"},
		{"function key in any case", path + "?code=k1&Code=k2&CODE=k3&top=2", nil, "http://switchboard.test" + path + "?continuationToken=tok&top=2"},
		{"forwarded host and scheme", path, map[string]string{"X-Forwarded-Host": "contoso-switchboard.azurewebsites.net", "X-Forwarded-Proto": "https"}, "https://contoso-switchboard.azurewebsites.net" + path + "?continuationToken=tok"},
		{"first of several forwarded values", path, map[string]string{"X-Forwarded-Host": "public.example, internal.example", "X-Forwarded-Proto": "https, http"}, "https://public.example" + path + "?continuationToken=tok"},
		{"forwarded scheme only", path, map[string]string{"X-Forwarded-Proto": "HTTPS"}, "https://switchboard.test" + path + "?continuationToken=tok"},
		{"forwarded host that is not a host", path, map[string]string{"X-Forwarded-Host": "evil.example/phish?x="}, "http://switchboard.test" + path + "?continuationToken=tok"},
		{"unknown forwarded scheme", path, map[string]string{"X-Forwarded-Proto": "javascript"}, "http://switchboard.test" + path + "?continuationToken=tok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://switchboard.test"+tt.target, nil)
			for k, v := range tt.headers {
				r.Header.Set(k, v)
			}
			got := nextLink(r, "tok")
			if got != tt.want {
				t.Errorf("nextLink = %s, want %s", got, tt.want)
			}
			u, _ := url.Parse(got)
			for k := range u.Query() {
				if len(k) == 4 && (k[0] == 'c' || k[0] == 'C') && (k == "code" || k == "Code" || k == "CODE") {
					t.Errorf("nextLink %s carries %s", got, k)
				}
			}
		})
	}
}
