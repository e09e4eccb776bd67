package model

import (
	"math"
	"sync"
	"sync/atomic"
)

// The optimizer's passes over the flat buffers on the CPU, in Go over zero-copy views:
// AdamW reads each parameter, gradient and moment once and writes each parameter and
// moment once, which is the whole of its memory traffic, where a sequence of
// whole-buffer libtorch ops reads and writes temporaries the size of the model at
// every op.
//
// Work is split into fixed chunks taken by Threads() goroutines in any order; each
// chunk's result is the same whoever computes it and reductions are combined in chunk
// order, so results do not depend on the thread count or on scheduling.

// chunkLen elements (256 KiB of each buffer) is one unit of work: large against the
// cost of taking it, small enough that a worker slowed by other load on its core leaves
// the rest to the others.
const chunkLen = 1 << 16

// forChunks calls fn for each chunk of [0, n) on up to workers goroutines (the caller's
// included) and returns when all are done.
func forChunks(n, workers int, fn func(c, lo, hi int)) {
	chunks := (n + chunkLen - 1) / chunkLen
	var next atomic.Int64
	work := func() {
		for {
			c := int(next.Add(1) - 1)
			if c >= chunks {
				return
			}
			fn(c, c*chunkLen, min(n, (c+1)*chunkLen))
		}
	}
	var wg sync.WaitGroup
	for range min(workers, chunks) - 1 {
		wg.Go(work)
	}
	work()
	wg.Wait()
}

// adamwKernel holds one step's coefficients, as float32 as libtorch's CPU kernels use
// them, so the arithmetic below is updateTorch's op for op and rounds as it does (the
// float32 conversions keep compilers that fuse multiply-adds, as on arm64, from
// fusing where libtorch does not).
type adamwKernel struct {
	clip   float32 // the gradient's scale: the clip's coefficient, or 1
	decay  float32 // 1 - lr*weight_decay
	w1     float32 // 1 - beta1, the lerp weight of m toward g
	b2     float32
	w2     float32 // 1 - beta2
	bc2    float32 // sqrt(1 - beta2^step)
	eps    float32
	stepSz float32 // -lr / (1 - beta1^step)
}

// update runs one step on p, g, m, v (the same length). With decay false p is not
// decayed (biases, LayerNorm weights).
func (k *adamwKernel) update(p, g, m, v []float32, decay bool) {
	g, m, v = g[:len(p)], m[:len(p)], v[:len(p)]
	d := float32(1)
	if decay {
		d = k.decay
	}
	i := k.vector(p, g, m, v, d)
	k.scalar(p[i:], g[i:], m[i:], v[i:], d)
}

// scalar is update one value at a time, with p multiplied by d.
func (k *adamwKernel) scalar(p, g, m, v []float32, d float32) {
	g, m, v = g[:len(p)], m[:len(p)], v[:len(p)]
	for i := range p {
		gi := g[i] * k.clip // exact when 1
		// lerp as libtorch's kernel: fma(w1, g-m, m). The product of two float32s is
		// exact in float64, so this rounds once (to float64) before the float32 result.
		mi := float32(float64(k.w1)*float64(gi-m[i]) + float64(m[i]))
		vi := float32(v[i]*k.b2) + float32(gi*gi*k.w2)
		m[i], v[i] = mi, vi
		denom := float32(math.Sqrt(float64(vi)))/k.bc2 + k.eps
		p[i] = float32(p[i]*d) + float32(mi/denom*k.stepSz)
	}
}

// sumSquares is Σx² in float64: the vector loop's share, then the rest four
// accumulators wide so the adds do not wait on each other.
func sumSquares(x []float32) float64 {
	sv, i := sumSquaresVector(x)
	var s0, s1, s2, s3 float64
	for ; i+4 <= len(x); i += 4 {
		a, b, c, d := float64(x[i]), float64(x[i+1]), float64(x[i+2]), float64(x[i+3])
		s0 += a * a
		s1 += b * b
		s2 += c * c
		s3 += d * d
	}
	for ; i < len(x); i++ {
		s0 += float64(x[i]) * float64(x[i])
	}
	return sv + (s0 + s1) + (s2 + s3)
}

// norm2 is the L2 norm of x, computed on workers goroutines.
func norm2(x []float32, workers int) float64 {
	parts := make([]float64, (len(x)+chunkLen-1)/chunkLen)
	forChunks(len(x), workers, func(c, lo, hi int) { parts[c] = sumSquares(x[lo:hi]) })
	var s float64
	for _, p := range parts {
		s += p
	}
	return math.Sqrt(s)
}

// scale multiplies x by f in place on workers goroutines.
func scale(x []float32, f float32, workers int) {
	forChunks(len(x), workers, func(_, lo, hi int) {
		x := x[lo:hi]
		for i := scaleVector(x, f); i < len(x); i++ {
			x[i] *= f
		}
	})
}
