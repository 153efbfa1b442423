package acs_test

import (
	"context"
	"testing"

	"switchboard/handler/acs"
	"switchboard/handler/dev/acstest"
	"switchboard/handler/switchboard"
)

// An identity with a chat and VoIP token, then a fresh token for the same
// identity, signed as ACS checks it; a wrong key and a deleted identity
// are told apart, and no error holds the key.
func TestCreateIdentityAndIssueToken(t *testing.T) {
	fake := acstest.NewServer(t)
	c := acs.New(acs.Options{AllowPrivate: true, RootCAs: fake.CertPool()})
	cs, err := acs.ParseConnectionString(fake.ConnectionString())
	if err != nil {
		t.Fatal(err)
	}
	id, tok, err := c.CreateIdentity(context.Background(), cs, acs.SessionScopes)
	if err != nil {
		t.Fatalf("CreateIdentity: %v", err)
	}
	if id == "" || tok.Token == "" || tok.ExpiresOn.IsZero() || !fake.Exists(id) {
		t.Fatalf("identity %q, token %v: want both, the identity existing", id, tok)
	}
	again, err := c.IssueToken(context.Background(), cs, id, acs.SessionScopes)
	if err != nil {
		t.Fatalf("IssueToken: %v", err)
	}
	if again.Token == "" || again.Token == tok.Token {
		t.Errorf("second token %q, want a new one", again.Token)
	}
	if got := fake.Issued(); got != 2 {
		t.Errorf("tokens issued = %d, want 2", got)
	}
	if _, err := c.IssueToken(context.Background(), cs, "8:acs:nobody", acs.SessionScopes); !switchboard.IsCode(err, switchboard.ENOTFOUND) {
		t.Errorf("unknown identity: %v, want ENOTFOUND", err)
	}
	wrong, _ := acs.ParseConnectionString(fake.ConnectionStringWithKey([]byte("not-the-key")))
	_, _, err = c.CreateIdentity(context.Background(), wrong, acs.SessionScopes)
	if !switchboard.IsCode(err, switchboard.EUNAUTHORIZED) || switchboard.ErrorType(err) != acs.TypeKeyRefused {
		t.Errorf("wrong key: %v, want EUNAUTHORIZED %s", err, acs.TypeKeyRefused)
	}
	if s := tok.String(); s == tok.Token || len(s) == 0 {
		t.Errorf("a token prints as %q", s)
	}
	// Without ALLOW_PRIVATE_ENDPOINTS the loopback fake is refused before
	// any connection, as the check refuses it.
	strict := acs.New(acs.Options{RootCAs: fake.CertPool()})
	before, _, _ := fake.Counts()
	if _, _, err := strict.CreateIdentity(context.Background(), cs, acs.SessionScopes); switchboard.ErrorType(err) != acs.TypeNotAllowed {
		t.Errorf("loopback endpoint without ALLOW_PRIVATE_ENDPOINTS: %v, want %s", err, acs.TypeNotAllowed)
	}
	if after, _, _ := fake.Counts(); after != before {
		t.Errorf("the refused endpoint was contacted")
	}
}
