package switchboard

import "regexp"

// idPattern is the shape of the ids callers choose (services,
// conversations, path segments): 1 to 128 letters, digits and . _ : @ -,
// starting with a letter or digit. Every such id is safe as a Table Storage
// key.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$`)

// ValidID reports whether s is a usable caller-chosen id.
func ValidID(s string) bool { return idPattern.MatchString(s) }
