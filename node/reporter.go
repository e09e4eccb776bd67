package node

import (
	"context"
	"log"
	"sync"
	"time"

	"github.com/bertnode/bertnode/api"
)

// reporter sends the newest progress to the coordinator about once a second, off the
// step loop: a slow or leaderless coordinator never slows training, and reports that
// fail are simply superseded by the next.
type reporter struct {
	mu     sync.Mutex
	cur    api.ProgressReport // the newest report
	dirty  bool               // cur has not been sent
	coord  Coordinator
	job    string
	log    *log.Logger
	cancel context.CancelFunc
	done   chan struct{}
}

func startReporter(ctx context.Context, c Coordinator, job string, l *log.Logger) *reporter {
	ctx, cancel := context.WithCancel(ctx)
	r := &reporter{coord: c, job: job, log: l, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				r.flush(ctx)
			case <-ctx.Done():
				return
			}
		}
	}()
	return r
}

// update changes the newest report.
func (r *reporter) update(fn func(*api.ProgressReport)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fn(&r.cur)
	r.dirty = true
}

// flush sends the newest report now, unless it was sent.
func (r *reporter) flush(ctx context.Context) {
	r.mu.Lock()
	p, dirty := r.cur, r.dirty
	r.dirty = false
	r.mu.Unlock()
	if !dirty {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := r.coord.Progress(ctx, r.job, p); err != nil && ctx.Err() == nil {
		r.log.Printf("job %s: progress report: %v", r.job, err)
	}
}

func (r *reporter) stop() {
	r.cancel()
	<-r.done
}

// checkpointReports sends the checkpoint reports one at a time, off the step loop: a
// leader cut off the network answers nothing for up to the client's answer timeout, and
// a step that waited on it outlasted the ring's timeout (the fault suite drew it: two
// leader partitions, and a generation rebuilt for nothing). A report not yet sent when
// a newer one comes is dropped: each compares the replicas whole. The coordinator's
// refusal of a report of the generation still training comes back to the step loop
// through refused, as when the step waited for the answer.
type checkpointReports struct {
	job     string
	log     *log.Logger
	mu      sync.Mutex
	next    *api.CheckpointReport
	err     error // the last refusal, of a report of generation errGen
	errGen  uint32
	sending bool          // a report is on its way
	idle    chan struct{} // closed, and replaced, when the last queued report is answered
	wake    chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
}

func startCheckpointReports(ctx context.Context, c Coordinator, job string, l *log.Logger) *checkpointReports {
	ctx, cancel := context.WithCancel(ctx)
	r := &checkpointReports{job: job, log: l, idle: make(chan struct{}), wake: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for {
			select {
			case <-r.wake:
			case <-ctx.Done():
				return
			}
			r.mu.Lock()
			rep := r.next
			r.next, r.sending = nil, rep != nil
			r.mu.Unlock()
			if rep == nil {
				continue
			}
			err := retry(ctx, l, "checkpoint report", func() error { return c.Checkpoint(ctx, job, *rep) })
			r.mu.Lock()
			if err != nil && ctx.Err() == nil {
				r.err, r.errGen = err, rep.Gen
			}
			r.sending = false
			if r.next == nil {
				close(r.idle)
				r.idle = make(chan struct{})
			}
			r.mu.Unlock()
		}
	}()
	return r
}

// send queues rep, replacing a report not yet sent.
func (r *checkpointReports) send(rep api.CheckpointReport) {
	r.mu.Lock()
	if r.next != nil {
		r.log.Printf("job %s: checkpoint report of step %d not sent: the one of step %d replaces it", r.job, r.next.Step, rep.Step)
	}
	r.next = &rep
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// refused is the coordinator's refusal of a report of generation gen, if any.
func (r *checkpointReports) refused(gen uint32) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil && r.errGen == gen {
		return r.err
	}
	return nil
}

// flush waits, at most for d, until every queued report has been answered; false when
// one still waits.
func (r *checkpointReports) flush(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		r.mu.Lock()
		if r.next == nil && !r.sending {
			r.mu.Unlock()
			return true
		}
		idle := r.idle
		r.mu.Unlock()
		select {
		case <-idle:
		case <-t.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

func (r *checkpointReports) stop() {
	r.cancel()
	<-r.done
}
