package switchboard

import (
	"encoding/base64"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
)

// ACSTypeMalformed is the problem type of a malformed ACS connection
// string.
const ACSTypeMalformed = "acs-connection-string-malformed"

// ACSTypeNotAllowed is the problem type of an ACS endpoint the endpoint
// rules refuse (ACSConnectionString.CheckEndpoint).
const ACSTypeNotAllowed = "acs-endpoint-not-allowed"

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
			return ACSConnectionString{}, bad("segment %d is not name=value; an ACS connection string is "+
				"endpoint=https://<resource>.communication.azure.com/;accesskey=<key>", i+1)
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
			return ACSConnectionString{}, bad("segment %d is %s; an ACS connection string has only endpoint and accesskey", i+1, knownACSPart(name))
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
	if u.Scheme != "https" && u.Scheme != "http" {
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
	return ACSConnectionString{Endpoint: u.Scheme + "://" + strings.ToLower(u.Host) + "/", AccessKey: k}, nil
}

// knownACSPart describes a connection-string part that is not an ACS one for
// an error message. Only names from a fixed list of other Azure connection
// strings are repeated: anything else may be a piece of a pasted key (a key
// holding "=" splits into name=value), so it is never echoed.
func knownACSPart(name string) string {
	name = strings.TrimSpace(name)
	for _, known := range otherParts {
		if strings.EqualFold(name, known) {
			return fmt.Sprintf("%q, a part of another kind of connection string", known)
		}
	}
	return "not endpoint or accesskey"
}

// otherParts are the part names of the connection strings an admin may
// paste by mistake (Storage, Service Bus, Event Hubs, Application Insights).
var otherParts = []string{
	"DefaultEndpointsProtocol", "AccountName", "AccountKey", "EndpointSuffix", "SharedAccessSignature",
	"BlobEndpoint", "QueueEndpoint", "TableEndpoint", "FileEndpoint", "UseDevelopmentStorage",
	"SharedAccessKeyName", "SharedAccessKey", "EntityPath", "InstrumentationKey", "IngestionEndpoint",
	"LiveEndpoint", "ApplicationId",
}

// Hosts of ACS resources: the public cloud, Azure Government and Azure
// China (Microsoft's ACS endpoint suffixes).
var acsHostSuffixes = []string{".communication.azure.com", ".communication.azure.us", ".communication.azure.cn"}

// CheckEndpoint returns nil when the endpoint may be called: an https URL
// on port 443 whose host is a name under one of the ACS suffixes (no IP
// literal). allowPrivate (ALLOW_PRIVATE_ENDPOINTS, local development and
// tests) lifts these rules. Returns EINVALID (Type TypeNotAllowed, Field
// "connectionString") otherwise; the message names the rule, not the value.
func (c ACSConnectionString) CheckEndpoint(allowPrivate bool) error {
	const op = "acs.CheckEndpoint"
	if allowPrivate {
		return nil
	}
	refuse := func(why string) error {
		e := FieldError(op, "connectionString", "the endpoint %s: it must be an Azure Communication Services resource, "+
			"https://<resource>.communication.azure.com/ (or .communication.azure.us, .communication.azure.cn), on port 443", why)
		e.Type = ACSTypeNotAllowed
		return e
	}
	u, err := url.Parse(c.Endpoint)
	if err != nil || u.Scheme != "https" {
		return refuse("is not https")
	}
	if p := u.Port(); p != "" && p != "443" {
		return refuse("names a port other than 443")
	}
	host := strings.ToLower(u.Hostname())
	if _, err := netip.ParseAddr(host); err == nil {
		return refuse("is an IP address")
	}
	for _, suffix := range acsHostSuffixes {
		if name, ok := strings.CutSuffix(host, suffix); ok && acsResourceName.MatchString(name) {
			return nil
		}
	}
	return refuse("is not an ACS host")
}

// acsResourceName is the label an ACS resource's host starts with
// (resource names, optionally with a region label as in
// <name>.<region>.communication.azure.com).
var acsResourceName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?)?$`)
