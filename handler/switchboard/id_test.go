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

func TestNormalizeGUID(t *testing.T) {
	cases := []struct {
		name, in, want string
		ok             bool
	}{
		{"canonical", "72f988bf-86f1-41af-91ab-2d7cd011db47", "72f988bf-86f1-41af-91ab-2d7cd011db47", true},
		{"upper case", "72F988BF-86F1-41AF-91AB-2D7CD011DB47", "72f988bf-86f1-41af-91ab-2d7cd011db47", true},
		{"braces", "{72f988bf-86f1-41af-91ab-2d7cd011db47}", "", false},
		{"no dashes", "72f988bf86f141af91ab2d7cd011db47", "", false},
		{"urn form", "urn:uuid:72f988bf-86f1-41af-91ab-2d7cd011db47", "", false},
		{"not hex", "72f988bf-86f1-41af-91ab-2d7cd011db4z", "", false},
		{"empty", "", "", false},
	}
	for _, c := range cases {
		got, ok := NormalizeGUID(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("%s: NormalizeGUID(%q) = %q, %v; want %q, %v", c.name, c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestNormalizeTeamID(t *testing.T) {
	cases := []struct {
		name, in, want string
		ok             bool
	}{
		{"group id", "5f2b8a4e-1c3d-4e5f-8a9b-0c1d2e3f4a5b", "5f2b8a4e-1c3d-4e5f-8a9b-0c1d2e3f4a5b", true},
		{"upper case", "5F2B8A4E-1C3D-4E5F-8A9B-0C1D2E3F4A5B", "5f2b8a4e-1c3d-4e5f-8a9b-0c1d2e3f4a5b", true},
		{"thread id", "19:abcdef0123456789@thread.tacv2", "", false},
		{"name", "team-1", "", false},
		{"empty", "", "", false},
	}
	for _, c := range cases {
		got, ok := NormalizeTeamID(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("%s: NormalizeTeamID(%q) = %q, %v; want %q, %v", c.name, c.in, got, ok, c.want, c.ok)
		}
	}
}
