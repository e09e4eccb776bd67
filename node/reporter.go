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
