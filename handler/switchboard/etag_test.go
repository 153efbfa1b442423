package switchboard

import "testing"

func TestIfMatchHolds(t *testing.T) {
	const etag = `"a1b2"`
	for _, tc := range []struct {
		name, header, etag string
		want               bool
	}{
		{"the same", `"a1b2"`, etag, true},
		{"without quotes", `a1b2`, etag, true},
		{"in a list", `"x", "a1b2"`, etag, true},
		{"a weak stored tag, shown strong", `"a1b2"`, `W/"a1b2"`, true},
		{"another", `"x"`, etag, false},
		{"weak", `W/"a1b2"`, etag, false},
		{"nothing stored", `"a1b2"`, "", false},
	} {
		if got := IfMatchHolds(tc.header, tc.etag); got != tc.want {
			t.Errorf("%s: IfMatchHolds(%q, %q) = %v, want %v", tc.name, tc.header, tc.etag, got, tc.want)
		}
	}
}
