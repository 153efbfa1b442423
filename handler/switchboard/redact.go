package switchboard

import (
	"net/url"
	"regexp"
	"strings"
)

// urlInText finds absolute URLs in free text (an SDK's error message
// quotes the request URL: `Get "https://acct.table.core.windows.net/?sig=..."`).
var urlInText = regexp.MustCompile(`(?i)\b[a-z][a-z0-9+.-]*://[^\s"'<>]+`)

// RedactURLs returns s with the query string, fragment and userinfo
// removed from every URL in it: a SAS token (sig=...), a function key
// (code=...) or a password in a URL must not reach an error message or a
// log line. Adapters apply it to every error text they pass on.
func RedactURLs(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	return urlInText.ReplaceAllStringFunc(s, redactURL)
}

func redactURL(raw string) string {
	trail := ""
	// A URL quoted in prose may end with punctuation that is not its own.
	for len(raw) > 0 && strings.ContainsRune(".,;:)]", rune(raw[len(raw)-1])) {
		trail = raw[len(raw)-1:] + trail
		raw = raw[:len(raw)-1]
	}
	u, err := url.Parse(raw)
	if err != nil {
		// Unparseable: keep only what precedes anything that could be a
		// query, a fragment or userinfo.
		scheme, rest, _ := strings.Cut(raw, "://")
		if i := strings.IndexAny(rest, "?#"); i >= 0 {
			rest = rest[:i]
		}
		if i := strings.LastIndex(rest, "@"); i >= 0 {
			rest = rest[i+1:]
		}
		return scheme + "://" + rest + trail
	}
	redacted := u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.User != nil
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment, u.User = "", false, "", "", nil
	out := u.String()
	if redacted {
		out += "?<redacted>"
	}
	return out + trail
}

// Redact returns err with its text passed through RedactURLs, keeping err
// in the chain for errors.Is and errors.As (context.DeadlineExceeded ...).
// Nil stays nil.
func Redact(err error) error {
	if err == nil {
		return nil
	}
	return &redacted{msg: RedactURLs(err.Error()), err: err}
}

type redacted struct {
	msg string
	err error
}

func (r *redacted) Error() string { return r.msg }
func (r *redacted) Unwrap() error { return r.err }
