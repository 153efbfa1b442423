package switchboard

import (
	"encoding/base64"
	"net/url"
	"regexp"
	"strings"
)

// ACSTypeMalformed is the problem type of a malformed ACS connection
// string.
const ACSTypeMalformed = "acs-connection-string-malformed"

// ACSConnectionString is a parsed ACS connection string.
type ACSConnectionString struct {
	// Endpoint is the resource's endpoint, https://<resource>.communication.azure.com/
	// (always with a trailing slash).
	Endpoint string
	// AccessKey is the decoded access key. Secret.
	AccessKey []byte
}

// String returns the endpoint only: an ACSConnectionString printed by mistake
// must not show the key.
func (c ACSConnectionString) String() string {
	return "endpoint=" + c.Endpoint + ";accesskey=<redacted>"
}

// GoString keeps %#v from printing the key too.
func (c ACSConnectionString) GoString() string { return c.String() }

// ParseACSConnectionString parses "endpoint=https://<res>.communication.azure.com/;accesskey=<base64>".
// Keys are case-insensitive, their order free, empty segments ignored.
// Returns EINVALID with Field "connectionString" and a message that says
// what is wrong without repeating any part of the value.
func ParseACSConnectionString(s string) (ACSConnectionString, error) {
	const op = "acs.ParseConnectionString"
	bad := func(format string, args ...any) error {
		e := FieldError(op, "connectionString", format, args...)
		e.Type = ACSTypeMalformed
		return e
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return ACSConnectionString{}, bad("the connection string is empty")
	}
	var endpoint, key string
	var haveEndpoint, haveKey bool
	for i, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, value, ok := strings.Cut(part, "=")
		if !ok {
			return ACSConnectionString{}, bad("segment %d is not name=value; an ACS connection string is endpoint=https://<resource>.communication.azure.com/;accesskey=<key>", i+1)
		}
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "endpoint":
			if haveEndpoint {
				return ACSConnectionString{}, bad("endpoint is given twice")
			}
			endpoint, haveEndpoint = strings.TrimSpace(value), true
		case "accesskey":
			if haveKey {
				return ACSConnectionString{}, bad("accesskey is given twice")
			}
			key, haveKey = strings.TrimSpace(value), true
		default:
			return ACSConnectionString{}, bad("unknown part %q; an ACS connection string has only endpoint and accesskey", acsPartName(name))
		}
	}
	if !haveEndpoint || endpoint == "" {
		return ACSConnectionString{}, bad("the endpoint is missing")
	}
	if !haveKey || key == "" {
		return ACSConnectionString{}, bad("the accesskey is missing")
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || u.User != nil {
		return ACSConnectionString{}, bad("the endpoint is not an absolute URL")
	}
	if u.Scheme != "https" {
		return ACSConnectionString{}, bad("the endpoint must be an https URL")
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return ACSConnectionString{}, bad("the endpoint must be the resource's base URL, without a path or query")
	}
	k, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		return ACSConnectionString{}, bad("the accesskey is not base64")
	}
	if len(k) == 0 {
		return ACSConnectionString{}, bad("the accesskey is empty")
	}
	return ACSConnectionString{Endpoint: "https://" + strings.ToLower(u.Host) + "/", AccessKey: k}, nil
}

// acsPartName returns a connection string part's name for an error message
// when it looks like a setting name; anything else (a value pasted without
// its "name=") is not repeated.
func acsPartName(name string) string {
	name = strings.TrimSpace(name)
	if !acsPartNamePattern.MatchString(name) {
		return "(not a name)"
	}
	return name
}

var acsPartNamePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,31}$`)
