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

	"switchboard/handler/switchboard"
)

// Graph reads presence through one source in one tenant. Every error is a
// *switchboard.SourceError saying why, in terms a tenant admin can act on.
type Graph interface {
	// Presences reads the presence of at most switchboard.MaxPresenceIDsPerCall users with one
	// getPresencesByUserId request. Users Graph does not report are absent
	// from the result.
	Presences(ctx context.Context, tenantID string, src switchboard.PresenceSource, userIDs []string) ([]switchboard.PresenceReading, error)
	// User resolves a user principal name or object id. Returns a
	// switchboard.SourceError with switchboard.SourceUserNotFound when there is no such user.
	User(ctx context.Context, tenantID string, src switchboard.PresenceSource, upnOrID string) (switchboard.DirectoryUser, error)
}

// Settings is what the poll needs of a tenant's settings.
type Settings interface {
	// TrackOverGuestAccounts returns the tenant's
	// presenceTracking.trackOverGuestAccounts (false when never set).
	TrackOverGuestAccounts(ctx context.Context, tenantID string) (bool, error)
}
