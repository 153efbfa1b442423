package outbound

import (
	"context"
	"encoding/base64"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"

	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// Page sizes of List.
const (
	DefaultListTop = switchboard.DefaultOutboundListTop
	MaxListTop     = switchboard.MaxOutboundListTop
	// listScanLimit bounds the rows one List call reads while it looks for
	// tasks in a final state: a page may then come back short (even empty)
	// with a continuation token, as Table Storage's own pages do.
	listScanLimit = 1000
)

// ListOptions and ListPage are List's question and answer (domain
// vocabulary).
type (
	ListOptions = switchboard.OutboundListOptions
	ListPage    = switchboard.OutboundListPage
)

// List returns a page of the service's tasks, oldest first. Returns
// EINVALID for an unknown state, a top out of 1..MaxListTop or a malformed
// continuation token.
func (s *Service) List(ctx context.Context, tenant, service string, o ListOptions) (ListPage, error) {
	const op = "outbound.List"
	if err := checkIDs(op, tenant, service); err != nil {
		return ListPage{}, err
	}
	if o.State != "" && !ValidState(o.State) {
		return ListPage{}, switchboard.FieldError(op, "state", "state must be one of %s, not %q", strings.Join(States, ", "), truncate(o.State, 40))
	}
	if o.Top == 0 {
		o.Top = DefaultListTop
	}
	if o.Top < 1 || o.Top > MaxListTop {
		return ListPage{}, switchboard.FieldError(op, "top", "top must be between 1 and %d, not %d", MaxListTop, o.Top)
	}
	after := ""
	if o.Continuation != "" {
		b, err := base64.RawURLEncoding.DecodeString(o.Continuation)
		if err != nil || checkTaskID(op, string(b)) != nil {
			return ListPage{}, switchboard.FieldError(op, "continuationToken", "malformed continuation token")
		}
		after = string(b)
	}
	pk := partition(tenant, service)
	if Counted(o.State) {
		return s.listOpen(ctx, pk, o, after)
	}
	return s.listScan(ctx, pk, o, after)
}

func token(id string) string { return base64.RawURLEncoding.EncodeToString([]byte(id)) }

// listScan pages through the task rows.
func (s *Service) listScan(ctx context.Context, pk string, o ListOptions, after string) (ListPage, error) {
	q := store.Query{PartitionKey: pk, Prefix: taskPrefix, Top: min(listScanLimit, o.Top+1)}
	if o.State != "" {
		q.Top = listScanLimit
	}
	if after != "" {
		q.Prefix, q.RowKeyFrom, q.RowKeyTo = "", taskKey(after), store.PrefixEnd(taskPrefix)
	}
	page := ListPage{Tasks: []Task{}}
	scanned := 0
	for {
		p, err := s.table.Query(ctx, q)
		if err != nil {
			return ListPage{}, switchboard.Wrap(switchboard.EUNAVAILABLE, "outbound.List", err)
		}
		for _, e := range p.Entities {
			if e.RowKey == taskKey(after) {
				continue
			}
			scanned++
			t, err := taskFromEntity(e)
			if err != nil {
				return ListPage{}, err
			}
			if o.State != "" && t.State != o.State {
				if scanned >= listScanLimit {
					page.Continuation = token(t.ID)
					return page, nil
				}
				continue
			}
			if len(page.Tasks) == o.Top {
				page.Continuation = token(page.Tasks[len(page.Tasks)-1].ID)
				return page, nil
			}
			page.Tasks = append(page.Tasks, t)
			if scanned >= listScanLimit {
				page.Continuation = token(t.ID)
				return page, nil
			}
		}
		if p.Continuation == "" {
			return page, nil
		}
		q.Continuation = p.Continuation
	}
}

// listOpen lists tasks that hold a slot through their open rows (at most
// the cap, so no paging of the index is needed).
func (s *Service) listOpen(ctx context.Context, pk string, o ListOptions, after string) (ListPage, error) {
	var ids []string
	err := store.QueryAll(ctx, s.table, store.Query{PartitionKey: pk, Prefix: openPrefix}, func(e store.Entity) error {
		oe := openFromEntity(e)
		if oe.State == o.State && oe.ID > after {
			ids = append(ids, oe.ID)
		}
		return nil
	})
	if err != nil {
		return ListPage{}, switchboard.Wrap(switchboard.EUNAVAILABLE, "outbound.List", err)
	}
	slices.Sort(ids)
	page := ListPage{Tasks: []Task{}}
	if len(ids) > o.Top {
		ids = ids[:o.Top]
		page.Continuation = token(ids[len(ids)-1])
	}
	tasks := make([]Task, len(ids))
	errs := make([]error, len(ids))
	// Each read keeps its own error: a task deleted meanwhile (ENOTFOUND)
	// is skipped below, not a failure of the page.
	var g errgroup.Group
	g.SetLimit(8)
	for i, id := range ids {
		g.Go(func() error {
			tasks[i], errs[i] = s.getTask(ctx, pk, id)
			return nil
		})
	}
	_ = g.Wait()
	for i, t := range tasks {
		if switchboard.IsCode(errs[i], switchboard.ENOTFOUND) {
			continue
		}
		if errs[i] != nil {
			return ListPage{}, errs[i]
		}
		// The open row changes with the task in one batch; checked anyway.
		if t.State == o.State {
			page.Tasks = append(page.Tasks, t)
		}
	}
	return page, nil
}
