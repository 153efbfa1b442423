package config

import (
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaults(t *testing.T) {
	c, err := Load(env(map[string]string{"TABLES_CONNECTION_STRING": "x", "API_AUDIENCE": "api://switchboard"}))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct{ name, got, want string }{
		{"Port", c.Port, "8080"},
		{"OutboundQueue", c.OutboundQueue, "outbound-tasks"},
		{"DistributionQueue", c.DistributionQueue, "distribution"},
		{"GraphBaseURL", c.GraphBaseURL, "https://graph.microsoft.com/v1.0"},
		{"AuthorityHost", c.AuthorityHost, "https://login.microsoftonline.com/"},
		{"PresenceSchedule", c.PresenceSchedule, "*/30 * * * * *"},
		{"APIAuth", c.APIAuth, "entra"},
		{"EventsQueue", c.EventsQueue, "events"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %q, want %q", ch.name, ch.got, ch.want)
		}
	}
	if c.PresenceStaleAfter != 120*time.Second {
		t.Errorf("PresenceStaleAfter = %s, want 2m0s", c.PresenceStaleAfter)
	}
	if !c.PublicAuthority() {
		t.Error("the default authority should count as public")
	}
}

func TestOverridesAndErrors(t *testing.T) {
	base := map[string]string{"TABLES_CONNECTION_STRING": "x", "API_AUTH": "none"}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range base {
			m[a] = b
		}
		m[k] = v
		return m
	}
	cases := []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{"no storage", map[string]string{"API_AUTH": "none"}, "TABLES_CONNECTION_STRING or TABLES_ENDPOINT"},
		{"entra needs an audience", with("API_AUTH", "entra"), "API_AUDIENCE"},
		{"unknown auth mode", with("API_AUTH", "basic"), "API_AUTH"},
		{"bad staleness", with("PRESENCE_STALE_AFTER", "soon"), "PRESENCE_STALE_AFTER"},
		{"negative staleness", with("PRESENCE_STALE_AFTER", "-5s"), "PRESENCE_STALE_AFTER"},
		{"bad port", with("FUNCTIONS_CUSTOMHANDLER_PORT", "http"), "FUNCTIONS_CUSTOMHANDLER_PORT"},
		{"relative Graph URL", with("GRAPH_BASE_URL", "graph/v1.0"), "GRAPH_BASE_URL"},
		{"seconds as a number", with("PRESENCE_STALE_AFTER", "90"), ""},
		{"private endpoints locally", with("ALLOW_PRIVATE_ENDPOINTS", "true"), ""},
		{"private endpoints not a bool", with("ALLOW_PRIVATE_ENDPOINTS", "yes please"), "ALLOW_PRIVATE_ENDPOINTS"},
		{"private endpoints in Azure", map[string]string{"TABLES_CONNECTION_STRING": "x", "API_AUTH": "entra", "API_AUDIENCE": "a",
			"ALLOW_PRIVATE_ENDPOINTS": "true", "WEBSITE_INSTANCE_ID": "abc", "SECRETS_KEY": "k"}, "refused in Azure"},
		{"no secrets key in Azure", map[string]string{"TABLES_CONNECTION_STRING": "x", "API_AUTH": "entra", "API_AUDIENCE": "a",
			"WEBSITE_INSTANCE_ID": "abc"}, "SECRETS_KEY must be set in Azure"},
		{"bad poll schedule", with("PRESENCE_POLL_SCHEDULE", "every 30 seconds"), "PRESENCE_POLL_SCHEDULE"},
		{"poll schedule out of range", with("PRESENCE_POLL_SCHEDULE", "*/30 * 25 * * *"), "PRESENCE_POLL_SCHEDULE"},
		{"five-field poll schedule", with("PRESENCE_POLL_SCHEDULE", "*/2 * * * *"), ""},
		{"no auth in Azure", with("WEBSITE_INSTANCE_ID", "abc123"), "API_AUTH=none"},
		{"entra in Azure", map[string]string{"TABLES_CONNECTION_STRING": "x", "API_AUTH": "entra", "API_AUDIENCE": "api://sb", "WEBSITE_INSTANCE_ID": "abc123", "SECRETS_KEY": "k"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(env(c.env))
			switch {
			case c.wantErr == "" && err != nil:
				t.Errorf("unexpected error %v", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Errorf("error = %v, want one naming %s", err, c.wantErr)
			}
		})
	}
	c, _ := Load(env(with("AZURE_AUTHORITY_HOST", "https://127.0.0.1:8443")))
	if c.AuthorityHost != "https://127.0.0.1:8443/" || c.PublicAuthority() {
		t.Errorf("AuthorityHost = %q (public %v): want a trailing slash and not public", c.AuthorityHost, c.PublicAuthority())
	}
	c, _ = Load(env(with("FUNCTIONS_HTTPWORKER_PORT", "9999")))
	if c.Port != "9999" {
		t.Errorf("legacy port variable ignored: Port = %q", c.Port)
	}
}
