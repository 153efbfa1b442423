package routing

import (
	"context"
	"strings"
	"time"

	"switchboard/handler/job"
	"switchboard/handler/store"
)

// MemberSetRetention is how long a member set stays readable after the
// definition stopped pointing to it. Another instance may still route on
// the definition it cached (up to its refresh lag, seconds) and a request
// in flight may still be reading the set's rows: deleting the set at once
// would let it route on a half-deleted member list. Housekeeping deletes
// retired sets once this has passed.
const MemberSetRetention = 5 * time.Minute

// retiredPartition holds one row per retired member set of the members
// table: RowKey the set's partition, RetiredAt when it was retired.
const retiredPartition = "retired"

// retireMembers marks a member set that nothing points to any more for
// deletion by dropRetired. Best effort: a set left behind costs storage,
// never correctness.
func (s *serviceStore) retireMembers(ctx context.Context, tenant, id, version string, at time.Time) {
	e := store.Entity{PartitionKey: retiredPartition, RowKey: membersPartition(tenant, id, version), Props: map[string]any{"RetiredAt": at.UTC()}}
	if _, err := s.members.Upsert(ctx, e); err != nil {
		s.log.Warn("routing: a replaced member set could not be marked for deletion; it stays", "tenant", tenant, "service", id, "err", err)
	}
}

// dropRetired deletes the member sets retired before cutoff and their
// markers; it returns how many it deleted.
func (s *serviceStore) dropRetired(ctx context.Context, cutoff time.Time) (int, error) {
	var due []store.Entity
	err := store.QueryAll(ctx, s.members, store.Query{PartitionKey: retiredPartition}, func(e store.Entity) error {
		if e.Time("RetiredAt").Before(cutoff) {
			due = append(due, e)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range due {
		if job.Near(ctx, stopBefore) {
			break
		}
		parts := strings.Split(e.RowKey, "|")
		if len(parts) == 3 {
			s.dropMembers(ctx, parts[0], parts[1], parts[2])
		}
		if err := s.members.Delete(ctx, retiredPartition, e.RowKey, e.ETag); err != nil {
			continue // the next run tries again
		}
		n++
	}
	return n, nil
}
