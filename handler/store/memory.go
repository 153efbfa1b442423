package store

import (
	"context"
	"encoding/base64"
	"fmt"
	"maps"
	"sort"
	"strings"
	"sync"
	"time"

	"switchboard/handler/switchboard"
)

// Memory is an in-process Table with Table Storage's semantics. It is used
// by unit tests and passes the same contract suite as the Azure adapter.
type Memory struct {
	mu   sync.Mutex
	rows map[[2]string]Entity
	seq  int64
	now  func() time.Time
}

// NewMemory returns an empty in-memory table.
func NewMemory() *Memory {
	return &Memory{rows: map[[2]string]Entity{}, now: time.Now}
}

// MemoryTables is an in-process Tables: one Memory per name.
type MemoryTables struct {
	mu     sync.Mutex
	tables map[string]*Memory
}

// NewMemoryTables returns an empty set of in-memory tables.
func NewMemoryTables() *MemoryTables { return &MemoryTables{tables: map[string]*Memory{}} }

// Table returns the named table, creating it on first use.
func (m *MemoryTables) Table(_ context.Context, name string) (Table, error) {
	if err := CheckTableName(name); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tables[name]
	if !ok {
		t = NewMemory()
		m.tables[name] = t
	}
	return t, nil
}

// Ping always succeeds.
func (m *MemoryTables) Ping(context.Context) error { return nil }

// CheckTableName returns EINVALID unless name is a valid table name:
// 3 to 63 letters and digits, starting with a letter.
func CheckTableName(name string) error {
	ok := len(name) >= 3 && len(name) <= 63
	for i, r := range name {
		alpha := (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
		if !alpha && !(i > 0 && r >= '0' && r <= '9') {
			ok = false
		}
	}
	if !ok {
		return switchboard.Errorf(switchboard.EINVALID, "store.Table", "invalid table name %q: 3-63 letters and digits, starting with a letter", name)
	}
	return nil
}

// CheckKey returns EINVALID unless k is a key Table Storage accepts: at most
// 1 KiB, without '/', '\', '#', '?' or control characters.
func CheckKey(what, k string) error {
	if len(k) > 1024 {
		return switchboard.Errorf(switchboard.EINVALID, "store", "%s longer than 1 KiB", what)
	}
	for _, r := range k {
		if r == '/' || r == '\\' || r == '#' || r == '?' || r < 0x20 || (r >= 0x7f && r <= 0x9f) {
			return switchboard.Errorf(switchboard.EINVALID, "store", "%s %q contains a character Table Storage refuses", what, k)
		}
	}
	return nil
}

func checkEntity(e Entity) error {
	if err := CheckKey("partition key", e.PartitionKey); err != nil {
		return err
	}
	if err := CheckKey("row key", e.RowKey); err != nil {
		return err
	}
	for name, v := range e.Props {
		switch v.(type) {
		case string, bool, int32, int64, float64, time.Time, []byte:
		default:
			return switchboard.Errorf(switchboard.EINVALID, "store", "property %q has unsupported type %T", name, v)
		}
		if name == "PartitionKey" || name == "RowKey" || name == "Timestamp" || name == "odata.etag" {
			return switchboard.Errorf(switchboard.EINVALID, "store", "property name %q is reserved", name)
		}
	}
	return nil
}

func (m *Memory) nextETag() string {
	m.seq++
	return fmt.Sprintf("W/\"mem-%d\"", m.seq)
}

func (m *Memory) put(e Entity) string {
	e.ETag = m.nextETag()
	e.Timestamp = m.now().UTC()
	e.Props = maps.Clone(e.Props)
	m.rows[[2]string{e.PartitionKey, e.RowKey}] = e
	return e.ETag
}

func clone(e Entity) Entity {
	e.Props = maps.Clone(e.Props)
	if e.Props == nil {
		e.Props = map[string]any{}
	}
	return e
}

func matches(ifMatch, etag string) bool { return ifMatch == "" || ifMatch == "*" || ifMatch == etag }

// Get implements Table.
func (m *Memory) Get(ctx context.Context, pk, rk string) (Entity, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.rows[[2]string{pk, rk}]
	if !ok {
		return Entity{}, switchboard.Errorf(switchboard.ENOTFOUND, "store.Get", "no row %q/%q", pk, rk)
	}
	return clone(e), nil
}

// Insert implements Table.
func (m *Memory) Insert(ctx context.Context, e Entity) (string, error) {
	if err := checkEntity(e); err != nil {
		return "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.rows[[2]string{e.PartitionKey, e.RowKey}]; ok {
		return "", switchboard.Errorf(switchboard.ECONFLICT, "store.Insert", "row %q/%q exists", e.PartitionKey, e.RowKey)
	}
	return m.put(e), nil
}

// Update implements Table.
func (m *Memory) Update(ctx context.Context, e Entity, ifMatch string) (string, error) {
	if err := checkEntity(e); err != nil {
		return "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.checkExisting("store.Update", e.PartitionKey, e.RowKey, ifMatch); err != nil {
		return "", err
	}
	return m.put(e), nil
}

func (m *Memory) checkExisting(op, pk, rk, ifMatch string) error {
	cur, ok := m.rows[[2]string{pk, rk}]
	if !ok {
		return switchboard.Errorf(switchboard.ENOTFOUND, op, "no row %q/%q", pk, rk)
	}
	if !matches(ifMatch, cur.ETag) {
		return switchboard.Errorf(switchboard.EPRECONDITION, op, "row %q/%q was changed by someone else", pk, rk)
	}
	return nil
}

// Upsert implements Table.
func (m *Memory) Upsert(ctx context.Context, e Entity) (string, error) {
	if err := checkEntity(e); err != nil {
		return "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.put(e), nil
}

// Delete implements Table.
func (m *Memory) Delete(ctx context.Context, pk, rk, ifMatch string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.checkExisting("store.Delete", pk, rk, ifMatch); err != nil {
		return err
	}
	delete(m.rows, [2]string{pk, rk})
	return nil
}

// Query implements Table.
func (m *Memory) Query(ctx context.Context, q Query) (Page, error) {
	from, to := q.RowKeyFrom, q.RowKeyTo
	if q.Prefix != "" {
		from, to = q.Prefix, PrefixEnd(q.Prefix)
	}
	var after [2]string
	if q.Continuation != "" {
		b, err := base64.RawURLEncoding.DecodeString(q.Continuation)
		pk, rk, ok := strings.Cut(string(b), "\x00")
		if err != nil || !ok {
			return Page{}, switchboard.Errorf(switchboard.EINVALID, "store.Query", "malformed continuation token")
		}
		after = [2]string{pk, rk}
	}
	top := q.Top
	if top <= 0 || top > 1000 {
		top = 1000
	}
	m.mu.Lock()
	var keys [][2]string
	for k := range m.rows {
		if q.PartitionKey != "" && k[0] != q.PartitionKey || !strings.HasPrefix(k[0], q.PartitionPrefix) {
			continue
		}
		if from != "" && k[1] < from || to != "" && k[1] >= to {
			continue
		}
		if q.Continuation != "" && !less(after, k) {
			continue
		}
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return less(keys[i], keys[j]) })
	var page Page
	for i, k := range keys {
		if i == top {
			last := keys[i-1]
			page.Continuation = base64.RawURLEncoding.EncodeToString([]byte(last[0] + "\x00" + last[1]))
			break
		}
		page.Entities = append(page.Entities, clone(m.rows[k]))
	}
	m.mu.Unlock()
	return page, nil
}

func less(a, b [2]string) bool {
	if a[0] != b[0] {
		return a[0] < b[0]
	}
	return a[1] < b[1]
}

// PrefixEnd returns the smallest string greater than every string that
// starts with prefix, for use as an exclusive upper bound.
func PrefixEnd(prefix string) string {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return ""
}

// Batch implements Table.
func (m *Memory) Batch(ctx context.Context, ops []Op) error {
	if err := CheckBatch(ops); err != nil {
		return err
	}
	for _, o := range ops {
		if o.Kind != OpDelete {
			if err := checkEntity(o.Entity); err != nil {
				return err
			}
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, o := range ops {
		k := [2]string{o.Entity.PartitionKey, o.Entity.RowKey}
		_, exists := m.rows[k]
		switch o.Kind {
		case OpInsert:
			if exists {
				return switchboard.Errorf(switchboard.ECONFLICT, "store.Batch", "row %q/%q exists", k[0], k[1])
			}
		case OpUpdate, OpDelete:
			if err := m.checkExisting("store.Batch", k[0], k[1], o.IfMatch); err != nil {
				return err
			}
		}
	}
	for _, o := range ops {
		k := [2]string{o.Entity.PartitionKey, o.Entity.RowKey}
		switch o.Kind {
		case OpDelete:
			delete(m.rows, k)
		case OpMerge:
			merged := o.Entity
			if cur, ok := m.rows[k]; ok {
				merged.Props = maps.Clone(cur.Props)
				if merged.Props == nil {
					merged.Props = map[string]any{}
				}
				maps.Copy(merged.Props, o.Entity.Props)
			}
			m.put(merged)
		default:
			m.put(o.Entity)
		}
	}
	return nil
}
