package switchboard

import "strings"

// PublicETag is a row's ETag as the API shows it: Table Storage's ETag,
// whose value changes on every write of the row, given as the strong entity
// tag it is for our representation (RFC 9110 section 8.8.3). A storage ETag
// is weak (W/"datetime'...'"), and If-Match must use the strong comparison,
// under which a weak tag never matches.
func PublicETag(stored string) string { return strings.TrimPrefix(stored, "W/") }

// IfMatchHolds reports whether an If-Match header value (a list of entity
// tags, not "*") names the stored ETag under the strong comparison of RFC
// 9110 section 13.1.1: a weak tag in the list never matches, and a strong
// one matches when its opaque tag is the row's. An unquoted tag is read as
// if quoted: some clients drop the quotes.
func IfMatchHolds(header, stored string) bool {
	want := PublicETag(stored)
	if want == "" {
		return false
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "" || strings.HasPrefix(t, "W/") {
			continue
		}
		if !strings.HasPrefix(t, `"`) {
			t = `"` + t + `"`
		}
		if t == want {
			return true
		}
	}
	return false
}
