package httpapi

import (
	"crypto/tls"
	"net/http/httptest"
	"testing"
)

func TestBaseURL(t *testing.T) {
	cases := []struct {
		name, host, proto, fwdHost string
		tls                        bool
		want                       string
	}{
		{"behind the Functions host", "127.0.0.1:8080", "https", "switchboard.azurewebsites.net", false, "https://switchboard.azurewebsites.net"},
		{"several proxies", "127.0.0.1:8080", "https, http", "app.contoso.com, 127.0.0.1", false, "https://app.contoso.com"},
		{"local runner, plain", "127.0.0.1:7071", "", "", false, "http://127.0.0.1:7071"},
		{"localhost", "localhost:7071", "", "", false, "http://localhost:7071"},
		{"direct TLS", "app.contoso.com", "", "", true, "https://app.contoso.com"},
		{"plain without a forwarded proto", "app.contoso.com", "", "", false, "http://app.contoso.com"},
		{"a bogus proto is ignored", "app.contoso.com", "gopher", "", true, "https://app.contoso.com"},
		{"a forwarded host with a path is ignored", "127.0.0.1:8080", "https", "evil.example/x?y", false, "https://127.0.0.1:8080"},
	}
	for _, c := range cases {
		r := httptest.NewRequest("POST", "/api/x", nil)
		r.Host = c.host
		if c.proto != "" {
			r.Header.Set("X-Forwarded-Proto", c.proto)
		}
		if c.fwdHost != "" {
			r.Header.Set("X-Forwarded-Host", c.fwdHost)
		}
		if c.tls {
			r.TLS = &tls.ConnectionState{}
		}
		if got := BaseURL(r); got != c.want {
			t.Errorf("%s: BaseURL = %q, want %q", c.name, got, c.want)
		}
	}
}
