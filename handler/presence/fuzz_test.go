package presence

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// FuzzShardMessage feeds arbitrary PresencePollShard message bodies to the
// poller ($TENANT, $U1, $U2 and $NOTAFTER in the input name a tracked
// tenant, two of its users and a time a minute ahead): it never panics and
// never fails on working storage (a malformed, invalid or expired message
// is dropped, not redelivered), and whatever it polls is what the message
// names, at most 650 ids per Graph call.
func FuzzShardMessage(f *testing.F) {
	for _, seed := range []string{
		`{"tenant":"$TENANT","gen":1,"shard":0,"users":["$U1","$U2"],"notAfter":"$NOTAFTER"}`,
		`{"tenant":"$TENANT","gen":1,"shard":0,"users":["$U1"],"notAfter":"2000-01-01T00:00:00Z"}`,
		`{"tenant":"$TENANT","gen":9,"shard":0,"users":["$U1"],"notAfter":"$NOTAFTER"}`,
		`{"tenant":"$TENANT","gen":1,"shard":-1,"users":["$U1"],"notAfter":"$NOTAFTER"}`,
		`{"tenant":"$TENANT","gen":1,"shard":0,"users":["not-a-user"],"notAfter":"$NOTAFTER"}`,
		`{"tenant":"a/b","gen":1,"shard":0,"users":["$U1"],"notAfter":"$NOTAFTER"}`,
		`{"tenant":"$TENANT","gen":1,"shard":0,"users":[],"notAfter":"$NOTAFTER"}`,
		`{"tenant":"$TENANT","bogus":1}`, `{}`, `null`, `[]`, `{"a":`, "",
	} {
		f.Add(seed)
	}
	e := newEnv(f, store.NewMemoryTables(), true)
	ids := userIDs(10)
	e.tracked.set(tenantA, ids)
	for _, id := range ids {
		e.graph.set(id, switchboard.Available, switchboard.ActivityAvailable)
	}
	e.poll(f)
	f.Fuzz(func(t *testing.T, input string) {
		body := strings.NewReplacer("$TENANT", tenantA, "$U1", ids[0], "$U2", ids[1],
			"$NOTAFTER", e.clock.Now().Add(time.Minute).UTC().Format(time.RFC3339)).Replace(input)
		e.graph.resetCalls()
		if err := e.poller.PollShard(context.Background(), []byte(body), e.clock.Now().Add(time.Minute)); err != nil {
			t.Fatalf("PollShard(%q): %v, want nil on working storage", body, err)
		}
		calls := e.graph.callLog()
		var m ShardMessage
		if len(calls) > 0 && json.Unmarshal([]byte(body), &m) != nil {
			t.Fatalf("PollShard(%q) called Graph for a message that is not JSON", body)
		}
		named := map[string]bool{}
		for _, u := range m.Users {
			named[strings.ToLower(u)] = true
		}
		for _, c := range calls {
			if len(c.set) > switchboard.MaxPresenceIDsPerCall {
				t.Fatalf("a Graph call for %d ids", len(c.set))
			}
			for _, id := range c.set {
				if !named[strings.ToLower(id)] {
					t.Fatalf("PollShard(%q) polled %s, which the message does not name", body, id)
				}
			}
		}
	})
}
