package main

import (
	"context"

	"switchboard/handler/webui"
)

// wireUI serves the web page (function AdminUI, /api/ui/...): public static
// files; the page calls the API with the signed-in user's token. With
// API_AUTH=none its tenant picker lists the tenants that have services,
// which is why it is wired after routing.
func wireUI(ctx context.Context, a *app) error {
	opts := webui.Options{
		AuthNone:      a.cfg.APIAuth == "none",
		AuthorityHost: a.cfg.AuthorityHost,
		ClientID:      a.cfg.UIClientID,
		Audience:      a.cfg.APIAudience,
		Log:           a.log,
	}
	if opts.AuthNone {
		opts.KnownTenants = a.trackedUsers().Tenants
	}
	ui, err := webui.New(opts)
	if err != nil {
		return err
	}
	a.router.Anonymous("GET /api/ui", ui.Serve)
	a.router.Anonymous("GET /api/ui/{path...}", ui.Serve)
	return nil
}
