// Package job is the one contract for work with a deadline: a timer or
// queue function (PresencePoll, PresencePollShard, Housekeeping) runs as
// a Run, which
//
//   - sets the context's deadline from the budget (the work deadline, plus
//     a grace for writes under way when it comes),
//   - answers whether the deadline is near (Near), so that work stops
//     starting items it could not finish and leaves them to the next run,
//   - runs parts side by side and joins their errors (one failing part
//     does not stop the others), and
//   - logs the run's figures once it is over.
//
// It imports no capability and no adapter.
package job

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Options configures a Run.
type Options struct {
	Name   string        // the function, for the log
	Budget time.Duration // how long the work may go on: Deadline is start + Budget
	// Grace is how long past Deadline the context lasts, for work under way
	// at the deadline (writes of what was read) to finish; 0: the context
	// ends at Deadline.
	Grace time.Duration
	Now   func() time.Time // default time.Now
	Log   *slog.Logger     // default: discard
}

// Run is one run of a job. Its methods are safe for concurrent use.
type Run struct {
	o        Options
	start    time.Time
	deadline time.Time
	cancel   context.CancelFunc

	wg      sync.WaitGroup
	mu      sync.Mutex
	errs    []error
	figures []any
}

// Start starts a run: the returned context ends at the run's deadline
// plus its grace. Call Finish when the work is over.
func Start(ctx context.Context, o Options) (context.Context, *Run) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	r := &Run{o: o, start: o.Now()}
	r.deadline = r.start.Add(o.Budget)
	ctx, r.cancel = context.WithDeadline(ctx, r.deadline.Add(o.Grace))
	return ctx, r
}

// Deadline is when the work should be done: start plus the budget.
func (r *Run) Deadline() time.Time { return r.deadline }

// Near reports whether ctx is done or ends within d: too late to start an
// item that may take d. The work deadline of a Run without grace is its
// context's.
func Near(ctx context.Context, d time.Duration) bool {
	if ctx.Err() != nil {
		return true
	}
	end, ok := ctx.Deadline()
	return ok && time.Until(end) < d
}

// Go runs part in its own goroutine; Finish waits for it. Its error is
// joined to the run's, prefixed with name.
func (r *Run) Go(ctx context.Context, name string, part func(ctx context.Context) error) {
	r.mu.Lock()
	i := len(r.errs)
	r.errs = append(r.errs, nil) // keeps the parts' errors in the order they started
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		if err := part(ctx); err != nil {
			r.mu.Lock()
			r.errs[i] = fmt.Errorf("%s: %w", name, err)
			r.mu.Unlock()
		}
	}()
}

// Fail records the failure of a part that did not run through Go.
func (r *Run) Fail(err error) {
	if err == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, err)
}

// Figure records a figure for the run's log line (key, value pairs as in
// slog).
func (r *Run) Figure(args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.figures = append(r.figures, args...)
}

// Finish waits for the parts started with Go, releases the context, logs
// the run (its budget, how long it took, whether it overran the deadline,
// its figures and errors) and returns the parts' errors joined.
func (r *Run) Finish() error {
	r.wg.Wait()
	r.cancel()
	r.mu.Lock()
	defer r.mu.Unlock()
	err := errors.Join(r.errs...)
	end := r.o.Now()
	args := append([]any{"job", r.o.Name, "budget", r.o.Budget, "took", end.Sub(r.start), "overran", end.After(r.deadline)}, r.figures...)
	if err != nil {
		r.o.Log.Warn("job finished with errors", append(args, "err", err)...)
	} else {
		r.o.Log.Info("job finished", args...)
	}
	return err
}
