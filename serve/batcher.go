package serve

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/bertnode/bertnode/internal/nativeenv"
	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/tokenize"
)

// BatchConfig bounds the batches the batcher makes and the queue it keeps.
type BatchConfig struct {
	MaxBatch  int // sequences per batch; 1 turns batching off
	MaxTokens int // padded tokens per batch: its sequences times the longest
	// MaxWait is how long the oldest queued sequence may wait for a fuller batch while
	// the model is idle; 0 runs whatever is queued as soon as the model is free.
	MaxWait time.Duration
	// MaxQueue is how many sequences may wait; a request that would pass it is
	// refused with ErrOverloaded rather than queued.
	MaxQueue int
	// MinFill is the smallest share of a batch's padded tokens that must be real
	// tokens: a sequence that would pad the batch below it waits for another; 0 puts
	// no bound. The model computes padding at the cost of real tokens.
	MinFill float64
	// Instances is how many batches may run at once, each on its own OS thread through
	// the same Runner (which must then be safe for concurrent use); 0 means 1. On a
	// CPU, single-threaded instances side by side keep every core busy without the
	// waits a multi-threaded op's threads have for each other.
	Instances int
}

// Validate names the first bad field.
func (c BatchConfig) Validate() error {
	switch {
	case c.MaxBatch < 1:
		return fmt.Errorf("max batch: %d: must be positive", c.MaxBatch)
	case c.MaxTokens < 1:
		return fmt.Errorf("max batch tokens: %d: must be positive", c.MaxTokens)
	case c.MaxWait < 0:
		return fmt.Errorf("max wait: %v: must not be negative", c.MaxWait)
	case c.MaxQueue < c.MaxBatch:
		return fmt.Errorf("max queue: %d: must hold at least one batch (%d)", c.MaxQueue, c.MaxBatch)
	case !(c.MinFill >= 0 && c.MinFill <= 1):
		return fmt.Errorf("min fill: %v is not in [0, 1]", c.MinFill)
	case c.Instances < 0:
		return fmt.Errorf("instances: %d: must not be negative", c.Instances)
	}
	return nil
}

var (
	// ErrOverloaded refuses a request the queue has no room for.
	ErrOverloaded = errors.New("the server is overloaded: its queue is full")
	// ErrClosed refuses a request once the batcher is shutting down.
	ErrClosed = errors.New("the server is shutting down")
)

// TooLargeError refuses a request of more sequences than the queue can ever hold.
type TooLargeError struct{ Seqs, MaxQueue int }

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("the request makes %d sequences, more than the server queues at once (%d)", e.Seqs, e.MaxQueue)
}

// RunError is the runner's failure on a batch, given to every request in it.
type RunError struct{ Err error }

func (e *RunError) Error() string { return "model: " + e.Err.Error() }
func (e *RunError) Unwrap() error { return e.Err }

// BatchStats is what one batch was and cost.
type BatchStats struct {
	Seqs   int
	Tokens int           // real tokens
	Padded int           // Seqs times the longest
	Wait   time.Duration // of its oldest sequence, from queueing to the run
	Run    time.Duration
	Err    error
	// Split is how many times the batch, or a part of it, ran out of the device's
	// memory and was run again in halves (Batcher.infer).
	Split int
}

// Observer is told what the batcher does; Metrics is one. Queued is called with the
// batcher's lock held, Ran before the batch's requests hear back.
type Observer interface {
	Queued(depth int) // sequences waiting, after each change
	Ran(BatchStats)
}

// Batcher runs sequences from concurrent requests through a Runner in batches: the
// oldest waiting sequence with those closest to it in length, so that padding stays
// small, within MaxBatch sequences and MaxTokens padded tokens. Instances goroutines,
// each locked to its OS thread, make every Runner call and run every Do; with one, the
// model is used from one thread at a time.
type Batcher struct {
	run Runner
	cfg BatchConfig
	obs Observer

	mu     sync.Mutex
	queue  []*item // in arrival order
	jobs   []*job
	closed bool
	// maxTokens is the padded tokens per batch: cfg.MaxTokens, or fewer once a batch
	// ran out of the device's memory (infer).
	maxTokens int

	wake    chan struct{} // something arrived, or Close was called
	done    chan struct{} // every worker has stopped
	running sync.WaitGroup
}

// item is one sequence of a request.
type item struct {
	enc *tokenize.Encoding
	req *request
	i   int // its index in the request
	at  time.Time
}

// request is one Submit. The workers write out, left, err and finished with the
// batcher's lock held; Submit reads out and err once done is closed.
type request struct {
	out      [][]float32
	left     int
	err      error
	finished bool
	done     chan struct{}
}

// job is one Do.
type job struct {
	fn   func() error
	err  error
	done chan struct{}
}

// NewBatcher starts a batcher's worker; Close stops it. obs may be nil.
func NewBatcher(r Runner, cfg BatchConfig, obs Observer) (*Batcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if obs == nil {
		obs = nopObserver{}
	}
	b := &Batcher{run: r, cfg: cfg, obs: obs, maxTokens: cfg.MaxTokens, wake: make(chan struct{}, 1), done: make(chan struct{})}
	for range max(cfg.Instances, 1) {
		b.running.Go(b.loop)
	}
	go func() { b.running.Wait(); close(b.done) }()
	return b, nil
}

type nopObserver struct{}

func (nopObserver) Queued(int)     {}
func (nopObserver) Ran(BatchStats) {}

// Submit queues seqs and returns each one's logits once they have run. It fails at
// once with ErrOverloaded when the queue has no room, ErrClosed after Close, or a
// TooLargeError; with a *RunError when the runner failed on a batch; and with ctx's
// error when ctx ends first (its sequences then leave the queue).
func (b *Batcher) Submit(ctx context.Context, seqs []*tokenize.Encoding) ([][]float32, error) {
	if len(seqs) == 0 {
		return nil, nil
	}
	if len(seqs) > b.cfg.MaxQueue {
		return nil, &TooLargeError{Seqs: len(seqs), MaxQueue: b.cfg.MaxQueue}
	}
	r := &request{out: make([][]float32, len(seqs)), left: len(seqs), done: make(chan struct{})}
	now := time.Now()
	b.mu.Lock()
	switch {
	case b.closed:
		b.mu.Unlock()
		return nil, ErrClosed
	case len(b.queue)+len(seqs) > b.cfg.MaxQueue:
		b.mu.Unlock()
		return nil, ErrOverloaded
	}
	for i, s := range seqs {
		b.queue = append(b.queue, &item{enc: s, req: r, i: i, at: now})
	}
	b.obs.Queued(len(b.queue))
	b.mu.Unlock()
	b.signal()
	select {
	case <-r.done:
		return r.out, r.err
	case <-ctx.Done():
		b.drop(r)
		return nil, ctx.Err()
	}
}

// drop takes r's sequences out of the queue.
func (b *Batcher) drop(r *request) {
	b.mu.Lock()
	b.queue = slices.DeleteFunc(b.queue, func(it *item) bool { return it.req == r })
	b.obs.Queued(len(b.queue))
	b.mu.Unlock()
}

// Do runs fn on an instance's goroutine between its batches (other instances may run
// theirs meanwhile), for model calls that do not batch (attention). It fails as Submit
// does; when ctx ends before fn starts, fn does not run.
func (b *Batcher) Do(ctx context.Context, fn func() error) error {
	j := &job{fn: fn, done: make(chan struct{})}
	b.mu.Lock()
	switch {
	case b.closed:
		b.mu.Unlock()
		return ErrClosed
	case len(b.queue)+len(b.jobs) >= b.cfg.MaxQueue:
		b.mu.Unlock()
		return ErrOverloaded
	}
	b.jobs = append(b.jobs, j)
	b.mu.Unlock()
	b.signal()
	select {
	case <-j.done:
		return j.err
	case <-ctx.Done():
		b.mu.Lock()
		b.jobs = slices.DeleteFunc(b.jobs, func(o *job) bool { return o == j })
		b.mu.Unlock()
		return ctx.Err()
	}
}

// Close stops taking requests, runs what is queued (without waiting for fuller
// batches) and returns when the worker has stopped, or with ctx's error if ctx ends
// first.
func (b *Batcher) Close(ctx context.Context) error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.signal()
	select {
	case <-b.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("draining the queue: %w", ctx.Err())
	}
}

func (b *Batcher) signal() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

func (b *Batcher) loop() {
	runtime.LockOSThread() // libtorch's per-thread state (see package model)
	// Back from BackgroundThreads, if the process went there; it fails only where that did.
	_ = ForegroundThread()
	for {
		batch, j, ok := b.next()
		switch {
		case !ok:
			return
		case j != nil:
			j.err = guard(j.fn)
			close(j.done)
		default:
			b.runBatch(batch)
		}
	}
}

// next waits for the next thing to run: a job, else a batch once it is full, the
// oldest sequence has waited MaxWait, or the batcher is closing. ok is false when the
// batcher is closed and nothing is left. A worker that takes something and leaves
// more, or finds the batcher closed, wakes another.
func (b *Batcher) next() (batch []*item, j *job, ok bool) {
	for {
		b.mu.Lock()
		if len(b.jobs) > 0 {
			j = b.jobs[0]
			b.jobs = b.jobs[1:]
			b.wakeAnotherIfLeft()
			b.mu.Unlock()
			return nil, j, true
		}
		if len(b.queue) == 0 {
			closed := b.closed
			b.mu.Unlock()
			if closed {
				b.signal()
				return nil, nil, false
			}
			<-b.wake
			continue
		}
		picked, full := b.pick()
		wait := time.Until(b.queue[0].at.Add(b.cfg.MaxWait))
		if !full && !b.closed && wait > 0 {
			b.mu.Unlock()
			t := time.NewTimer(wait)
			select {
			case <-b.wake:
			case <-t.C:
			}
			t.Stop()
			continue
		}
		batch = make([]*item, len(picked))
		for k, i := range picked {
			batch[k] = b.queue[i]
			b.queue[i] = nil
		}
		b.queue = slices.DeleteFunc(b.queue, func(it *item) bool { return it == nil })
		b.obs.Queued(len(b.queue))
		b.wakeAnotherIfLeft()
		b.mu.Unlock()
		return batch, nil, true
	}
}

// wakeAnotherIfLeft wakes a waiting worker when something is left to run. The caller
// holds mu.
func (b *Batcher) wakeAnotherIfLeft() {
	if b.cfg.Instances > 1 && (len(b.queue) > 0 || len(b.jobs) > 0) {
		b.signal()
	}
}

// pick chooses the next batch's sequences, as indexes into the queue: the oldest, then
// those closest to it in length (the older first among equals) while the batch stays
// within MaxBatch sequences, MaxTokens padded tokens (fewer once a batch ran out of
// memory) and MinFill. full says whether a
// limit left a queued sequence out. The caller holds mu.
func (b *Batcher) pick() (picked []int, full bool) {
	q := b.queue
	anchor := q[0].enc.Len()
	order := make([]int, len(q)-1)
	for i := range order {
		order[i] = i + 1
	}
	dist := func(i int) int { return max(q[i].enc.Len()-anchor, anchor-q[i].enc.Len()) }
	slices.SortStableFunc(order, func(i, j int) int { return cmp.Compare(dist(i), dist(j)) })
	picked, longest, real := []int{0}, anchor, anchor
	for _, i := range order {
		if len(picked) == b.cfg.MaxBatch {
			return picked, true
		}
		n := q[i].enc.Len()
		l := max(longest, n)
		if padded := (len(picked) + 1) * l; padded > b.maxTokens || float64(real+n) < b.cfg.MinFill*float64(padded) {
			full = true
			continue
		}
		picked, longest, real = append(picked, i), l, real+n
	}
	return picked, full || len(picked) == b.cfg.MaxBatch
}

// runBatch runs one batch and hands each request its sequences' logits.
func (b *Batcher) runBatch(batch []*item) {
	encs := make([]*tokenize.Encoding, len(batch))
	st := BatchStats{Seqs: len(batch), Wait: time.Since(batch[0].at)}
	longest := 0
	for k, it := range batch {
		encs[k] = it.enc
		st.Tokens += it.enc.Len()
		longest = max(longest, it.enc.Len())
	}
	st.Padded = longest * len(batch)
	start := time.Now()
	logits, err := b.infer(encs, &st)
	st.Run = time.Since(start)
	if err == nil && len(logits) != len(batch) {
		err = fmt.Errorf("%d logits for a batch of %d sequences", len(logits), len(batch))
	}
	if err != nil {
		st.Err = &RunError{Err: err}
	}
	// A client that reads the metrics after its answer finds its batch in them.
	b.obs.Ran(st)
	if st.Err != nil {
		b.fail(batch, st.Err)
		return
	}
	b.mu.Lock()
	for k, it := range batch {
		r := it.req
		if r.finished { // another instance failed on its other sequences
			continue
		}
		r.out[it.i] = logits[k]
		if r.left--; r.left == 0 {
			r.finished = true
			close(r.done)
		}
	}
	b.mu.Unlock()
}

// infer runs encs through the model. Out of the device's memory, it runs each half
// again (down to single sequences), so that a burst of long texts is answered in
// smaller batches rather than failed, and keeps later batches to half the padded
// tokens of the one that failed, so that they fit at once.
func (b *Batcher) infer(encs []*tokenize.Encoding, st *BatchStats) ([][]float32, error) {
	var logits [][]float32
	err := guard(func() (err error) {
		logits, err = b.run.Run(encs)
		return err
	})
	if err == nil || len(encs) == 1 || !model.OutOfMemory(err) {
		return logits, err
	}
	longest := 0
	for _, e := range encs {
		longest = max(longest, e.Len())
	}
	b.mu.Lock()
	b.maxTokens = max(1, min(b.maxTokens, longest*len(encs)/2))
	b.mu.Unlock()
	st.Split++
	nativeenv.ReleaseMemory() // what the failed run left, which only finalizers free
	half := len(encs) / 2
	a, err := b.infer(encs[:half], st)
	if err != nil {
		return nil, err
	}
	c, err := b.infer(encs[half:], st)
	return append(a, c...), err
}

// fail ends the batch's requests with err, and drops their sequences still queued.
func (b *Batcher) fail(batch []*item, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	failed := map[*request]bool{}
	for _, it := range batch {
		if r := it.req; !r.finished {
			r.err, r.finished = err, true
			close(r.done)
			failed[r] = true
		}
	}
	b.queue = slices.DeleteFunc(b.queue, func(it *item) bool { return failed[it.req] })
	b.obs.Queued(len(b.queue))
}

// guard runs fn, turning a panic into an error, so that one failed batch does not take
// the server down: libtorch's error (gotch's ops panic with it) as model.Catch makes it,
// its first line without the stacks; any other as "panic: ...".
func guard(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	defer model.Catch(&err)
	return fn()
}
