package graph_test

import (
	"context"
	"errors"
	"testing"

	"switchboard/handler/switchboard"
)

// Continuous access evaluation: once a presence account's sessions are
// revoked (here: MFA turned on for it), Graph answers its cached token 401
// with an insufficient_claims challenge. The client drops that token, asks
// for a new one with the challenge's claims, and reports what that sign-in
// says (mfa-required, AADSTS50076), not that Graph refused a token.
func TestRevokedTokenIsChallengedAndReasonReported(t *testing.T) {
	e := newSimEnv(t, fullyConsented, 2)
	ctx := context.Background()
	if _, err := e.client.Presences(ctx, tenantID, switchboard.SourceAccount1, e.ids()); err != nil {
		t.Fatalf("first read: %v", err)
	}
	e.sim.SetAccount(account1, password1, true)
	e.sim.RevokeSessions(account1)
	_, err := e.client.Presences(ctx, tenantID, switchboard.SourceAccount1, e.ids())
	var se *switchboard.SourceError
	if !errors.As(err, &se) {
		t.Fatalf("read after the revocation: %v, want a source error", err)
	}
	if se.Reason != switchboard.SourceMFARequired || se.Code != "AADSTS50076" {
		t.Errorf("reason %s code %q (%s), want mfa-required AADSTS50076", se.Reason, se.Code, se.Message)
	}
	// The admin excludes the account from MFA again: the next read signs in
	// anew and works (no stale token or error kept).
	e.sim.SetAccount(account1, password1, false)
	if _, err := e.client.Presences(ctx, tenantID, switchboard.SourceAccount1, e.ids()); err != nil {
		t.Errorf("read after MFA was lifted: %v", err)
	}
}
