package switchboard

import (
	"regexp"

	"github.com/google/uuid"
)

// idPattern is the shape of the ids callers choose (services,
// conversations, path segments): 1 to 128 letters, digits and . _ : @ -,
// starting with a letter or digit. Every such id is safe as a Table Storage
// key.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$`)

// ValidID reports whether s is a usable caller-chosen id.
func ValidID(s string) bool { return idPattern.MatchString(s) }

// NormalizeGUID returns s in the canonical lower-case form of a GUID
// (Entra tenant ids and object ids), or false when s is not a GUID written
// as 36 characters with dashes.
func NormalizeGUID(s string) (string, bool) {
	u, err := uuid.Parse(s)
	if err != nil || len(s) != 36 {
		return "", false
	}
	return u.String(), true
}

// NormalizeTeamID returns a Microsoft Teams team id in its canonical
// lower-case form, or false when s is not one. A team id is the object id
// of the team's Microsoft 365 group: a GUID like a user's, but an id of
// another kind, validated on its own so that the two can diverge (Graph
// also shows teams by their thread id, 19:...@thread.tacv2, which is not
// accepted here: the group id is what TeamMember.Read.All lists members
// by).
func NormalizeTeamID(s string) (string, bool) { return NormalizeGUID(s) }
