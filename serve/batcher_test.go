package serve

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/tokenize"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// twin is an in-memory Runner: each sequence's logits are its ids' sum and its length,
// so an answer tells which sequence it was computed from. It records its batches and,
// while hold is open, blocks each run until hold is closed.
type twin struct {
	hold    chan struct{}
	entered chan int // each run's batch size, when hold is set
	poison  int32    // a batch with this id fails
	panics  int32    // a batch with this id panics
	torch   int32    // a batch with this id runs a libtorch op that fails
	memory  int      // > 0: a batch of more padded tokens runs out of memory

	mu      sync.Mutex
	batches [][]int // lengths of each batch's sequences
	ids     [][]int32
	running int
	overlap bool // two runs (or a run and a Do) at once
}

func newTwin(hold bool) *twin {
	t := &twin{entered: make(chan int, 1000), poison: -1, panics: -1, torch: -1}
	if hold {
		t.hold = make(chan struct{})
	}
	return t
}

func (t *twin) Run(seqs []*tokenize.Encoding) ([][]float32, error) {
	t.enter()
	defer t.leave()
	if t.hold != nil {
		t.entered <- len(seqs)
		<-t.hold
	}
	var lens []int
	out := make([][]float32, len(seqs))
	t.mu.Lock()
	defer t.mu.Unlock()
	if longest := slices.MaxFunc(seqs, func(a, b *tokenize.Encoding) int { return a.Len() - b.Len() }).Len(); t.memory > 0 && longest*len(seqs) > t.memory {
		for _, s := range seqs {
			lens = append(lens, s.Len())
		}
		t.batches = append(t.batches, lens)
		return nil, &model.TorchError{Msg: "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.15 GiB total capacity)"}
	}
	for k, s := range seqs {
		lens = append(lens, s.Len())
		t.ids = append(t.ids, s.InputIDs)
		out[k] = answer(s.InputIDs)
		if slices.Contains(s.InputIDs, t.panics) {
			t.batches = append(t.batches, lens)
			panic("bug")
		}
		if slices.Contains(s.InputIDs, t.torch) {
			t.batches = append(t.batches, lens)
			a, b := ts.MustZeros([]int64{2, 3}, gotch.Float, gotch.CPU), ts.MustZeros([]int64{4, 5}, gotch.Float, gotch.CPU)
			defer a.MustDrop()
			defer b.MustDrop()
			a.MustMm(b, false) // gotch's ops panic with libtorch's error
		}
		if slices.Contains(s.InputIDs, t.poison) {
			t.batches = append(t.batches, lens)
			return nil, errors.New("poisoned")
		}
	}
	t.batches = append(t.batches, lens)
	return out, nil
}

func (t *twin) enter() {
	t.mu.Lock()
	t.running++
	t.overlap = t.overlap || t.running > 1
	t.mu.Unlock()
}

func (t *twin) leave() {
	t.mu.Lock()
	t.running--
	t.mu.Unlock()
}

func (t *twin) recorded() [][]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.batches)
}

func answer(ids []int32) []float32 {
	var sum float32
	for _, id := range ids {
		sum += float32(id)
	}
	return []float32{sum, float32(len(ids))}
}

// seq is a sequence of n tokens, ids from first on.
func seq(first int32, n int) *tokenize.Encoding {
	e := &tokenize.Encoding{}
	for i := range n {
		e.InputIDs = append(e.InputIDs, first+int32(i))
	}
	return e
}

func newBatcher(t *testing.T, r Runner, cfg BatchConfig, obs Observer) *Batcher {
	t.Helper()
	b, err := NewBatcher(r, cfg, obs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return b
}

// checkAnswers fails unless out holds seqs' own answers, in order.
func checkAnswers(t *testing.T, seqs []*tokenize.Encoding, out [][]float32) {
	t.Helper()
	if len(out) != len(seqs) {
		t.Fatalf("%d answers for %d sequences", len(out), len(seqs))
	}
	for i, s := range seqs {
		if want := answer(s.InputIDs); !slices.Equal(out[i], want) {
			t.Errorf("sequence %d: answer %v, want %v", i, out[i], want)
		}
	}
}

// waitFor polls cond for up to a minute: the machine may be loaded.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(time.Minute); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// depthTwin records the queue depths and batches an Observer is told of.
type depthTwin struct {
	mu    sync.Mutex
	depth int
	ran   []BatchStats
}

func (d *depthTwin) Queued(n int) { d.mu.Lock(); d.depth = n; d.mu.Unlock() }
func (d *depthTwin) Ran(s BatchStats) {
	d.mu.Lock()
	d.ran = append(d.ran, s)
	d.mu.Unlock()
}
func (d *depthTwin) queued() int { d.mu.Lock(); defer d.mu.Unlock(); return d.depth }

// Many concurrent clients are batched together, and each gets the answers to its own
// sequences.
func TestBatcherAnswersEachRequestItsOwn(t *testing.T) {
	r := newTwin(true)
	obs := &depthTwin{}
	b := newBatcher(t, r, BatchConfig{MaxBatch: 16, MaxTokens: 1 << 20, MaxQueue: 1000}, obs)
	go b.Submit(context.Background(), []*tokenize.Encoding{seq(0, 3)})
	<-r.entered // the model is busy: what follows queues up
	const clients = 40
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seqs := make([]*tokenize.Encoding, 1+c%3)
			for i := range seqs {
				seqs[i] = seq(int32(1000*c+100*i), 1+(c+i)%7)
			}
			out, err := b.Submit(context.Background(), seqs)
			if err != nil {
				t.Error(err)
				return
			}
			checkAnswers(t, seqs, out)
		}()
	}
	waitFor(t, "the clients to queue", func() bool { return obs.queued() == 79 })
	close(r.hold)
	wg.Wait()
	batches := r.recorded()
	for _, bt := range batches[1:] {
		if len(bt) > 16 {
			t.Errorf("a batch of %d sequences, over 16", len(bt))
		}
	}
	// 79 queued sequences in batches of at most 16: 5 batches after the first.
	if len(batches) != 6 {
		t.Errorf("%d batches after the first, want 5: %v", len(batches)-1, batches[1:])
	}
	if r.overlap {
		t.Error("two runs at once")
	}
}

// queuedBatches queues seqs as one request while the model is held, then lets the
// batcher run them, and returns the batches it made after the held one.
func queuedBatches(t *testing.T, cfg BatchConfig, seqs []*tokenize.Encoding) [][]int {
	t.Helper()
	r := newTwin(true)
	b := newBatcher(t, r, cfg, nil)
	go b.Submit(context.Background(), []*tokenize.Encoding{seq(0, 1)})
	<-r.entered
	done := make(chan struct{})
	go func() {
		defer close(done)
		out, err := b.Submit(context.Background(), seqs)
		if err != nil {
			t.Error(err)
			return
		}
		checkAnswers(t, seqs, out)
	}()
	waitFor(t, "the sequences to queue", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.queue) == len(seqs)
	})
	close(r.hold)
	<-done
	return r.recorded()[1:]
}

// Sequences of similar length go together, within the token budget and MinFill.
func TestBatcherGroupsByLengthWithinBudget(t *testing.T) {
	var seqs []*tokenize.Encoding
	for i, n := range []int{3, 5, 3, 20, 3, 20, 3, 20} {
		seqs = append(seqs, seq(int32(100*i), n))
	}
	// The oldest (3) takes the other 3s first: 3 3 3 3. Then 5 with the 20s, as many as
	// fit in 48 padded tokens: 5 20 (40), then 20 20 (40).
	cfg := BatchConfig{MaxBatch: 4, MaxTokens: 48, MaxQueue: 100}
	if got, want := queuedBatches(t, cfg, seqs), "[[3 3 3 3] [5 20] [20 20]]"; fmt.Sprint(got) != want {
		t.Errorf("batches %v, want %s", got, want)
	}
	// With MinFill 0.7, 5 and 20 (25 real of 40) do not go together.
	cfg.MinFill = 0.7
	if got, want := queuedBatches(t, cfg, seqs), "[[3 3 3 3] [5] [20 20] [20]]"; fmt.Sprint(got) != want {
		t.Errorf("min fill 0.7: batches %v, want %s", got, want)
	}
}

// A lone sequence waits MaxWait for company; a full batch does not wait, and what
// arrives during the wait joins the batch.
func TestBatcherMaxWait(t *testing.T) {
	r := newTwin(false)
	wait := 300 * time.Millisecond
	b := newBatcher(t, r, BatchConfig{MaxBatch: 4, MaxTokens: 1000, MaxWait: wait, MaxQueue: 100}, nil)
	start := time.Now()
	s := []*tokenize.Encoding{seq(1, 2)}
	out, err := b.Submit(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	checkAnswers(t, s, out)
	if took := time.Since(start); took < wait {
		t.Errorf("a lone sequence ran after %v, before the %v wait", took, wait)
	}

	r = newTwin(false)
	b = newBatcher(t, r, BatchConfig{MaxBatch: 4, MaxTokens: 1000, MaxWait: time.Hour, MaxQueue: 100}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	first := make(chan error)
	go func() {
		_, err := b.Submit(ctx, []*tokenize.Encoding{seq(1, 2), seq(2, 2)})
		first <- err
	}()
	waitFor(t, "the first request to queue", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.queue) == 2
	})
	s = []*tokenize.Encoding{seq(3, 2), seq(4, 2)}
	if out, err = b.Submit(ctx, s); err != nil {
		t.Fatalf("a full batch waited: %v", err)
	}
	checkAnswers(t, s, out)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if got := r.recorded(); fmt.Sprint(got) != "[[2 2 2 2]]" {
		t.Errorf("batches %v, want the two requests in one", got)
	}
}

// A full queue refuses at once instead of growing; so does a request too large for it.
// What was queued still runs, and the batcher takes requests again afterwards.
func TestBatcherRefusesWhenFull(t *testing.T) {
	r := newTwin(true)
	obs := &depthTwin{}
	b := newBatcher(t, r, BatchConfig{MaxBatch: 2, MaxTokens: 100, MaxQueue: 4}, obs)
	go b.Submit(context.Background(), []*tokenize.Encoding{seq(0, 1)})
	<-r.entered
	done := make(chan error)
	go func() {
		_, err := b.Submit(context.Background(), []*tokenize.Encoding{seq(1, 1), seq(2, 1), seq(3, 1)})
		done <- err
	}()
	waitFor(t, "3 queued", func() bool { return obs.queued() == 3 })
	if _, err := b.Submit(context.Background(), []*tokenize.Encoding{seq(4, 1), seq(5, 1)}); !errors.Is(err, ErrOverloaded) {
		t.Errorf("over the queue: %v, want ErrOverloaded", err)
	}
	var tl *TooLargeError
	if _, err := b.Submit(context.Background(), make([]*tokenize.Encoding, 5)); !errors.As(err, &tl) || tl.Seqs != 5 || tl.MaxQueue != 4 {
		t.Errorf("larger than the queue: %v", err)
	}
	job := make(chan error)
	go func() { job <- b.Do(context.Background(), func() error { return nil }) }()
	close(r.hold)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-job; err != nil {
		t.Errorf("a job fits in the queue's last place: %v", err)
	}
	s := []*tokenize.Encoding{seq(4, 1), seq(5, 1)}
	out, err := b.Submit(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	checkAnswers(t, s, out)
}

// A request whose client gives up leaves the queue: its sequences never run.
func TestBatcherCancelledRequestLeavesTheQueue(t *testing.T) {
	r := newTwin(true)
	obs := &depthTwin{}
	b := newBatcher(t, r, BatchConfig{MaxBatch: 8, MaxTokens: 100, MaxQueue: 10}, obs)
	go b.Submit(context.Background(), []*tokenize.Encoding{seq(0, 1)})
	<-r.entered
	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan error)
	go func() {
		_, err := b.Submit(ctx, []*tokenize.Encoding{seq(666, 2), seq(667, 2)})
		gone <- err
	}()
	waitFor(t, "2 queued", func() bool { return obs.queued() == 2 })
	cancel()
	if err := <-gone; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if d := obs.queued(); d != 0 {
		t.Errorf("queue depth %d after the cancel, want 0", d)
	}
	close(r.hold)
	s := []*tokenize.Encoding{seq(7, 3)}
	out, err := b.Submit(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	checkAnswers(t, s, out)
	for _, ids := range r.ids {
		if ids[0] == 666 || ids[0] == 667 {
			t.Errorf("a cancelled sequence ran: %v", ids)
		}
	}
}

// Close refuses new work, runs everything queued, and returns once it has.
func TestBatcherCloseDrains(t *testing.T) {
	r := newTwin(true)
	obs := &depthTwin{}
	b, err := NewBatcher(r, BatchConfig{MaxBatch: 2, MaxTokens: 100, MaxWait: time.Hour, MaxQueue: 100}, obs)
	if err != nil {
		t.Fatal(err)
	}
	first := []*tokenize.Encoding{seq(0, 1), seq(1, 1)}
	var wg sync.WaitGroup
	submit := func(seqs []*tokenize.Encoding) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := b.Submit(context.Background(), seqs)
			if err != nil {
				t.Error(err)
				return
			}
			checkAnswers(t, seqs, out)
		}()
	}
	submit(first)
	<-r.entered
	for i := range 5 {
		submit([]*tokenize.Encoding{seq(int32(10*i), 1+i)})
	}
	waitFor(t, "5 queued", func() bool { return obs.queued() == 5 })
	closed := make(chan error)
	go func() { closed <- b.Close(context.Background()) }()
	waitFor(t, "Close", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.closed
	})
	if _, err := b.Submit(context.Background(), []*tokenize.Encoding{seq(9, 1)}); !errors.Is(err, ErrClosed) {
		t.Errorf("Submit while closing: %v", err)
	}
	if err := b.Do(context.Background(), func() error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("Do while closing: %v", err)
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) with 5 sequences queued", err)
	default:
	}
	close(r.hold)
	wg.Wait()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	// MaxWait (an hour) does not hold back the last, lone sequence while draining.
	if n := len(r.recorded()); n != 4 {
		t.Errorf("%d batches, want 4 (1 + 5 sequences in twos)", n)
	}
}

// A failing batch fails its requests, whole, and no others; the batcher goes on.
func TestBatcherRunErrorFailsOnlyItsBatch(t *testing.T) {
	r := newTwin(true)
	r.poison = 13
	b := newBatcher(t, r, BatchConfig{MaxBatch: 2, MaxTokens: 100, MaxQueue: 100}, nil)
	go b.Submit(context.Background(), []*tokenize.Encoding{seq(0, 1)})
	<-r.entered
	bad := make(chan error)
	go func() {
		// Three sequences: the first batch holds the poison; the third must not run.
		_, err := b.Submit(context.Background(), []*tokenize.Encoding{seq(12, 2), seq(900, 2), seq(901, 2)})
		bad <- err
	}()
	waitFor(t, "3 queued", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.queue) == 3
	})
	close(r.hold)
	var re *RunError
	if err := <-bad; !errors.As(err, &re) || re.Err.Error() != "poisoned" {
		t.Errorf("the poisoned request: %v", err)
	}
	s := []*tokenize.Encoding{seq(5, 4)}
	out, err := b.Submit(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	checkAnswers(t, s, out)
	for _, ids := range r.ids {
		if ids[0] == 901 {
			t.Error("the failed request's last sequence ran")
		}
	}
	// A libtorch error (a panic in gotch's op) is the batch's error too, its first line
	// without libtorch's and Go's stacks; so is any other panic.
	r.torch, r.panics = 50, 60
	var te *model.TorchError
	if _, err := b.Submit(context.Background(), []*tokenize.Encoding{seq(50, 1)}); !errors.As(err, &te) ||
		!strings.Contains(err.Error(), "libtorch: Mm() failed: mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)") || strings.Contains(err.Error(), "\n") {
		t.Errorf("a batch whose libtorch op failed: %v", err)
	}
	if _, err := b.Submit(context.Background(), []*tokenize.Encoding{seq(60, 1)}); !errors.As(err, &re) || !strings.Contains(err.Error(), "panic: bug") {
		t.Errorf("a panicking batch: %v", err)
	}
	if out, err = b.Submit(context.Background(), s); err != nil {
		t.Fatalf("after the failed batches: %v", err)
	}
	checkAnswers(t, s, out)
}

// slowObserver takes its time to record a batch, as a scrape-heavy registry may.
type slowObserver struct{ depthTwin }

func (o *slowObserver) Ran(s BatchStats) {
	time.Sleep(20 * time.Millisecond)
	o.depthTwin.Ran(s)
}

func (o *slowObserver) ranCount() int { o.mu.Lock(); defer o.mu.Unlock(); return len(o.ran) }

// The observer hears of a batch before its requests are answered, failed or not: a
// client that reads the metrics after its answer finds its sequences counted.
func TestBatcherObservesBeforeAnswering(t *testing.T) {
	obs := &slowObserver{}
	r := RunnerFunc(func(seqs []*tokenize.Encoding) ([][]float32, error) {
		if seqs[0].InputIDs[0] == 13 {
			return nil, errors.New("poisoned")
		}
		out := make([][]float32, len(seqs))
		for i, s := range seqs {
			out[i] = answer(s.InputIDs)
		}
		return out, nil
	})
	b := newBatcher(t, r, BatchConfig{MaxBatch: 4, MaxTokens: 100, MaxQueue: 100}, obs)
	if _, err := b.Submit(context.Background(), []*tokenize.Encoding{seq(1, 2)}); err != nil {
		t.Fatal(err)
	}
	if n := obs.ranCount(); n != 1 {
		t.Errorf("answered with %d batches observed, want 1", n)
	}
	if _, err := b.Submit(context.Background(), []*tokenize.Encoding{seq(13, 2)}); err == nil {
		t.Fatal("the poisoned batch did not fail")
	}
	if n := obs.ranCount(); n != 2 {
		t.Errorf("failed with %d batches observed, want 2", n)
	}
}

// Do runs on the model's goroutine between batches, never during one.
func TestBatcherDoRunsBetweenBatches(t *testing.T) {
	r := newTwin(true)
	b := newBatcher(t, r, BatchConfig{MaxBatch: 2, MaxTokens: 100, MaxQueue: 100}, nil)
	go b.Submit(context.Background(), []*tokenize.Encoding{seq(0, 1)})
	<-r.entered
	ran := make(chan error)
	go func() {
		ran <- b.Do(context.Background(), func() error {
			r.enter()
			defer r.leave()
			return errors.New("job's own error")
		})
	}()
	ctx, cancel := context.WithCancel(context.Background())
	cancelled := make(chan error)
	go func() {
		cancelled <- b.Do(ctx, func() error {
			t.Error("a job whose request was cancelled before it started ran")
			return nil
		})
	}()
	waitFor(t, "2 jobs queued", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.jobs) == 2
	})
	cancel()
	if err := <-cancelled; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled job: %v", err)
	}
	close(r.hold)
	if err := <-ran; err == nil || err.Error() != "job's own error" {
		t.Errorf("job: %v", err)
	}
	if r.overlap {
		t.Error("a job ran during a batch")
	}
}

func TestBatchConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg  BatchConfig
		want string
	}{
		{BatchConfig{MaxBatch: 0, MaxTokens: 1, MaxQueue: 1}, "max batch"},
		{BatchConfig{MaxBatch: 1, MaxTokens: 0, MaxQueue: 1}, "max batch tokens"},
		{BatchConfig{MaxBatch: 1, MaxTokens: 1, MaxWait: -1, MaxQueue: 1}, "max wait"},
		{BatchConfig{MaxBatch: 4, MaxTokens: 1, MaxQueue: 3}, "max queue"},
		{BatchConfig{MaxBatch: 1, MaxTokens: 1, MaxQueue: 1, MinFill: 1.5}, "min fill"},
	} {
		if err := c.cfg.Validate(); err == nil || !strings.HasPrefix(err.Error(), c.want+":") {
			t.Errorf("%+v: %v, want an error naming %q", c.cfg, err, c.want)
		}
	}
}

// With Instances, batches run at once, each client still gets its own answers, and a
// request split over two instances' batches, one of which fails, ends once with that
// error.
func TestBatcherInstancesRunAtOnce(t *testing.T) {
	r := newTwin(true)
	r.poison = 7
	obs := &depthTwin{}
	b := newBatcher(t, r, BatchConfig{MaxBatch: 2, MaxTokens: 1 << 20, MaxQueue: 1000, Instances: 3}, obs)
	for i := range 3 { // three batches held at once: one per instance
		go b.Submit(context.Background(), []*tokenize.Encoding{seq(int32(100*i+1000), 1), seq(int32(100*i+1050), 1)})
	}
	for range 3 {
		select {
		case <-r.entered:
		case <-time.After(time.Minute):
			t.Fatal("the instances did not all run a batch at once")
		}
	}
	if !r.overlap {
		t.Fatal("no two runs at once")
	}
	// Queued behind them: a request whose sequences the instances split (one batch
	// holds the poison), and many clients.
	split := make(chan error, 1)
	go func() {
		_, err := b.Submit(context.Background(), []*tokenize.Encoding{seq(5, 3), seq(400, 3), seq(500, 3), seq(600, 3)})
		split <- err
	}()
	waitFor(t, "the split request to queue", func() bool { return obs.queued() == 4 })
	const clients = 30
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seqs := []*tokenize.Encoding{seq(int32(10000+100*c), 1+c%5), seq(int32(20000+100*c), 1+c%3)}
			out, err := b.Submit(context.Background(), seqs)
			if err != nil {
				t.Error(err)
				return
			}
			checkAnswers(t, seqs, out)
		}()
	}
	waitFor(t, "the clients to queue", func() bool { return obs.queued() == 4+2*clients })
	close(r.hold)
	wg.Wait()
	var re *RunError
	if err := <-split; !errors.As(err, &re) || re.Err.Error() != "poisoned" {
		t.Errorf("the split request: %v", err)
	}
	if BatchConfig.Validate(BatchConfig{MaxBatch: 1, MaxTokens: 1, MaxQueue: 1, Instances: -1}) == nil {
		t.Error("negative instances accepted")
	}
}

// A batch out of the device's memory is run again in halves until the parts fit, and
// every request gets its own answers; the batches after it are kept to half the
// padded tokens of the one that failed, so they fit at once. Before, every request of
// the batch failed.
func TestBatcherSplitsABatchOutOfMemory(t *testing.T) {
	r := newTwin(true)
	r.memory = 20 // padded tokens: a batch of 8 sequences of 5 (40) does not fit, of 4 does
	m := NewMetrics(prometheus.NewRegistry())
	b := newBatcher(t, r, BatchConfig{MaxBatch: 8, MaxTokens: 1000, MaxQueue: 100}, m)
	go b.Submit(context.Background(), []*tokenize.Encoding{seq(0, 1)})
	<-r.entered
	reqs := make([][]*tokenize.Encoding, 8)
	for i := range reqs {
		reqs[i] = []*tokenize.Encoding{seq(int32(100*(i+1)), 5)}
	}
	outs, errs := make([][][]float32, 8), make([]error, 8)
	var wg sync.WaitGroup
	for i := range reqs {
		wg.Go(func() { outs[i], errs[i] = b.Submit(context.Background(), reqs[i]) })
	}
	waitFor(t, "8 queued", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.queue) == 8
	})
	close(r.hold)
	wg.Wait()
	for i := range reqs {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		checkAnswers(t, reqs[i], outs[i])
	}
	r.mu.Lock()
	runs := slices.Clone(r.batches)
	r.mu.Unlock()
	want := [][]int{{1}, {5, 5, 5, 5, 5, 5, 5, 5}, {5, 5, 5, 5}, {5, 5, 5, 5}}
	if !slices.EqualFunc(runs, want, slices.Equal) {
		t.Fatalf("batches run: %v, want %v", runs, want)
	}
	// Later batches hold at most 20 padded tokens: four sequences of 5.
	var later [][]*tokenize.Encoding
	for i := range 8 {
		later = append(later, []*tokenize.Encoding{seq(int32(1000*(i+1)), 5)})
	}
	all := slices.Concat(later...)
	out, err := b.Submit(context.Background(), all)
	if err != nil {
		t.Fatal(err)
	}
	checkAnswers(t, all, out)
	r.mu.Lock()
	for _, run := range r.batches[len(want):] {
		if len(run)*slices.Max(run) > 20 {
			t.Errorf("a later batch of %v ran, more than 20 padded tokens", run)
		}
	}
	r.mu.Unlock()
	var d dto.Metric
	if err := m.splits.Write(&d); err != nil || d.GetCounter().GetValue() != 1 {
		t.Errorf("batch_splits_total %v (%v), want 1", d.GetCounter().GetValue(), err)
	}
}
