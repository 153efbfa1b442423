package localrunner

import (
	"context"
	"sync"
	"time"
)

// pastDueSlack is how late a scheduled run may start before it is reported
// as IsPastDue.
const pastDueSlack = time.Second

// timerState is one timer function's schedule monitor and singleton lock.
type timerState struct {
	running  sync.Mutex // held while the function runs: runs never overlap
	statusMu sync.Mutex
	status   *ScheduleStatus // as the last scheduled run left it; nil before
}

func (ts *timerState) lastStatus() *ScheduleStatus {
	ts.statusMu.Lock()
	defer ts.statusMu.Unlock()
	if ts.status == nil {
		return nil
	}
	s := *ts.status
	return &s
}

// runSchedule fires fn at every occurrence of its schedule until ctx ends.
// An occurrence that finds the previous run still going is skipped and
// logged, as the host's singleton lock on the timer does.
func (r *Runner) runSchedule(ctx context.Context, fn *Function, wg *sync.WaitGroup) {
	ts := r.timers[fn.Name]
	next := fn.Schedule.Next(r.now())
	for {
		t := time.NewTimer(next.Sub(r.now()))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		scheduled := next
		next = fn.Schedule.Next(maxTime(r.now(), scheduled))
		if !ts.running.TryLock() {
			r.log.printf(fn.Name, "occurrence %s skipped: the previous run is still going", scheduled.UTC().Format(time.RFC3339))
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer ts.running.Unlock()
			pastDue := r.now().Sub(scheduled) > pastDueSlack
			r.inv.invoke(ctx, fn, map[string]any{fn.Binding: timerData(ts.lastStatus(), pastDue)}, nil)
			// The monitor records the run whatever its outcome, as the host does.
			ts.statusMu.Lock()
			ts.status = &ScheduleStatus{Last: scheduled, Next: fn.Schedule.Next(scheduled), LastUpdated: r.now()}
			ts.statusMu.Unlock()
		}()
	}
}

// fireTimer runs a timer function now, outside its schedule (runOnStartup,
// the admin endpoint). It waits for a run in progress to finish first.
func (r *Runner) fireTimer(ctx context.Context, fn *Function) Outcome {
	ts := r.timers[fn.Name]
	ts.running.Lock()
	defer ts.running.Unlock()
	return r.inv.invoke(ctx, fn, map[string]any{fn.Binding: timerData(ts.lastStatus(), false)}, nil)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
