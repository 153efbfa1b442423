// Package settings keeps each tenant's settings (SPEC section 5): defaults
// on first read, JSON merge patches guarded by ETags, the widget key, and
// the ACS connection strings, which are write-only: no view, error message
// or log line ever holds one.
//
// Dotted names ("interact.sessionRecoveryTimeoutSeconds") are the nested
// JSON objects of the API; every validation error names the dotted field
// and says what is allowed.
package settings

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/google/uuid"

	"switchboard/handler/switchboard"
)

// Allowed values and ranges.
const (
	MinMaxScheduledTasksPerService     = 1
	MaxMaxScheduledTasksPerService     = 50
	DefaultMaxScheduledTasksPerService = 20

	MinSessionRecoveryTimeoutSeconds     = 5
	MaxSessionRecoveryTimeoutSeconds     = 60
	DefaultSessionRecoveryTimeoutSeconds = 20

	// MaxContactSearchFilterLength bounds the Graph $filter text.
	MaxContactSearchFilterLength = 2048
)

// Interact authorization modes.
const (
	AuthorizationNone                 = "None"
	AuthorizationVerifyToken          = "VerifyToken"
	AuthorizationVerifyTokenAndTenant = "VerifyTokenAndTenant"
)

// Attendant Console team visibility.
const (
	TeamVisibilityNoMembers  = "NoMembers"
	TeamVisibilityOwnMembers = "OwnMembers"
	TeamVisibilityAllMembers = "AllMembers"
)

// Authorizations and TeamVisibilities are the allowed values, in the order
// error messages list them.
var (
	Authorizations   = []string{AuthorizationNone, AuthorizationVerifyToken, AuthorizationVerifyTokenAndTenant}
	TeamVisibilities = []string{TeamVisibilityNoMembers, TeamVisibilityOwnMembers, TeamVisibilityAllMembers}
)

// Secret is a write-only value. It prints and marshals as "<redacted>", so
// that a Settings logged or rendered by mistake leaks nothing; Reveal
// returns the value for the one place that needs it.
type Secret string

// Reveal returns the secret value.
func (s Secret) Reveal() string { return string(s) }

// IsSet reports whether a value is stored.
func (s Secret) IsSet() bool { return s != "" }

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "<redacted>"
}

// GoString implements fmt.GoStringer (%#v).
func (s Secret) GoString() string { return `"` + s.String() + `"` }

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// Settings are one tenant's settings.
type Settings struct {
	Outbound         Outbound
	Interact         Interact
	Assistant        Assistant
	AttendantConsole AttendantConsole
	PresenceTracking PresenceTracking
}

// Outbound holds outbound.*.
type Outbound struct {
	MaxScheduledTasksPerService int
}

// Interact holds interact.*.
type Interact struct {
	Enabled                       bool
	ACSConnectionString           Secret
	O365UserID                    string // Entra object id, lower case; "" when unset
	WidgetKey                     string // read-only: generated, replaced by RefreshWidgetKey
	SessionRecoveryTimeoutSeconds int
	Authorization                 string
}

// Assistant holds assistant.*.
type Assistant struct {
	UseOwnACSInstance   bool
	ACSConnectionString Secret
}

// AttendantConsole holds attendantConsole.*.
type AttendantConsole struct {
	ContactSearchFilter string
	TeamVisibility      string
	// ContactSearchFilterCheck is the outcome of checking the filter when
	// it was saved (read-only; zero for no filter, or one saved before
	// filters were checked).
	ContactSearchFilterCheck FilterCheck
}

// PresenceTracking holds the writable part of presenceTracking.*; the
// presence accounts are the deployment's and read-only.
type PresenceTracking struct {
	TrackOverGuestAccounts bool
}

// Defaults returns the settings of a tenant that never changed any (without
// a widget key: that is generated when the settings are first stored).
func Defaults() Settings {
	return Settings{
		Outbound: Outbound{MaxScheduledTasksPerService: DefaultMaxScheduledTasksPerService},
		Interact: Interact{
			SessionRecoveryTimeoutSeconds: DefaultSessionRecoveryTimeoutSeconds,
			Authorization:                 AuthorizationNone,
		},
		// Visible by default, like the unrestricted contact search: hiding
		// members is the tenant's choice to protect service queues.
		AttendantConsole: AttendantConsole{TeamVisibility: TeamVisibilityAllMembers},
	}
}

// Validate checks every rule of SPEC section 5 and returns the first
// violation as EINVALID naming the dotted field and what is allowed.
func Validate(s Settings) error {
	const op = "settings.Validate"
	if err := checkRange(
		op,
		"outbound.maxScheduledTasksPerService",
		int64(s.Outbound.MaxScheduledTasksPerService),
		MinMaxScheduledTasksPerService,
		MaxMaxScheduledTasksPerService,
	); err != nil {
		return err
	}
	if err := checkSecret(op, "interact.acsConnectionString", s.Interact.ACSConnectionString.Reveal()); err != nil {
		return err
	}
	if s.Interact.Enabled && !s.Interact.ACSConnectionString.IsSet() {
		return switchboard.FieldError(op, "interact.enabled", "interact.enabled can be true only with an ACS connection string: set "+
			"interact.acsConnectionString (in the same patch or before)")
	}
	if err := checkGUID(op, "interact.o365UserId", s.Interact.O365UserID); err != nil {
		return err
	}
	if s.Interact.WidgetKey != "" {
		if err := checkGUID(op, "interact.widgetKey", s.Interact.WidgetKey); err != nil {
			return err
		}
	}
	if err := checkRange(
		op,
		"interact.sessionRecoveryTimeoutSeconds",
		int64(s.Interact.SessionRecoveryTimeoutSeconds),
		MinSessionRecoveryTimeoutSeconds,
		MaxSessionRecoveryTimeoutSeconds,
	); err != nil {
		return err
	}
	if err := checkEnum(op, "interact.authorization", s.Interact.Authorization, Authorizations); err != nil {
		return err
	}
	if err := checkSecret(op, "assistant.acsConnectionString", s.Assistant.ACSConnectionString.Reveal()); err != nil {
		return err
	}
	if s.Assistant.UseOwnACSInstance && !s.Assistant.ACSConnectionString.IsSet() {
		return switchboard.FieldError(op, "assistant.useOwnAcsInstance", "assistant.useOwnAcsInstance can be true only with an ACS connection "+
			"string: set assistant.acsConnectionString (in the same patch or before)")
	}
	if err := checkFilter(op, "attendantConsole.contactSearchFilter", s.AttendantConsole.ContactSearchFilter); err != nil {
		return err
	}
	return checkEnum(op, "attendantConsole.teamVisibility", s.AttendantConsole.TeamVisibility, TeamVisibilities)
}

func rangeError(op, field string, lo, hi int64) *switchboard.Error {
	return switchboard.FieldError(op, field, "%s must be an integer from %d to %d", field, lo, hi)
}

func checkRange(op, field string, v, lo, hi int64) error {
	if v < lo || v > hi {
		e := rangeError(op, field, lo, hi)
		e.Message += fmt.Sprintf("; got %d", v)
		return e
	}
	return nil
}

func checkEnum(op, field, v string, allowed []string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return switchboard.FieldError(op, field, "%s must be one of %s (case-sensitive); got %q", field, strings.Join(allowed, ", "), clip(v, 40))
}

// checkGUID accepts "" (unset) or a GUID in its canonical lower-case form.
func checkGUID(op, field, v string) error {
	if v == "" {
		return nil
	}
	if u, err := uuid.Parse(v); err != nil || len(v) != 36 || u.String() != v {
		return switchboard.FieldError(op, field, "%s must be an Entra object id (a GUID such as 00000000-0000-0000-0000-000000000000) or empty; "+
			"got %q", field, clip(v, 40))
	}
	return nil
}

// checkSecret accepts "" (unset) or a well-formed ACS connection string;
// the message says what is wrong and never repeats the value.
func checkSecret(op, field, v string) error {
	if v == "" {
		return nil
	}
	if _, err := switchboard.ParseACSConnectionString(v); err != nil {
		return switchboard.FieldError(op, field, "%s is not a valid ACS connection string: %s", field, switchboard.ErrorMessage(err))
	}
	return nil
}

func checkFilter(op, field, v string) error {
	if len(v) > MaxContactSearchFilterLength {
		return switchboard.FieldError(op, field, "%s must be at most %d characters; got %d", field, MaxContactSearchFilterLength, len(v))
	}
	for _, r := range v {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return switchboard.FieldError(op, field, "%s must be one line of text (a Graph $filter expression) without control characters", field)
		}
	}
	if !balanced(v) {
		return switchboard.FieldError(op, field, "%s has an unterminated string literal or unbalanced parentheses: the search is ANDed to the "+
			"filter in parentheses, which the filter must not close (a ' inside a literal is written '')", field)
	}
	return nil
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// AccountState says how a presence account fares in a tenant.
const (
	AccountOK            = switchboard.AccountOK
	AccountFailing       = switchboard.AccountFailing
	AccountUntested      = switchboard.AccountUntested
	AccountDisabled      = switchboard.AccountDisabled
	AccountNotConfigured = switchboard.AccountNotConfigured
	AccountUnknown       = switchboard.AccountUnknown
)

// AccountStatus is the status of one presence account in one tenant.
type AccountStatus = switchboard.AccountStatus
