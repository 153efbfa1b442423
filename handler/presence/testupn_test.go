package presence

import (
	"context"
	"testing"

	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// Test UPN accepts a user's object id in any form uuid parses (urn:uuid:,
// braces, 32 hex digits, upper case) and asks Graph for the canonical id:
// Graph knows a user only by that, and answered user-not-found before.
func TestTestNormalisesObjectIDs(t *testing.T) {
	e := newEnv(t, store.NewMemoryTables(), true)
	const id = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
	e.graph.users[id] = switchboard.DirectoryUser{ID: id, UserPrincipalName: "agent@contoso.example"}
	svc, err := NewService(ServiceOptions{Store: e.store, Graph: e.graph, Now: e.clock.Now, Account1UPN: "presence1@switchboard.example", Account2UPN: "presence2@switchboard.example"})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{id, "urn:uuid:" + id, "{" + id + "}", "3F2504E04F8941D39A0C0305E82C3301", " 3F2504E0-4F89-41D3-9A0C-0305E82C3301 "} {
		res, err := svc.Test(context.Background(), tenantA, in, 1)
		if err != nil {
			t.Fatalf("Test(%q): %v", in, err)
		}
		if res.User == nil || res.User.ID != id || res.UPN != id {
			t.Errorf("Test(%q) = user %+v, upn %q (error %v); want %s found", in, res.User, res.UPN, res.Error, id)
		}
	}
}
