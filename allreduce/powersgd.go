package allreduce

import (
	"context"
	"fmt"
	"math"
)

// PowerSGDParams configure the low-rank codec (Vogels et al., "PowerSGD: Practical
// Low-Rank Gradient Compression", NeurIPS 2019).
type PowerSGDParams struct {
	// Rank of the approximation; each bucket of L values sends (L/Cols + Cols) * Rank
	// values instead of L. Default 4.
	Rank int
	// Cols is the width each bucket is folded to (zero-padded). Default 768, BERT-base's
	// hidden size, so that weight matrices keep their rows; set it to the model's hidden
	// size.
	Cols int
	// Seed for the initial right factor, which every rank must share.
	Seed uint32
	// StartStep is the first step that is compressed: the all-reduces of steps before it
	// are codec none's, bit for bit (torch's start_powerSGD_iter). The first steps'
	// gradients are large and change fast, and what a low rank loses of them error
	// feedback does not win back. Zero compresses from the first step. The ring counts
	// steps (one per all-reduce with a bucket to compress) from zero, or from SetStep.
	StartStep int64
	// MinCompression: a bucket whose factors would not be at least this many times
	// smaller than the bucket is reduced raw, exactly (torch's min_compression_rate).
	// So small all-reduces (counters, metrics, a short last bucket) stay exact, and do not
	// count as steps or disturb the error memory. Default 2.
	MinCompression float64
}

func (p PowerSGDParams) withDefaults() PowerSGDParams {
	if p.Rank == 0 {
		p.Rank = 4
	}
	if p.Cols == 0 {
		p.Cols = 768
	}
	if p.MinCompression == 0 {
		p.MinCompression = 2
	}
	return p
}

func (p PowerSGDParams) validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("allreduce: config: PowerSGD.%s: %s", field, fmt.Sprintf(format, args...))
	}
	switch {
	case p.Rank < 1 || p.Rank > 64:
		return bad("Rank", "%d, want 1 to 64", p.Rank)
	case p.Cols < 1 || p.Cols > 1<<16:
		return bad("Cols", "%d, want 1 to 65536", p.Cols)
	case p.StartStep < 0:
		return bad("StartStep", "%d, want 0 or more", p.StartStep)
	case !(p.MinCompression >= 1 && p.MinCompression <= 1<<20): // also refuses NaN
		return bad("MinCompression", "%g, want 1 to 1048576", p.MinCompression)
	}
	return nil
}

// compresses reports whether a bucket of l values is worth its factors.
func (p PowerSGDParams) compresses(l int) bool {
	rows := (l + p.Cols - 1) / p.Cols
	return l > 0 && float64(l) >= p.MinCompression*float64((rows+p.Cols)*p.Rank)
}

// powerSGD runs above the ring. Per bucket, with M the local gradient plus this rank's
// error memory, folded to rows x Cols, and Q the shared right factor:
//
//	P = all-reduce-sum(M Q); orthonormalise P's columns
//	Q_local = Mᵀ P; Q = all-reduce-sum(Q_local)
//	out = P Qᵀ (÷ n for the average); error memory = M - P Qᵀ ÷ n
//
// P and Q are identical bits on every rank, hence so is the output. The memories of all
// ranks add up to what the output missed of Σ M, and each adds its share to the next
// step's gradient, so the running sum of outputs tracks the running sum of true
// averages with a bounded error:
// the long-run relative error vanishes. Q is reused as the next step's starting
// factor (one power iteration per step).
type powerSGD struct {
	PowerSGDParams
	step    int64       // the step of the next all-reduce that compresses
	mem     []float32   // error feedback, one value per buffer value
	q       [][]float32 // per bucket, Cols x Rank
	stages  [3]stage    // buckets in flight (allReduce)
	qt, qlt []float32   // Q and Q_local transposed (powersgd_kernels.go)
	bufLen  int
	buckets int
}

// stage is one bucket on its way through allReduce's pipeline.
type stage struct {
	lo, hi int
	raw    bool       // reduced raw: it does not compress
	p      []float32  // P, rows x Rank
	done   chan error // the last all-reduce submitted for it
}

func newPowerSGD(p PowerSGDParams) *powerSGD { return &powerSGD{PowerSGDParams: p} }

// SetStep sets the training step of the next all-reduce that has a bucket to compress
// (PowerSGD rings; others ignore it). Steps before PowerSGDParams.StartStep are reduced
// uncompressed. Callers that resume or rebuild a ring set it from their own step count,
// which every rank shares; the ring's own count starts at zero with each ring.
func (r *Ring) SetStep(step int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.psgd != nil {
		r.psgd.step = step
	}
}

// reset sizes the state for a buffer of n values; a different length starts afresh.
func (s *powerSGD) reset(n, bucket int) {
	if s.bufLen == n && s.mem != nil {
		return
	}
	s.bufLen = n
	s.mem = make([]float32, n)
	s.buckets = (n + bucket - 1) / bucket
	s.q = make([][]float32, s.buckets)
	rows := (min(n, bucket) + s.Cols - 1) / s.Cols
	for i := range s.stages {
		s.stages[i] = stage{p: make([]float32, rows*s.Rank), done: make(chan error, 1)}
	}
	s.qt = make([]float32, rk4(s.Rank)*s.Cols)
	s.qlt = make([]float32, rk4(s.Rank)*s.Cols)
}

func (s *powerSGD) initialQ() []float32 {
	q := make([]float32, s.Cols*s.Rank)
	x := uint64(s.Seed)*0x9e3779b97f4a7c15 + 1
	for i := range q {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		q[i] = float32(int32(x>>32)) / (1 << 31)
	}
	return q
}

func (s *powerSGD) allReduce(ctx context.Context, r *Ring, buf []float32, op Op, ready *gauge) error {
	bucket := r.cfg.BucketElems
	if !s.compresses(min(len(buf), bucket)) { // the first bucket is the largest
		return s.raw(ctx, r, buf, op, ready)
	}
	step := s.step
	s.step++
	if step < s.StartStep {
		return s.raw(ctx, r, buf, op, ready)
	}
	s.reset(len(buf), bucket)
	w := startReducer(ctx, r)
	defer func() {
		w.stop()
		for i := range s.stages { // an error leaves results unread
			select {
			case <-s.stages[i].done:
			default:
			}
		}
	}()

	// The pipeline: while bucket b's factors are on the wire, the next buckets' products
	// run. Per bucket, A projects and submits P, B orthonormalises P, back-projects and
	// submits Q, C reconstructs. The loop runs A(b+2), B(b+1), C(b), so the ring reduces
	// P0, P1, Q0, P2, Q1, ... in that order on every rank.
	nb := (len(buf) + bucket - 1) / bucket
	for b := -2; b < nb; b++ {
		if b+2 < nb {
			if err := s.project(ctx, r, w, buf, b+2, op, ready); err != nil {
				return err
			}
		}
		if b+1 >= 0 && b+1 < nb {
			if err := s.backProject(r, w, buf, b+1); err != nil {
				return err
			}
		}
		if b >= 0 {
			if err := s.reconstruct(r, buf, b, op); err != nil {
				return err
			}
		}
	}
	return nil
}

// project (stage A) waits for bucket b, adds the memory to it and submits P = M Q, or,
// for a bucket too small to compress, the bucket itself.
func (s *powerSGD) project(ctx context.Context, r *Ring, w *reducer, buf []float32, b int, op Op, ready *gauge) error {
	x := &s.stages[b%len(s.stages)]
	x.lo, x.hi = b*r.cfg.BucketElems, min((b+1)*r.cfg.BucketElems, len(buf))
	if !ready.await(int64(x.hi), ctx.Done()) {
		return fmt.Errorf("allreduce: %w", context.Cause(ctx))
	}
	if x.raw = !s.compresses(x.hi - x.lo); x.raw {
		w.submit(buf[x.lo:x.hi], op, true, x.done)
		return nil
	}
	if s.q[b] == nil {
		s.q[b] = s.initialQ()
	}
	rows := (x.hi - x.lo + s.Cols - 1) / s.Cols
	transpose(s.q[b], s.qt, s.Cols, s.Rank, false)
	project(buf[x.lo:x.hi], s.mem[x.lo:x.hi], s.qt, x.p[:rows*s.Rank], s.Cols, s.Rank)
	w.submit(x.p[:rows*s.Rank], OpSum, false, x.done)
	return nil
}

// backProject (stage B) takes the summed P, orthonormalises it and submits
// Q = Σ Mᵀ P.
func (s *powerSGD) backProject(r *Ring, w *reducer, buf []float32, b int) error {
	x := &s.stages[b%len(s.stages)]
	if x.raw {
		return nil
	}
	if err := <-x.done; err != nil {
		return err
	}
	rows := (x.hi - x.lo + s.Cols - 1) / s.Cols
	p := x.p[:rows*s.Rank]
	orthonormalise(p, rows, s.Rank)
	backProject(buf[x.lo:x.hi], p, s.qlt, s.Cols, s.Rank)
	transpose(s.q[b], s.qlt, s.Cols, s.Rank, true)
	w.submit(s.q[b], OpSum, false, x.done)
	return nil
}

// reconstruct (stage C) takes the summed Q and sets the output P Qᵀ (÷ n for the
// average) and the memory, M - P Qᵀ ÷ n.
func (s *powerSGD) reconstruct(r *Ring, buf []float32, b int, op Op) error {
	x := &s.stages[b%len(s.stages)]
	if err := <-x.done; err != nil || x.raw {
		return err
	}
	scale := float32(1)
	if op == OpAvg {
		scale = 1 / float32(r.n)
	}
	rows := (x.hi - x.lo + s.Cols - 1) / s.Cols
	transpose(s.q[b], s.qt, s.Cols, s.Rank, false)
	reconstruct(buf[x.lo:x.hi], s.mem[x.lo:x.hi], x.p[:rows*s.Rank], s.qt, s.Cols, s.Rank, 1/float32(r.n), scale)
	n := r.n
	a, bb := segBounds(x.lo, x.hi, (r.rank+1)%n, n)
	c, d := segBounds(x.lo, x.hi, (r.rank+2)%n, n)
	if n > 1 { // what codec none would have sent for this bucket
		r.logical.Add(int64(4 * (2*(x.hi-x.lo) - (bb - a) - (d - c))))
	}
	return nil
}

// raw reduces buf as codec none does, bit for bit, bucket chaining and readiness
// included. The pass's sender and receiver each wait on a gauge of their own (a gauge
// has one waiter), raised as ready rises.
func (s *powerSGD) raw(ctx context.Context, r *Ring, buf []float32, op Op, ready *gauge) error {
	ps := r.newPass(buf, op)
	gs, gr := newGauge(), newGauge()
	ps.logical, ps.readyS, ps.readyR = true, &gs, &gr
	stop, forwarded := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(forwarded)
		for lo := 0; lo < len(buf); lo += r.cfg.BucketElems {
			hi := int64(min(lo+r.cfg.BucketElems, len(buf)))
			if !ready.await(hi, stop) {
				return
			}
			gs.raise(hi)
			gr.raise(hi)
		}
	}()
	err := r.runPass(ctx, ps)
	close(stop)
	<-forwarded
	return err
}

// reducer runs PowerSGD's all-reduces one after another, in the order submitted, on
// a goroutine of its own, so that the products of other buckets run meanwhile.
type reducer struct {
	reqs chan reduction
	done chan struct{}
}

type reduction struct {
	v       []float32
	op      Op
	logical bool
	done    chan<- error
}

func startReducer(ctx context.Context, r *Ring) *reducer {
	w := &reducer{reqs: make(chan reduction, 4), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		var failed error
		for q := range w.reqs {
			if failed == nil {
				ps := r.newPass(q.v, q.op)
				ps.logical = q.logical
				failed = r.runPass(ctx, ps)
			}
			q.done <- failed
		}
	}()
	return w
}

// submit queues an all-reduce of v; its error arrives on done (capacity 1).
func (w *reducer) submit(v []float32, op Op, logical bool, done chan<- error) {
	w.reqs <- reduction{v, op, logical, done}
}

// stop waits until the submitted all-reduces are over: none runs after allReduce returns.
func (w *reducer) stop() {
	close(w.reqs)
	<-w.done
}

// orthonormalise applies modified Gram-Schmidt to the columns of the rows x k matrix p,
// accumulating in float64. A column that vanishes stays zero.
func orthonormalise(p []float32, rows, k int) {
	for j := 0; j < k; j++ {
		for i := 0; i < j; i++ {
			var dot float64
			for r := 0; r < rows; r++ {
				dot += float64(p[r*k+i]) * float64(p[r*k+j])
			}
			for r := 0; r < rows; r++ {
				p[r*k+j] -= float32(dot * float64(p[r*k+i]))
			}
		}
		var norm float64
		for r := 0; r < rows; r++ {
			v := float64(p[r*k+j])
			norm += v * v
		}
		if norm == 0 {
			continue
		}
		inv := 1 / math.Sqrt(norm)
		for r := 0; r < rows; r++ {
			p[r*k+j] = float32(float64(p[r*k+j]) * inv)
		}
	}
}
