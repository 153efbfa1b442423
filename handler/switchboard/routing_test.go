package switchboard

import (
	"fmt"
	"slices"
	"testing"
)

// A pass's agents come first, then the item's own preferred users, each
// once, cut at what a route accepts.
func TestPreferFirst(t *testing.T) {
	many := make([]string, MaxPreferredUsers)
	for i := range many {
		many[i] = fmt.Sprintf("u%02d", i)
	}
	cases := []struct {
		name             string
		first, preferred []string
		want             []string
	}{
		{"no pass agents", nil, []string{"a", "b"}, []string{"a", "b"}},
		{"pass agent first", []string{"c"}, []string{"a", "b"}, []string{"c", "a", "b"}},
		{"no repeats", []string{"b"}, []string{"a", "b"}, []string{"b", "a"}},
		{"cut at the limit", []string{"x"}, many, append([]string{"x"}, many[:MaxPreferredUsers-1]...)},
	}
	for _, c := range cases {
		if got := PreferFirst(c.first, c.preferred); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
