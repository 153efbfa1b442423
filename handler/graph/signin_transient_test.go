package graph_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"switchboard/handler/graph"
	"switchboard/handler/switchboard"
)

// An Entra that cannot be reached or fails (5xx) says nothing about the
// presence account or the app: the source must not be paused for it, or a
// brief Entra outage pauses every source and all presence goes stale.
func TestSignInOutageDoesNotDisqualify(t *testing.T) {
	failing := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("<html>down for maintenance</html>"))
	}))
	t.Cleanup(failing.Close)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "https://" + l.Addr().String() + "/"
	_ = l.Close()

	cases := []struct {
		name      string
		authority string
		src       switchboard.PresenceSource
	}{
		{"Entra unreachable, presence account", closed, switchboard.SourceAccount1},
		{"Entra unreachable, application", closed, switchboard.SourceApplication},
		{"Entra answers 503, presence account", failing.URL + "/", switchboard.SourceAccount2},
		{"Entra answers 503, application", failing.URL + "/", switchboard.SourceApplication},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := graph.New(graph.Options{
				BaseURL: "https://graph.invalid/v1.0", AuthorityHost: tc.authority, ClientID: appID, ClientSecret: appSecret,
				Accounts:   [2]graph.Account{{UPN: account1, Password: password1}, {UPN: account2, Password: password2}},
				HTTPClient: failing.Client(), Timeout: 10 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Presences(context.Background(), tenantID, tc.src, []string{"66666666-6666-6666-6666-666666666666"})
			se, ok := err.(*switchboard.SourceError)
			if !ok {
				t.Fatalf("got %T %v, want a *switchboard.SourceError", err, err)
			}
			if got, want := se.Disqualifies(), false; got != want {
				t.Errorf("Disqualifies() = %v, want %v (%s: %s)", got, want, se.Reason, se.Message)
			}
			if got, want := se.ReachedGraph(), false; got != want {
				t.Errorf("ReachedGraph() = %v, want %v", got, want)
			}
			if se.Message == "" {
				t.Error("no message for the tenant admin")
			}
		})
	}
}
