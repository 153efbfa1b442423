// Package webui serves the web page of SPEC section 15 (function AdminUI,
// route ui/{*path}): static files embedded in the handler binary, plain
// HTML, CSS and JavaScript modules, MSAL.js vendored under static/vendor.
//
// Caching: the page loads its scripts and styles from v/<version>/..., where
// version is a hash of every embedded file, so those replies are immutable
// and a new build is picked up as soon as the (no-cache) index is read
// again. Every reply carries a strict Content-Security-Policy: scripts and
// styles only from the app itself (no inline code), connections to the app
// and the Entra authority only, and the page may not be framed (except the
// blank MSAL redirect page, which MSAL's silent renewal loads in an iframe
// of the page itself).
package webui

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strings"
	"time"

	"switchboard/handler/switchboard"
)

//go:embed static
var static embed.FS

// Prefix is where the page is served: the AdminUI function's route under
// the host's routePrefix.
const Prefix = "/api/ui/"

// assetBase is the placeholder in HTML files that is replaced by
// "v/<version>" when the files are loaded.
const assetBase = "__ASSET_BASE__"

// Options configure the page.
type Options struct {
	// AuthNone is API_AUTH=none: the page signs nobody in and offers a
	// tenant picker.
	AuthNone bool
	// AuthorityHost is AZURE_AUTHORITY_HOST (with its trailing slash).
	AuthorityHost string
	// ClientID is UI_CLIENT_ID, the SPA registration the page signs in with.
	ClientID string
	// Audience is API_AUDIENCE: the page asks for tokens of <Audience>/.default.
	Audience string
	// KnownTenants lists the tenants that have services, for the tenant
	// picker; used only with AuthNone (local development), since it tells
	// an anonymous caller which tenants exist. May be nil.
	KnownTenants func(ctx context.Context) ([]string, error)
	Log          *slog.Logger
}

// UI serves the page.
type UI struct {
	opts        Options
	version     string
	files       map[string]*file // by path below static/, e.g. "app/main.js"
	authority   string           // scheme://host of the authority, for the CSP
	cspPage     string
	cspRedirect string
}

type file struct {
	body        []byte
	gzipped     []byte // nil when compressing does not pay
	contentType string
	etag        string
}

// contentTypes are the types of the files the page is made of; a file of
// any other kind in static/ fails New, so nothing is served as a guess.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".json": "application/json",
	".png":  "image/png",
	".svg":  "image/svg+xml",
	".txt":  "text/plain; charset=utf-8",
	".ico":  "image/x-icon",
}

// New loads the embedded files. It fails when the authority is not an
// absolute URL or a file has no known content type.
func New(opts Options) (*UI, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	auth, err := url.Parse(opts.AuthorityHost)
	if err != nil || auth.Scheme == "" || auth.Host == "" {
		return nil, fmt.Errorf("webui: authority %q is not an absolute URL", opts.AuthorityHost)
	}
	u := &UI{opts: opts, files: map[string]*file{}, authority: auth.Scheme + "://" + auth.Host}
	root, _ := fs.Sub(static, "static")
	var names []string
	err = fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		names = append(names, p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("webui: %w", err)
	}
	sort.Strings(names)
	all := sha256.New()
	raw := map[string][]byte{}
	for _, name := range names {
		b, err := fs.ReadFile(root, name)
		if err != nil {
			return nil, fmt.Errorf("webui: %w", err)
		}
		if _, ok := contentTypes[path.Ext(name)]; !ok {
			return nil, fmt.Errorf("webui: %s: no content type for %q", name, path.Ext(name))
		}
		fmt.Fprintf(all, "%s\x00%d\x00", name, len(b))
		all.Write(b)
		raw[name] = b
	}
	u.version = hex.EncodeToString(all.Sum(nil))[:16]
	for name, b := range raw {
		if path.Ext(name) == ".html" {
			b = bytes.ReplaceAll(b, []byte(assetBase), []byte("v/"+u.version))
		}
		sum := sha256.Sum256(b)
		f := &file{body: b, contentType: contentTypes[path.Ext(name)], etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		if compressible(f.contentType) && len(b) > 1024 {
			var buf bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
			zw.Write(b)
			zw.Close()
			if buf.Len() < len(b)*9/10 {
				f.gzipped = buf.Bytes()
			}
		}
		u.files[name] = f
	}
	if u.files["index.html"] == nil || u.files["redirect.html"] == nil {
		return nil, fmt.Errorf("webui: static/index.html or static/redirect.html missing")
	}
	u.cspPage = u.csp("'none'")
	u.cspRedirect = u.csp("'self'")
	return u, nil
}

// Version is the hash under which the assets are served.
func (u *UI) Version() string { return u.version }

func (u *UI) csp(frameAncestors string) string {
	connect := "'self'"
	if !u.opts.AuthNone {
		connect += " " + u.authority
	}
	return strings.Join([]string{
		"default-src 'none'",
		"script-src 'self'",
		"style-src 'self'",
		"img-src 'self'",
		"connect-src " + connect,
		// MSAL's silent renewal loads the authority in a hidden iframe,
		// which comes back to redirect.html.
		"frame-src 'self' " + u.authority,
		"base-uri 'none'",
		"form-action 'none'",
		"object-src 'none'",
		"frame-ancestors " + frameAncestors,
	}, "; ")
}

func compressible(contentType string) bool {
	return strings.HasPrefix(contentType, "text/") || strings.HasPrefix(contentType, "application/json") || strings.HasPrefix(contentType, "image/svg")
}

// Serve answers GET (and HEAD) /api/ui and everything under /api/ui/.
// Returns ENOTFOUND for a path that names no file.
func (u *UI) Serve(w http.ResponseWriter, r *http.Request) error {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", u.cspPage)
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	p := r.URL.Path
	if p == strings.TrimSuffix(Prefix, "/") {
		// Relative asset URLs need the trailing slash.
		target := Prefix
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery
		}
		http.Redirect(w, r, target, http.StatusMovedPermanently)
		return nil
	}
	rel, ok := strings.CutPrefix(p, Prefix)
	if !ok {
		return notFound(p)
	}
	switch rel {
	case "", "index.html":
		return u.serveFile(w, r, "index.html", "no-cache")
	case "redirect.html":
		h.Set("Content-Security-Policy", u.cspRedirect)
		return u.serveFile(w, r, "redirect.html", "no-cache")
	case "config.json":
		return u.serveConfig(w, r)
	}
	if strings.HasPrefix(rel, "v/") {
		version, name, _ := strings.Cut(strings.TrimPrefix(rel, "v/"), "/")
		if name == "" || path.Ext(name) == ".html" {
			return notFound(p)
		}
		if version == u.version {
			return u.serveFile(w, r, name, "public, max-age=31536000, immutable")
		}
		// An index of another build (a cached page during a deployment):
		// serve what this build has, but do not let it be kept as that
		// version's.
		return u.serveFile(w, r, name, "no-cache")
	}
	if path.Ext(rel) == ".html" {
		return notFound(p)
	}
	return u.serveFile(w, r, rel, "no-cache")
}

func notFound(p string) error {
	return &switchboard.Error{Code: switchboard.ENOTFOUND, Op: "webui", Message: fmt.Sprintf("the web page has no file %s", p)}
}

func (u *UI) serveFile(w http.ResponseWriter, r *http.Request, name, cacheControl string) error {
	f := u.files[name]
	if f == nil || name != path.Clean(name) {
		return notFound(r.URL.Path)
	}
	h := w.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("Cache-Control", cacheControl)
	body := f.body
	etag := f.etag
	if f.gzipped != nil {
		h.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r) {
			h.Set("Content-Encoding", "gzip")
			body = f.gzipped
			etag = strings.TrimSuffix(etag, `"`) + `-gz"`
		}
	}
	h.Set("ETag", etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	return nil
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			return strings.ReplaceAll(strings.TrimSpace(params), " ", "") != "q=0"
		}
	}
	return false
}

// Config is what GET /api/ui/config.json tells the page.
type Config struct {
	// Auth is "entra" or "none" (API_AUTH).
	Auth string `json:"auth"`
	// ClientID is UI_CLIENT_ID; empty with Auth entra means the page
	// cannot sign anyone in (it says so).
	ClientID string `json:"clientId"`
	// Authority is the MSAL authority: {AZURE_AUTHORITY_HOST}organizations
	// (any work account; the token's tid picks the tenant).
	Authority string `json:"authority"`
	// KnownAuthorities is the authority's host, given to MSAL when it is
	// not Microsoft's public cloud (instance discovery is off then).
	KnownAuthorities []string `json:"knownAuthorities"`
	// Scopes are the scopes the page asks tokens for.
	Scopes []string `json:"scopes"`
	// Tenants are tenants with services, for the picker (Auth none only).
	Tenants []string `json:"tenants"`
	// Version is the build of the page.
	Version string `json:"version"`
}

func (u *UI) serveConfig(w http.ResponseWriter, r *http.Request) error {
	c := Config{Auth: "entra", ClientID: u.opts.ClientID, Authority: strings.TrimSuffix(u.opts.AuthorityHost, "/") + "/organizations",
		KnownAuthorities: []string{}, Scopes: []string{}, Tenants: []string{}, Version: u.version}
	if host := hostOf(u.opts.AuthorityHost); !strings.EqualFold(host, "login.microsoftonline.com") {
		c.KnownAuthorities = []string{host}
	}
	if u.opts.Audience != "" {
		c.Scopes = []string{strings.TrimSuffix(u.opts.Audience, "/") + "/.default"}
	}
	if u.opts.AuthNone {
		c.Auth, c.ClientID, c.Scopes = "none", "", []string{}
		if u.opts.KnownTenants != nil {
			tenants, err := u.opts.KnownTenants(r.Context())
			if err != nil {
				// The picker still takes a typed tenant id.
				u.opts.Log.Warn("webui: listing the tenants for the picker failed", "err", err)
			}
			c.Tenants = append(c.Tenants, tenants...)
			sort.Strings(c.Tenants)
		}
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	return json.NewEncoder(w).Encode(c)
}

func hostOf(raw string) string {
	p, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return p.Host
}
