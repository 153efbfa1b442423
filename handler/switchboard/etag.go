package switchboard

import "strings"

// IfMatchHolds reports whether an If-Match header (one ETag, a list of
// them, or *) names etag, a strong ETag of our own, compared strongly (RFC
// 9110 section 13.1.1: a weak ETag never matches). Quotes may be missing:
// some clients drop them. An empty etag (nothing stored) matches nothing.
func IfMatchHolds(header, etag string) bool {
	if etag == "" {
		return false
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || t == etag || `"`+t+`"` == etag {
			return true
		}
	}
	return false
}
