package switchboard

import (
	"strings"
	"testing"
)

func TestValidID(t *testing.T) {
	cases := []struct {
		name string
		id   string
		want bool
	}{
		{"word", "support", true},
		{"with dash", "c-1", true},
		{"with colons", "task:abc:1", true},
		{"address", "agent@contoso.com", true},
		{"one character", "A", true},
		{"128 characters", strings.Repeat("x", 128), true},
		{"empty", "", false},
		{"leading dash", "-x", false},
		{"slash", "a/b", false},
		{"hash", "a#b", false},
		{"question mark", "a?b", false},
		{"space", "a b", false},
		{"129 characters", strings.Repeat("x", 129), false},
	}
	for _, c := range cases {
		if got := ValidID(c.id); got != c.want {
			t.Errorf("%s: ValidID(%q) = %v, want %v", c.name, c.id, got, c.want)
		}
	}
}
