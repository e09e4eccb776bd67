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
	// hidden size, so that weight matrices keep their rows.
	Cols int
	// Seed for the initial right factor, which every rank must share.
	Seed uint32
}

func (p PowerSGDParams) withDefaults() PowerSGDParams {
	if p.Rank == 0 {
		p.Rank = 4
	}
	if p.Cols == 0 {
		p.Cols = 768
	}
	return p
}

func (p PowerSGDParams) validate() error {
	if p.Rank < 1 || p.Rank > 64 || p.Cols < 1 || p.Cols > 1<<16 {
		return fmt.Errorf("allreduce: config: PowerSGD rank %d and cols %d, want 1..64 and 1..65536", p.Rank, p.Cols)
	}
	return nil
}

// powerSGD runs above the ring. Per bucket, with M the local gradient plus this rank's
// error memory, folded to rows x Cols, and Q the shared right factor:
//
//	P = all-reduce-sum(M Q); orthonormalise P's columns
//	Q_local = Mᵀ P; Q = all-reduce-sum(Q_local)
//	out = P Qᵀ (÷ n for the average); error memory = M - P Q_localᵀ
//
// P and Q are identical bits on every rank, hence so is the output. The memory keeps
// what this rank's contribution lost, and adds it to the next step's gradient, so the
// running sum of outputs tracks the running sum of true averages with a bounded error:
// the long-run relative error vanishes. Q is reused as the next step's starting
// factor (one power iteration per step).
type powerSGD struct {
	PowerSGDParams
	mem     []float32   // error feedback, one value per buffer value
	q       [][]float32 // per bucket, Cols x Rank
	p       []float32   // rows x Rank scratch
	qt, qlt []float32   // Q and Q_local transposed (powersgd_kernels.go)
	bufLen  int
	buckets int
}

func newPowerSGD(p PowerSGDParams) *powerSGD { return &powerSGD{PowerSGDParams: p} }

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
	s.p = make([]float32, rows*s.Rank)
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
	s.reset(len(buf), bucket)
	n, rk, cols := r.n, s.Rank, s.Cols
	for b, lo := 0, 0; lo < len(buf); b, lo = b+1, lo+bucket {
		hi := min(lo+bucket, len(buf))
		if !ready.await(int64(hi), ctx.Done()) {
			return fmt.Errorf("allreduce: %w", context.Cause(ctx))
		}
		m, mem := buf[lo:hi], s.mem[lo:hi]
		if s.q[b] == nil {
			s.q[b] = s.initialQ()
		}
		q := s.q[b]
		rows := (len(m) + cols - 1) / cols
		p := s.p[:rows*rk]

		// M += memory; P = M Q
		transpose(q, s.qt, cols, rk, false)
		project(m, mem, s.qt, p, cols, rk)
		if err := s.reduce(ctx, r, p); err != nil {
			return err
		}
		orthonormalise(p, rows, rk)

		// Q_local = Mᵀ P; Q = sum of Q_local
		backProject(m, p, s.qlt, cols, rk)
		transpose(q, s.qlt, cols, rk, true)
		if err := s.reduce(ctx, r, q); err != nil {
			return err
		}

		// memory = M - P Q_localᵀ, out = P Qᵀ
		scale := float32(1)
		if op == OpAvg {
			scale = 1 / float32(n)
		}
		transpose(q, s.qt, cols, rk, false)
		reconstruct(m, mem, p, s.qlt, s.qt, cols, rk, scale)
		a, b := segBounds(lo, hi, (r.rank+1)%n, n)
		c, d := segBounds(lo, hi, (r.rank+2)%n, n)
		if n > 1 {
			r.logical.Add(int64(4 * (2*(hi-lo) - (b - a) - (d - c))))
		}
	}
	return nil
}

// reduce sums v over the ring (raw: a PowerSGD ring's wire codec is CodecNone).
func (s *powerSGD) reduce(ctx context.Context, r *Ring, v []float32) error {
	return r.runPass(ctx, r.newPass(v, OpSum))
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
