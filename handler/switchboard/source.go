package switchboard

import (
	"errors"
	"fmt"
	"time"
)

// PresenceSource is a credential presence is read through: SourceAccount1,
// SourceAccount2 or SourceApplication (untyped, so that they also fill
// Presence.Source).
type PresenceSource string

// PresenceSources lists every source in the order a poll tries them.
var PresenceSources = []PresenceSource{SourceAccount1, SourceAccount2, SourceApplication}

// Extended reports whether readings through s carry the activity as Teams
// users inside the tenant see it. Only the presence accounts do:
// Switchboard treats an application-permission reading as basic (its
// availability is trusted, its activity is not), which is what the product
// documentation promises customers without guest accounts (seed 000) and
// the conservative side for routing (a basic Busy is never mistaken for an
// extended "Busy, in a meeting").
func (s PresenceSource) Extended() bool { return s == SourceAccount1 || s == SourceAccount2 }

// Account returns the presence account number of s (1 or 2), or 0.
func (s PresenceSource) Account() int {
	switch s {
	case SourceAccount1:
		return 1
	case SourceAccount2:
		return 2
	}
	return 0
}

// MaxPresenceIDsPerCall is the most user ids one read of presences
// (Graph's getPresencesByUserId) takes.
const MaxPresenceIDsPerCall = 650

// PresenceReading is one user's presence as Graph reported it.
type PresenceReading struct {
	UserID       string
	Availability string
	Activity     string
	OutOfOffice  bool
}

// DirectoryUser is a directory user as Graph resolves it.
type DirectoryUser struct {
	ID                string
	UserPrincipalName string
	DisplayName       string
}

// SourceReason says why a presence source failed, for tenant admins.
// Stable: the API returns it.
type SourceReason string

// Source reasons.
const (
	SourceNotConfigured        SourceReason = "not-configured"         // the deployment has no credentials for this source
	SourceNotInvited           SourceReason = "not-invited"            // the presence account is not a guest of the tenant
	SourcePermissionNotGranted SourceReason = "permission-not-granted" // consent missing (delegated or application)
	SourceMFARequired          SourceReason = "mfa-required"           // the tenant demands MFA of the presence account
	SourceWrongPassword        SourceReason = "wrong-password"         // the deployment's password is wrong
	SourceSignInBlocked        SourceReason = "sign-in-blocked"        // locked, disabled, expired password, Conditional Access
	SourceAppMisconfigured     SourceReason = "app-misconfigured"      // the app registration refuses the flow (deployment's fault)
	SourceThrottled            SourceReason = "throttled"              // Graph answered 429/503 until the budget ran out
	SourceGraphError           SourceReason = "graph-error"            // Graph failed or answered nonsense
	SourceSignInError          SourceReason = "sign-in-error"          // the sign-in failed for another reason
	SourceUserNotFound         SourceReason = "user-not-found"         // Test UPN: no such user
)

// SourceError is a failure of one presence source, with a reason a tenant
// admin can act on. Message never holds secrets.
type SourceError struct {
	Source     PresenceSource
	Reason     SourceReason
	Message    string
	Code       string        // AADSTS code or Graph error code, when known
	Status     int           // Graph's HTTP status; 0 when the sign-in failed
	RetryAfter time.Duration // for SourceThrottled: what Graph asked for
	// Transient: the failure says nothing about the source in this tenant
	// (Entra could not be reached or failed): it does not disqualify it.
	Transient bool
	Err       error
}

func (e *SourceError) Error() string {
	msg := fmt.Sprintf("%s: %s: %s", e.Source, e.Reason, e.Message)
	if e.Code != "" {
		msg += " (" + e.Code + ")"
	}
	return msg
}

func (e *SourceError) Unwrap() error { return e.Err }

// Disqualifies reports whether the failure is a property of the source in
// this tenant (it will fail the same way for every call), so that the poll
// stops using it and falls back to the next one. Throttling and Graph
// errors are transient: only the failing call falls back.
func (e *SourceError) Disqualifies() bool {
	if e.Transient {
		return false
	}
	switch e.Reason {
	case SourceThrottled, SourceGraphError, SourceUserNotFound:
		return false
	}
	return true
}

// ReachedGraph reports whether the failure was Graph's answer (or a
// failed exchange with Graph) rather than a sign-in that failed before any
// Graph request.
func (e *SourceError) ReachedGraph() bool {
	return e.Status != 0 || e.Reason == SourceGraphError || e.Reason == SourceThrottled
}

// AsSourceError returns err as a *SourceError of src: a SourceError keeps
// its reason (and gets src when it names none), anything else becomes a
// Graph error.
func AsSourceError(src PresenceSource, err error) *SourceError {
	var se *SourceError
	if errors.As(err, &se) {
		if se.Source == "" {
			c := *se
			c.Source = src
			return &c
		}
		return se
	}
	return &SourceError{Source: src, Reason: SourceGraphError, Message: "the request to Microsoft Graph failed: " + err.Error(), Err: err}
}
