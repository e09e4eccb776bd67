// Package node is the worker: `bertnode join` runs an Agent. It registers with the
// coordinator, watches its assignment, and trains its replica of a job's model in the
// ring of the job's current generation, step by step (see docs/cluster.md). When a
// generation ends (a peer fails, a node joins) it aborts the step in flight, rebuilds
// the ring in-process, agrees with the new ring on the state, and goes on; nothing is
// reloaded from disk.
package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bertnode/bertnode/allreduce"
	"github.com/bertnode/bertnode/api"
	"github.com/prometheus/client_golang/prometheus"
)

// Config is one node.
type Config struct {
	ID       string
	Name     string
	Device   string
	Dir      string // jobs' checkpoints, models and audit logs go under Dir/jobs/<id>
	RingAddr string // what peers dial: Listener's address as they reach it
	HTTPAddr string

	Coordinator Coordinator
	Setup       Setup
	Infer       InferSetup // predict jobs (nil: the node fails them)

	// The ring: one listener for every generation, the ring secret, and a dialer
	// (nil: TCP; tests may use allreduce.MemNetwork).
	Listener   allreduce.Listener
	Dialer     allreduce.Dialer
	RingSecret []byte
	RingTLS    *tls.Config // mutual TLS around the ring's connections (optional)

	// NoOverlap all-reduces the gradient after backward instead of during it (see
	// BackwardAllReduce), for measurements and tests.
	NoOverlap bool

	// Watch is how long one blocking assignment query waits (default 30s).
	Watch time.Duration
	// Prune is how often the node removes its files of jobs bertnode delete removed
	// (default 5m); it does so at start and after each session too.
	Prune time.Duration
	// Metrics registers the node's Prometheus series (nil: not exported).
	Metrics prometheus.Registerer
	Log     *log.Logger
}

// Agent runs a node.
type Agent struct {
	cfg   Config
	board board
	m     *series
	// applied is the current session's applied steps, for confirmations sent by the
	// watcher while the step loop is busy.
	applied atomic.Int64
	// inGen is the generation the step loop is in (0: none).
	inGen atomic.Uint32
	// active is the job a session runs now (nil: none). Only such a node confirms a
	// reconfiguration: one whose session ended would be placed in a ring it never joins.
	active atomic.Pointer[string]
	// confirmed is the generation of the active job whose reconfiguration this node
	// confirmed: one job's, not a map of every job's, which would grow by one entry
	// per job for the node's life.
	confirmMu sync.Mutex
	confirmed struct {
		job string
		gen uint32
	}
	pruneMu sync.Mutex // one prune at a time
}

// New makes an agent.
func New(cfg Config) *Agent {
	if cfg.Watch <= 0 {
		cfg.Watch = 30 * time.Second
	}
	if cfg.Prune <= 0 {
		cfg.Prune = 5 * time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = log.New(io.Discard, "", 0)
	}
	return &Agent{cfg: cfg, board: board{ch: make(chan struct{})}, m: newSeries(cfg.Metrics)}
}

// Run registers the node and trains whatever it is assigned until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	if err := retry(ctx, a.cfg.Log, "register", func() error { return a.register(ctx) }); err != nil {
		return err
	}
	a.cfg.Log.Printf("registered as %s (ring %s)", a.cfg.ID, a.cfg.RingAddr)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go a.watch(watchCtx)
	go a.pruneEvery(watchCtx)
	for {
		as, err := a.board.await(ctx, func(as *api.Assignment) bool { return as.Job != nil && !as.Job.State.Done() })
		if err != nil {
			return nil // ctx ended: the node stops
		}
		id := as.Job.ID
		a.pruneMu.Lock() // a prune under way, which may be removing uploads, ends first
		a.active.Store(&id)
		a.pruneMu.Unlock()
		if cur, _ := a.board.get(); cur != nil {
			a.confirm(ctx, cur)
		}
		if as.Job.Kind == api.KindPredict {
			err = a.infer(ctx, as.Job)
		} else {
			s := newSession(a, as.Job)
			err = s.run(ctx)
			s.close()
		}
		a.active.Store(nil)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			a.cfg.Log.Printf("job %s: %v", id, err)
		}
		a.prune(ctx)
		// Wait until the coordinator no longer assigns us this job, so a failed job is
		// not started again, or places us in a generation after the one the session
		// ended in (its end was a race with a generation change, not the job's end).
		var ended uint32
		if cur, _ := a.board.get(); cur != nil && cur.Job != nil && cur.Job.Gen != nil {
			ended = cur.Job.Gen.Gen
		}
		a.board.await(ctx, func(x *api.Assignment) bool {
			return x.Job == nil || x.Job.ID != id || x.Job.State.Done() || x.Rank >= 0 && x.Job.Gen != nil && x.Job.Gen.Gen > ended
		})
	}
}

func (a *Agent) register(ctx context.Context) error {
	return a.cfg.Coordinator.RegisterNode(ctx, api.RegisterNode{ID: a.cfg.ID, Name: a.cfg.Name,
		RingAddr: a.cfg.RingAddr, HTTPAddr: a.cfg.HTTPAddr, Device: a.cfg.Device})
}

// watch keeps the board up to date with blocking assignment queries, confirms a
// reconfiguration of the node's generation as soon as it is seen, whatever the step
// loop is doing, and registers again when the coordinator asks (the node was left out
// of a generation, and gets no work until it shows it is alive).
func (a *Agent) watch(ctx context.Context) {
	var index uint64
	for ctx.Err() == nil {
		as, err := a.cfg.Coordinator.Assignment(ctx, a.cfg.ID, index, a.cfg.Watch)
		if err != nil {
			if ctx.Err() == nil {
				a.cfg.Log.Printf("assignment: %v", err)
				var ae *api.Error
				if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
					// The catalog no longer holds this node: removed while it was cut off
					// (bertnode nodes remove, the coordinators' node GC). It registers as
					// a new one.
					a.cfg.Log.Printf("not in the catalog: registering again")
					if err := a.register(ctx); err != nil && ctx.Err() == nil {
						a.cfg.Log.Printf("register: %v", err)
					}
					index = 0
				}
				sleep(ctx, 500*time.Millisecond)
			}
			continue
		}
		index = as.Index
		a.board.set(as)
		a.confirm(ctx, as)
		if as.Reregister {
			a.cfg.Log.Printf("left out of a generation: registering again")
			if err := a.register(ctx); err != nil && ctx.Err() == nil {
				a.cfg.Log.Printf("register: %v", err)
				index = 0 // ask again at once, after the pause below
				sleep(ctx, 500*time.Millisecond)
			}
		}
	}
}

// confirm tells the coordinator, once per generation, that this node is alive and
// ready for the next one when as shows a reconfiguration of its generation and a
// session runs the job.
func (a *Agent) confirm(ctx context.Context, as *api.Assignment) {
	j := as.Job
	if j == nil || j.Reconfig == nil || j.Gen == nil || j.Reconfig.Gen != j.Gen.Gen || as.Rank < 0 || contains(j.Reconfig.Confirmed, a.cfg.ID) {
		return
	}
	if p := a.active.Load(); p == nil || *p != j.ID {
		return
	}
	a.confirmMu.Lock()
	done := a.confirmed.job == j.ID && a.confirmed.gen == j.Gen.Gen
	a.confirmed.job, a.confirmed.gen = j.ID, j.Gen.Gen
	a.confirmMu.Unlock()
	if done {
		return
	}
	rep := api.FailureReport{Node: a.cfg.ID, Gen: j.Gen.Gen, Applied: a.applied.Load()}
	go func() {
		if err := a.cfg.Coordinator.Failure(api.WithAnswerTimeout(ctx, reportAnswer), j.ID, rep); err != nil && ctx.Err() == nil {
			a.cfg.Log.Printf("job %s: confirming generation %d: %v", j.ID, rep.Gen, err)
		}
	}()
}

// reportAnswer bounds how long a failure report or a confirmation waits for one
// coordinator's answer before the client tries another: a reconfiguration waits for
// them, and a member cut off the network answers nothing (the client's own bound is
// 10 s). A report sent twice counts once.
const reportAnswer = 2 * time.Second

// failure sends rep on job until the coordinator takes or refuses it.
func (a *Agent) failure(ctx context.Context, job string, rep api.FailureReport) error {
	ctx = api.WithAnswerTimeout(ctx, reportAnswer)
	return retry(ctx, a.cfg.Log, "failure report", func() error { return a.cfg.Coordinator.Failure(ctx, job, rep) })
}

// pruneEvery prunes now and every Prune until ctx ends.
func (a *Agent) pruneEvery(ctx context.Context) {
	t := time.NewTicker(a.cfg.Prune)
	defer t.Stop()
	for {
		a.prune(ctx)
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// prune removes this node's files of the jobs bertnode delete removed: their
// directories, and the uploads (models, tokenizers) only they used, while no session
// runs (Run starts one only between prunes).
func (a *Agent) prune(ctx context.Context) {
	deleted, err := a.cfg.Coordinator.DeletedJobs(ctx)
	if err != nil {
		if ctx.Err() == nil {
			a.cfg.Log.Printf("deleted jobs: %v", err)
		}
		return
	}
	a.pruneMu.Lock()
	defer a.pruneMu.Unlock()
	var active string
	if p := a.active.Load(); p != nil {
		active = *p
	}
	removed, err := pruneDeleted(filepath.Join(a.cfg.Dir, "jobs"), deleted, active)
	for _, dir := range removed {
		a.cfg.Log.Printf("removed %s: its job was deleted", dir)
	}
	if err != nil {
		a.cfg.Log.Printf("removing deleted jobs' files: %v", err)
	}
	if active != "" {
		return
	}
	removed, err = pruneUploads(filepath.Join(a.cfg.Dir, "uploads"), deleted)
	for _, p := range removed {
		a.cfg.Log.Printf("removed %s: every job that used it was deleted", p)
	}
	if err != nil {
		a.cfg.Log.Printf("removing deleted jobs' uploads: %v", err)
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// board holds the latest assignment and wakes whoever waits for a change.
type board struct {
	mu  sync.Mutex
	cur *api.Assignment
	ch  chan struct{}
}

func (b *board) set(a *api.Assignment) {
	b.mu.Lock()
	b.cur = a
	close(b.ch)
	b.ch = make(chan struct{})
	b.mu.Unlock()
}

func (b *board) get() (*api.Assignment, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cur, b.ch
}

// await returns the first assignment, current or future, for which ok holds.
func (b *board) await(ctx context.Context, ok func(*api.Assignment) bool) (*api.Assignment, error) {
	for {
		cur, ch := b.get()
		if cur != nil && ok(cur) {
			return cur, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// retry calls fn until it succeeds or ctx ends, backing off up to 2 s: the coordinator
// may be electing a leader.
func retry(ctx context.Context, l *log.Logger, what string, fn func() error) error {
	wait := 50 * time.Millisecond
	for {
		err := fn()
		if err == nil {
			return nil
		}
		var ae *api.Error
		if errors.As(err, &ae) {
			return fmt.Errorf("%s: %w", what, err) // the coordinator said no: retrying will not help
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		l.Printf("%s: %v (retrying)", what, err)
		if !sleep(ctx, wait) {
			return ctx.Err()
		}
		wait = min(2*wait, 2*time.Second)
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
