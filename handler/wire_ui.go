package main

import (
	"switchboard/handler/webui"
)

// newUI returns the web page (SPEC section 15). With API_AUTH=none its
// tenant picker lists the tenants that have services, which routing knows.
func newUI(a *app) (*webui.UI, error) {
	opts := webui.Options{
		AuthNone:      a.cfg.APIAuth == "none",
		AuthorityHost: a.cfg.AuthorityHost,
		ClientID:      a.cfg.UIClientID,
		Audience:      a.cfg.APIAudience,
		Log:           a.log,
	}
	if opts.AuthNone {
		opts.KnownTenants = a.routing.Tenants
	}
	return webui.New(opts)
}

// wireUI serves the web page (function AdminUI, /api/ui/...): public static
// files; the page calls the API with the signed-in user's token.
func wireUI(a *app) {
	a.router.Anonymous("GET /api/ui", a.ui.Serve)
	a.router.Anonymous("GET /api/ui/{path...}", a.ui.Serve)
}
