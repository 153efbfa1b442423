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
