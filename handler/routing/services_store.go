package routing

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"switchboard/handler/internal/follow"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// Table names.
const (
	ServicesTable = "RoutingServices" // PK tenant, RK service id: the definition
	MembersTable  = "RoutingMembers"  // PK tenant|service|version, RK user id: one row per member
	StateTable    = "RoutingState"    // PK tenant: holds, idle ledger, conversations, round robin
)

// serviceStore keeps service definitions and their members. A service's
// members are rows of a partition named after a member version that the
// definition row points to: a write puts a complete new member set under a
// new version and then switches the definition to it with one ETag-guarded
// update, so a reader never sees half a member list, and concurrent writers
// cannot mix theirs. Member sets are cached in process by version (they
// never change once written), so a route reads only the definition row.
//
// Routes read the definition row from an in-process copy too, which follows
// storage as the agent state does (follow.Cache, see stateCache): this
// process's writes at once, other instances' after refreshEvery (in the
// background), and a route waits for storage only past maxLag. API reads
// (GET, PUT) always read storage.
type serviceStore struct {
	defs    store.Table
	members store.Table
	// routes holds the definition rows routes read.
	routes *follow.Cache[serviceKey, serviceRow]

	wall func() time.Time // the engine's clock: when member sets are retired
	log  *slog.Logger

	mu    sync.Mutex
	cache map[string][]Member // key: members partition (tenant|service|version)
}

type serviceKey struct{ tenant, id string }

// maxCachedSets bounds the member-set cache; past it, an arbitrary set is
// dropped (it is read again when needed).
const maxCachedSets = 2000

func newServiceStore(ctx context.Context, tables store.Tables, refreshEvery, maxLag time.Duration, log *slog.Logger) (*serviceStore, error) {
	defs, err := tables.Table(ctx, ServicesTable)
	if err != nil {
		return nil, err
	}
	members, err := tables.Table(ctx, MembersTable)
	if err != nil {
		return nil, err
	}
	if refreshEvery == 0 {
		refreshEvery = time.Second
	}
	if maxLag < refreshEvery {
		maxLag = max(10*time.Second, refreshEvery)
	}
	s := &serviceStore{defs: defs, members: members, wall: time.Now, log: log, cache: map[string][]Member{}}
	s.routes = follow.New(follow.Options[serviceKey, serviceRow]{
		Load: func(ctx context.Context, k serviceKey, _ serviceRow) (serviceRow, error) {
			return s.definition(ctx, k.tenant, k.id)
		},
		RefreshEvery: refreshEvery, MaxLag: maxLag, RefreshTimeout: 10 * time.Second,
		Gone: func(err error) bool { return switchboard.IsCode(err, switchboard.ENOTFOUND) },
		RefreshFailed: func(k serviceKey, err error) {
			log.Warn("service definition refresh failed; serving the cached one", "tenant", k.tenant, "service", k.id, "err", err)
		},
	})
	return s, nil
}

// routed returns a service with its members for a route: from the
// in-process copy while it is recent enough. Returns ENOTFOUND for an
// unknown service.
func (s *serviceStore) routed(ctx context.Context, tenant, id string) (Service, error) {
	row, err := s.routes.Get(ctx, serviceKey{tenant, id})
	if err != nil {
		return Service{}, err
	}
	row.Members, err = s.memberSet(ctx, tenant, id, row.version)
	return row.Service, err
}

// wrote records a definition this process wrote.
func (s *serviceStore) wrote(row serviceRow) {
	s.routes.Wrote(serviceKey{row.TenantID, row.ID}, row)
}

func (s *serviceStore) forget(tenant, id string) {
	s.routes.Forget(serviceKey{tenant, id})
}

func membersPartition(tenant, service, version string) string {
	return tenant + "|" + service + "|" + version
}

// serviceRow is a definition row with the member version it points to.
type serviceRow struct {
	Service
	version string
	count   int
}

func encodeService(s Service, version string, count int) store.Entity {
	d := s.Distribution
	props := map[string]any{
		"name":             s.Name,
		"teamId":           s.TeamID,
		"deliverWhileBusy": d.DeliverWhileBusy,
		"deliverWhileAway": d.DeliverWhileAway,
		"order":            d.Order,
		"broadcastSize":    int32(d.BroadcastSize),
		"holdSeconds":      int32(d.HoldSeconds),
		"distribution":     encodeDistribution(d),
		"memberVersion":    version,
		"memberCount":      int32(count),
		"createdAt":        s.CreatedAt.UTC(),
		"updatedAt":        s.UpdatedAt.UTC(),
	}
	if !s.LastTeamSync.IsZero() {
		props["lastTeamSync"] = s.LastTeamSync.UTC()
	}
	if s.LastTeamSyncError != "" {
		props["lastTeamSyncError"] = s.LastTeamSyncError
		props["lastTeamSyncAttempt"] = s.LastTeamSyncAttempt.UTC()
	}
	return store.Entity{PartitionKey: s.TenantID, RowKey: s.ID, Props: props}
}

func decodeService(e store.Entity) serviceRow {
	return serviceRow{
		Service: Service{
			TenantID:            e.PartitionKey,
			ID:                  e.RowKey,
			Name:                e.String("name"),
			TeamID:              e.String("teamId"),
			Distribution:        decodeDistribution(e),
			CreatedAt:           e.Time("createdAt"),
			UpdatedAt:           e.Time("updatedAt"),
			LastTeamSync:        e.Time("lastTeamSync"),
			LastTeamSyncError:   e.String("lastTeamSyncError"),
			LastTeamSyncAttempt: e.Time("lastTeamSyncAttempt"),
			ETag:                e.ETag,
		},
		version: e.String("memberVersion"),
		count:   int(e.Int64("memberCount")),
	}
}

// distributionV2 is how the section 10 fields are stored: one JSON
// property, so that a field added later reads as its default on rows
// written before (a missing key keeps the default).
type distributionV2 struct {
	RingSeconds          *int        `json:"ringSeconds,omitempty"`
	Rona                 *Rona       `json:"rona,omitempty"`
	AfterCallWorkSeconds *int        `json:"afterCallWorkSeconds,omitempty"`
	Queue                *QueueRules `json:"queue,omitempty"`
}

func encodeDistribution(d Distribution) string {
	b, _ := json.Marshal(distributionV2{RingSeconds: &d.RingSeconds, Rona: &d.Rona, AfterCallWorkSeconds: &d.AfterCallWorkSeconds, Queue: &d.Queue})
	return string(b)
}

// decodeDistribution reads a service row's distribution; a row stored
// before section 10 existed gets its defaults.
func decodeDistribution(e store.Entity) Distribution {
	d := DefaultDistribution()
	d.DeliverWhileBusy = e.Bool("deliverWhileBusy")
	d.DeliverWhileAway = e.Bool("deliverWhileAway")
	d.Order = e.String("order")
	d.BroadcastSize = int(e.Int64("broadcastSize"))
	d.HoldSeconds = int(e.Int64("holdSeconds"))
	var v2 distributionV2
	if raw := e.String("distribution"); raw != "" && json.Unmarshal([]byte(raw), &v2) == nil {
		if v2.RingSeconds != nil {
			d.RingSeconds = *v2.RingSeconds
		}
		if v2.Rona != nil {
			d.Rona = *v2.Rona
		}
		if v2.AfterCallWorkSeconds != nil {
			d.AfterCallWorkSeconds = *v2.AfterCallWorkSeconds
		}
		if v2.Queue != nil {
			d.Queue = *v2.Queue
		}
	}
	return d
}

// definition reads a definition row. Returns ENOTFOUND for an unknown
// service.
func (s *serviceStore) definition(ctx context.Context, tenant, id string) (serviceRow, error) {
	e, err := s.defs.Get(ctx, tenant, id)
	if err != nil {
		if switchboard.IsCode(err, switchboard.ENOTFOUND) {
			return serviceRow{}, &switchboard.Error{Code: switchboard.ENOTFOUND, Op: "routing.Service", Message: "no service " + id + " in this tenant"}
		}
		return serviceRow{}, err
	}
	return decodeService(e), nil
}

// get returns a service with its members. Returns ENOTFOUND for an unknown
// service.
func (s *serviceStore) get(ctx context.Context, tenant, id string) (Service, error) {
	row, err := s.definition(ctx, tenant, id)
	if err != nil {
		return Service{}, err
	}
	row.Members, err = s.memberSet(ctx, tenant, id, row.version)
	return row.Service, err
}

// memberSet returns the members of one version of a service's member set,
// from the cache when it holds them. The slice is shared: do not modify it.
func (s *serviceStore) memberSet(ctx context.Context, tenant, id, version string) ([]Member, error) {
	if version == "" {
		return nil, nil
	}
	pk := membersPartition(tenant, id, version)
	s.mu.Lock()
	cached, ok := s.cache[pk]
	s.mu.Unlock()
	if ok {
		return cached, nil
	}
	var members []Member
	err := store.QueryAll(ctx, s.members, store.Query{PartitionKey: pk}, func(e store.Entity) error {
		m := Member{UserID: e.RowKey, Active: e.Bool("active")}
		if raw := e.String("skills"); raw != "" {
			_ = json.Unmarshal([]byte(raw), &m.Skills)
		}
		members = append(members, m)
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.remember(pk, members)
	return members, nil
}

func (s *serviceStore) remember(pk string, members []Member) {
	if members == nil {
		members = []Member{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.cache) >= maxCachedSets {
		for k := range s.cache {
			delete(s.cache, k)
			break
		}
	}
	s.cache[pk] = members
}

func newVersion() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// put writes svc (members sorted by user id) as the new definition of the
// service. ifMatch is the ETag the caller read ("" to create or replace
// whatever is there, checked against the row read at the start so that a
// concurrent writer is detected either way). It returns the stored service
// and whether it was created. Returns EPRECONDITION when the service
// changed since ifMatch or since it was read here.
func (s *serviceStore) put(ctx context.Context, svc Service, ifMatch string) (Service, bool, error) {
	const op = "routing.PutService"
	cur, err := s.definition(ctx, svc.TenantID, svc.ID)
	exists := err == nil
	if err != nil && !switchboard.IsCode(err, switchboard.ENOTFOUND) {
		return Service{}, false, err
	}
	if ifMatch != "" && ifMatch != "*" && (!exists || !ifMatchHolds(ifMatch, cur.ETag)) {
		return Service{}, false, switchboard.Errorf(switchboard.EPRECONDITION, op, "the service was changed since it was read (If-Match does not match)")
	}
	if ifMatch == "*" && !exists {
		return Service{}, false, &switchboard.Error{Code: switchboard.ENOTFOUND, Op: op, Message: "no service " + svc.ID + " in this tenant"}
	}
	if exists {
		svc.CreatedAt = cur.CreatedAt
	}
	version := ""
	if exists {
		old, err := s.memberSet(ctx, svc.TenantID, svc.ID, cur.version)
		if err != nil {
			return Service{}, false, err
		}
		if slices.EqualFunc(old, svc.Members, Member.Equal) {
			version = cur.version
		}
	}
	if version == "" && len(svc.Members) > 0 {
		version = newVersion()
		if err := s.writeMembers(ctx, svc.TenantID, svc.ID, version, svc.Members); err != nil {
			s.dropMembers(ctx, svc.TenantID, svc.ID, version)
			return Service{}, false, err
		}
	}
	e := encodeService(svc, version, len(svc.Members))
	if exists {
		svc.ETag, err = s.defs.Update(ctx, e, cur.ETag)
	} else {
		svc.ETag, err = s.defs.Insert(ctx, e)
		if switchboard.IsCode(err, switchboard.ECONFLICT) {
			err = switchboard.Errorf(switchboard.EPRECONDITION, op, "the service was created concurrently by another request; read it and retry")
		}
	}
	if err != nil {
		if version != "" && (!exists || version != cur.version) {
			s.dropMembers(ctx, svc.TenantID, svc.ID, version)
		}
		if switchboard.IsCode(err, switchboard.EPRECONDITION) {
			return Service{}, false, switchboard.Wrap(switchboard.EPRECONDITION, op, err)
		}
		return Service{}, false, err
	}
	if version != "" {
		s.remember(membersPartition(svc.TenantID, svc.ID, version), svc.Members)
	}
	s.wrote(serviceRow{Service: svc, version: version, count: len(svc.Members)})
	if exists && cur.version != "" && cur.version != version {
		s.retireMembers(ctx, svc.TenantID, svc.ID, cur.version, svc.UpdatedAt)
	}
	return svc, !exists, nil
}

// updateDefinition rewrites the definition row only (same member version),
// guarded by svc.ETag.
func (s *serviceStore) updateDefinition(ctx context.Context, svc Service, version string) (Service, error) {
	etag, err := s.defs.Update(ctx, encodeService(svc, version, len(svc.Members)), svc.ETag)
	if err != nil {
		return Service{}, err
	}
	svc.ETag = etag
	s.wrote(serviceRow{Service: svc, version: version, count: len(svc.Members)})
	return svc, nil
}

func (s *serviceStore) writeMembers(ctx context.Context, tenant, id, version string, members []Member) error {
	pk := membersPartition(tenant, id, version)
	ops := make([]store.Op, len(members))
	for i, m := range members {
		props := map[string]any{"active": m.Active}
		if len(m.Skills) > 0 {
			b, _ := json.Marshal(m.Skills)
			props["skills"] = string(b)
		}
		ops[i] = store.Op{Kind: store.OpUpsert, Entity: store.Entity{PartitionKey: pk, RowKey: m.UserID, Props: props}}
	}
	_, err := store.WriteBatched(ctx, s.members, ops)
	return err
}

// dropMembers deletes a member set that nothing points to any more. It is
// best effort: a leftover partition is never read.
func (s *serviceStore) dropMembers(ctx context.Context, tenant, id, version string) {
	pk := membersPartition(tenant, id, version)
	s.mu.Lock()
	delete(s.cache, pk)
	s.mu.Unlock()
	var ops []store.Op
	_ = store.QueryAll(ctx, s.members, store.Query{PartitionKey: pk}, func(e store.Entity) error {
		ops = append(ops, store.Op{Kind: store.OpDelete, Entity: store.Entity{PartitionKey: pk, RowKey: e.RowKey}})
		return nil
	})
	if len(ops) > 0 {
		_, _ = store.WriteBatched(ctx, s.members, ops)
	}
}

// delete removes a service and its members. Returns ENOTFOUND for an
// unknown service and EPRECONDITION when ifMatch ("" for any) is stale.
func (s *serviceStore) delete(ctx context.Context, tenant, id, ifMatch string) error {
	cur, err := s.definition(ctx, tenant, id)
	if err != nil {
		return err
	}
	if ifMatch != "" && ifMatch != "*" && !ifMatchHolds(ifMatch, cur.ETag) {
		return switchboard.Errorf(switchboard.EPRECONDITION, "routing.DeleteService", "the service was changed since it was read (If-Match does not match)")
	}
	s.forget(tenant, id)
	if err := s.defs.Delete(ctx, tenant, id, cur.ETag); err != nil {
		if switchboard.IsCode(err, switchboard.ENOTFOUND) {
			return &switchboard.Error{Code: switchboard.ENOTFOUND, Op: "routing.DeleteService", Message: "no service " + id + " in this tenant"}
		}
		return err
	}
	if cur.version != "" {
		s.retireMembers(ctx, tenant, id, cur.version, s.wall())
	}
	return nil
}

// list returns the definitions of a tenant's services ("" for every
// tenant's), in key order.
func (s *serviceStore) list(ctx context.Context, tenant string) ([]serviceRow, error) {
	var rows []serviceRow
	err := store.QueryAll(ctx, s.defs, store.Query{PartitionKey: tenant}, func(e store.Entity) error {
		rows = append(rows, decodeService(e))
		return nil
	})
	return rows, err
}

// sortedMembers sorts members by user id in place and returns them.
func sortedMembers(m []Member) []Member {
	slices.SortFunc(m, func(a, b Member) int { return strings.Compare(a.UserID, b.UserID) })
	return m
}

// now is a clock reading without monotonic part, so that values compare
// equal after a round trip through storage.
func wallClock(now func() time.Time) time.Time { return now().UTC().Round(0) }
