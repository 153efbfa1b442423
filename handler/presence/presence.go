// Package presence keeps every tracked agent's Teams presence in Table
// Storage (SPEC section 3). The poller reads presence through Microsoft
// Graph (the Graph interface; package graph implements it with
// msgraph-sdk-go) with presence account 1, account 2 and application
// permission in turn, writes only what changed, and records per tenant
// which source worked and why the others did not. Store serves the stored
// readings to routing from an in-process cache that follows storage.
//
// Storage layout. A tenant's users are hashed into S shards (S a power of
// two, about 400 users each, so one Graph call of at most 650 ids covers a
// shard); four consecutive shards share a partition of the presence table
// ("{tenant}.{gen}.{partition}"), so a 100,000-agent tenant spreads over 64
// partitions of some 1,600 rows and a poll's changes take about one batch
// per partition. Per tenant, one
// partition of the state table holds the layout (generation and S), one
// row per shard (last confirmation, version of its readings), the status of
// each source and the figures of the last poll. A poll that finds a reading
// unchanged does not rewrite it: it confirms the whole shard, and a
// reading's ConfirmedAt is the later of its ChangedAt and its shard's
// confirmation.
package presence

import (
	"context"
	"errors"
	"fmt"
	"time"

	"switchboard/handler/switchboard"
)

// MaxIDsPerCall is the most user ids one getPresencesByUserId call takes.
const MaxIDsPerCall = 650

// Source is a credential presence is read through: switchboard.SourceAccount1,
// SourceAccount2 or SourceApplication.
type Source string

// The sources, in the order a poll tries them.
const (
	Account1    Source = switchboard.SourceAccount1
	Account2    Source = switchboard.SourceAccount2
	Application Source = switchboard.SourceApplication
)

// Sources lists every source in poll order.
var Sources = []Source{Account1, Account2, Application}

// Extended reports whether readings through src carry the activity as
// Teams users inside the tenant see it. Only the presence accounts do:
// Switchboard treats an application-permission reading as basic (its
// availability is trusted, its activity is not), which is what the product
// documentation promises customers without guest accounts (seed 000) and
// the conservative side for routing (a basic Busy is never mistaken for an
// extended "Busy, in a meeting").
func (s Source) Extended() bool { return s == Account1 || s == Account2 }

// Account returns the presence account number of s (1 or 2), or 0.
func (s Source) Account() int {
	switch s {
	case Account1:
		return 1
	case Account2:
		return 2
	}
	return 0
}

// Reading is one user's presence as Graph reported it.
type Reading struct {
	UserID       string
	Availability string
	Activity     string
	OutOfOffice  bool
}

// User is a directory user as Graph resolves it.
type User struct {
	ID                string
	UserPrincipalName string
	DisplayName       string
}

// Graph reads presence through one source in one tenant. Every error is a
// *SourceError saying why, in terms a tenant admin can act on.
type Graph interface {
	// Presences reads the presence of at most MaxIDsPerCall users with one
	// getPresencesByUserId request. Users Graph does not report are absent
	// from the result.
	Presences(ctx context.Context, tenantID string, src Source, userIDs []string) ([]Reading, error)
	// User resolves a user principal name or object id. Returns a
	// SourceError with ReasonUserNotFound when there is no such user.
	User(ctx context.Context, tenantID string, src Source, upnOrID string) (User, error)
}

// Settings is what the poll needs of a tenant's settings.
type Settings interface {
	// TrackOverGuestAccounts returns the tenant's
	// presenceTracking.trackOverGuestAccounts (false when never set).
	TrackOverGuestAccounts(ctx context.Context, tenantID string) (bool, error)
}

// Reason says why a source failed, for tenant admins. Stable: the API
// returns it.
type Reason string

// Reasons.
const (
	ReasonNotConfigured        Reason = "not-configured"         // the deployment has no credentials for this source
	ReasonNotInvited           Reason = "not-invited"            // the presence account is not a guest of the tenant
	ReasonPermissionNotGranted Reason = "permission-not-granted" // consent missing (delegated or application)
	ReasonMFARequired          Reason = "mfa-required"           // the tenant demands MFA of the presence account
	ReasonWrongPassword        Reason = "wrong-password"         // the deployment's password is wrong
	ReasonSignInBlocked        Reason = "sign-in-blocked"        // locked, disabled, expired password, Conditional Access
	ReasonAppMisconfigured     Reason = "app-misconfigured"      // the app registration refuses the flow (deployment's fault)
	ReasonThrottled            Reason = "throttled"              // Graph answered 429/503 until the budget ran out
	ReasonGraphError           Reason = "graph-error"            // Graph failed or answered nonsense
	ReasonSignInError          Reason = "sign-in-error"          // the sign-in failed for another reason
	ReasonUserNotFound         Reason = "user-not-found"         // Test UPN: no such user
)

// SourceError is a failure of one source, with a reason a tenant admin can
// act on. Message never holds secrets.
type SourceError struct {
	Source     Source
	Reason     Reason
	Message    string
	Code       string        // AADSTS code or Graph error code, when known
	Status     int           // Graph's HTTP status; 0 when the sign-in failed
	RetryAfter time.Duration // for ReasonThrottled: what Graph asked for
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
	case ReasonThrottled, ReasonGraphError, ReasonUserNotFound:
		return false
	}
	return true
}

// ReachedGraph reports whether the failure was Graph's answer (or a
// failed exchange with Graph) rather than a sign-in that failed before any
// Graph request.
func (e *SourceError) ReachedGraph() bool {
	return e.Status != 0 || e.Reason == ReasonGraphError || e.Reason == ReasonThrottled
}

// AsSourceError returns err as a *SourceError of src: a SourceError keeps
// its reason, a context error becomes a Graph error, anything else too.
func AsSourceError(src Source, err error) *SourceError {
	var se *SourceError
	if errors.As(err, &se) {
		if se.Source == "" {
			c := *se
			c.Source = src
			return &c
		}
		return se
	}
	return &SourceError{Source: src, Reason: ReasonGraphError, Message: "the request to Microsoft Graph failed: " + err.Error(), Err: err}
}
