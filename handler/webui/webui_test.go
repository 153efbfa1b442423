package webui_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"switchboard/handler/httpapi"
	"switchboard/handler/webui"
)

func newServer(t *testing.T, opts webui.Options) (*webui.UI, *httptest.Server) {
	t.Helper()
	if opts.AuthorityHost == "" {
		opts.AuthorityHost = "https://login.microsoftonline.com/"
	}
	ui, err := webui.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	rt := httpapi.NewRouter(slog.New(slog.DiscardHandler), nil)
	rt.Anonymous("GET /api/ui", ui.Serve)
	rt.Anonymous("GET /api/ui/{path...}", ui.Serve)
	srv := httptest.NewServer(rt)
	t.Cleanup(srv.Close)
	return ui, srv
}

func get(t *testing.T, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func TestIndexAndAssetsCaching(t *testing.T) {
	ui, srv := newServer(t, webui.Options{AuthNone: true})
	resp, body := get(t, srv.URL+"/api/ui/")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("index: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"))
	}
	main := "v/" + ui.Version() + "/app/main.js"
	if !bytes.Contains(body, []byte(`src="`+main+`"`)) || bytes.Contains(body, []byte("__ASSET_BASE__")) {
		t.Fatalf("index does not load %s:\n%s", main, body)
	}

	resp, body = get(t, srv.URL+"/api/ui/"+main)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/javascript; charset=utf-8" || resp.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
		t.Fatalf("versioned asset: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"))
	}
	if !bytes.Contains(body, []byte("import")) {
		t.Fatalf("main.js: %.200s", body)
	}
	// Another build's version: served, but not to be kept under that name.
	resp, _ = get(t, srv.URL+"/api/ui/v/0123456789abcdef/app/main.js")
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("other version: %d %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	for path, ct := range map[string]string{"style.css": "text/css; charset=utf-8", "icon.svg": "image/svg+xml", "vendor/msal/msal-browser.min.js": "text/javascript; charset=utf-8"} {
		resp, _ = get(t, srv.URL+"/api/ui/v/"+ui.Version()+"/"+path)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ct || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: %d %q %q", path, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("X-Content-Type-Options"))
		}
	}

	// Compressed when the browser takes gzip; a revalidation is a 304.
	resp, body = get(t, srv.URL+"/api/ui/v/"+ui.Version()+"/vendor/msal/msal-browser.min.js", "Accept-Encoding", "gzip, br")
	if resp.Header.Get("Content-Encoding") != "gzip" || !strings.Contains(resp.Header.Get("Vary"), "Accept-Encoding") {
		t.Fatalf("MSAL.js: Content-Encoding %q Vary %q", resp.Header.Get("Content-Encoding"), resp.Header.Get("Vary"))
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(zr)
	if !bytes.HasPrefix(plain, []byte("/*! @azure/msal-browser")) {
		t.Fatalf("gunzipped MSAL.js starts %.60q", plain)
	}
	resp, _ = get(t, srv.URL+"/api/ui/v/"+ui.Version()+"/vendor/msal/msal-browser.min.js", "Accept-Encoding", "gzip", "If-None-Match", resp.Header.Get("ETag"))
	if resp.StatusCode != http.StatusNotModified {
		t.Fatalf("revalidation: %d, want 304", resp.StatusCode)
	}
}

func TestRedirectsAndNotFound(t *testing.T) {
	_, srv := newServer(t, webui.Options{AuthNone: true})
	resp, _ := get(t, srv.URL+"/api/ui?tenant=abc")
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/api/ui/?tenant=abc" {
		t.Fatalf("/api/ui: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, p := range []string{"/api/ui/nope.js", "/api/ui/v/" + "x/index.html", "/api/ui/v/abc", "/api/ui/app/../../health"} {
		resp, body := get(t, srv.URL+p)
		// An unclean path is redirected to its clean form by the mux.
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusTemporaryRedirect {
			t.Errorf("%s: %d %s, want 404", p, resp.StatusCode, body)
		}
		if resp.StatusCode == http.StatusNotFound && resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: Content-Type %q, want a problem", p, resp.Header.Get("Content-Type"))
		}
	}
}

func TestContentSecurityPolicy(t *testing.T) {
	_, srv := newServer(t, webui.Options{AuthorityHost: "https://login.example.test/", ClientID: "c1", Audience: "api://switchboard"})
	resp, _ := get(t, srv.URL+"/api/ui/")
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self' https://login.example.test", "frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe") {
		t.Errorf("CSP %q allows something unsafe", csp)
	}
	// MSAL's silent renewal loads the redirect page in an iframe of the page.
	resp, _ = get(t, srv.URL+"/api/ui/redirect.html")
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'self'") {
		t.Errorf("redirect.html CSP %q: want frame-ancestors 'self'", csp)
	}
}

// Nothing in the page needs 'unsafe-inline': no inline script or style, no
// event-handler or style attributes, no eval.
func TestNoInlineCode(t *testing.T) {
	root := "static"
	inlineScript := regexp.MustCompile(`(?is)<script(?:\s[^>]*)?>\s*[^<\s]`)
	attrs := regexp.MustCompile(`(?i)\s(on[a-z]+|style)\s*=`)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.Contains(p, "vendor") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		switch filepath.Ext(p) {
		case ".html":
			if inlineScript.Match(b) || bytes.Contains(b, []byte("<style")) || attrs.Match(b) {
				t.Errorf("%s has inline script, style or handler attributes", p)
			}
		case ".js":
			for _, bad := range []string{"eval(", "new Function", "innerHTML", ".style.", "setAttribute(\"style\""} {
				if bytes.Contains(b, []byte(bad)) {
					t.Errorf("%s uses %s", p, bad)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestConfig(t *testing.T) {
	t.Run("entra", func(t *testing.T) {
		_, srv := newServer(t, webui.Options{AuthorityHost: "https://login.example.test/", ClientID: "spa-1", Audience: "api://switchboard"})
		var c webui.Config
		resp, body := get(t, srv.URL+"/api/ui/config.json")
		if err := json.Unmarshal(body, &c); err != nil || resp.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("config.json: %v %q %s", err, resp.Header.Get("Cache-Control"), body)
		}
		if c.Auth != "entra" || c.ClientID != "spa-1" || c.Authority != "https://login.example.test/organizations" ||
			len(c.Scopes) != 1 || c.Scopes[0] != "api://switchboard/.default" || len(c.KnownAuthorities) != 1 || c.KnownAuthorities[0] != "login.example.test" || len(c.Tenants) != 0 {
			t.Errorf("config = %+v", c)
		}
	})
	t.Run("none lists the tenants for the picker", func(t *testing.T) {
		_, srv := newServer(t, webui.Options{AuthNone: true, ClientID: "spa-1", KnownTenants: func(context.Context) ([]string, error) {
			return []string{"b0000000-0000-4000-8000-000000000002", "a0000000-0000-4000-8000-000000000001"}, nil
		}})
		var c webui.Config
		_, body := get(t, srv.URL+"/api/ui/config.json")
		if err := json.Unmarshal(body, &c); err != nil {
			t.Fatal(err)
		}
		if c.Auth != "none" || c.ClientID != "" || len(c.Tenants) != 2 || c.Tenants[0] != "a0000000-0000-4000-8000-000000000001" || len(c.KnownAuthorities) != 0 {
			t.Errorf("config = %+v", c)
		}
		resp, _ := get(t, srv.URL+"/api/ui/")
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self';") {
			t.Errorf("CSP %q: with API_AUTH=none the page connects to the app only", csp)
		}
	})
}
