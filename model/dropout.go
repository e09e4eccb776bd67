package model

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Dropout on the CPU draws its noise here instead of in libtorch, which spends most of
// a dropout in a serial loop over its generator (at::bernoulli_ without MKL: 7 ns an
// element, 3% of a BERT-base step, one core idle). The noise is libtorch's, bit for bit:
// the same Mersenne Twister, read from the default generator's state and written back,
// and the same rule as at::dropout (noise = bernoulli(1-p) / (1-p), output = x * noise),
// so results and the generator's state after a step are what libtorch's dropout gives.

// mt19937 is libtorch's at::mt19937 engine (ATen/core/MT19937RNGEngine.h).
type mt19937 struct {
	state [mtN]uint32
	left  int32  // words left + 1: the next draw twists when it reaches 1
	next  uint32 // index of the next word in state
}

const (
	mtN, mtM = 624, 397
	// Offsets in the bytes of the CPU generator's state (at::CPUGeneratorImplState).
	rngLeft, rngSeeded, rngNext, rngWords, rngStateLen = 8, 12, 16, 24, 5056
)

func (g *mt19937) twist() {
	s := &g.state
	j := 0
	if hasAVX2 { // as many words as 8-word vectors take, the rest below
		j = (mtN - mtM) &^ 7
		twistAVX2(&s[0], j, mtM)
	}
	for ; j < mtN-mtM; j++ {
		s[j] = s[j+mtM] ^ twistMix(s[j], s[j+1])
	}
	if hasAVX2 { // reads s[j+1] up to s[mtN-1], which the last word changes
		n := (mtN - 1 - j) &^ 7
		twistAVX2(&s[j], n, mtM-mtN)
		j += n
	}
	for ; j < mtN-1; j++ {
		s[j] = s[j+mtM-mtN] ^ twistMix(s[j], s[j+1])
	}
	s[mtN-1] = s[mtM-1] ^ twistMix(s[mtN-1], s[0])
	g.left, g.next = mtN+1, 0
}

func twistMix(u, v uint32) uint32 {
	return ((u&0x80000000)|(v&0x7fffffff))>>1 ^ (-(v & 1) & 0x9908b0df)
}

func temper(y uint32) uint32 {
	y ^= y >> 11
	y ^= y << 7 & 0x9d2c5680
	y ^= y << 15 & 0xefc60000
	return y ^ y>>18
}

// u32 is the engine's next output.
func (g *mt19937) u32() uint32 {
	if g.left == 1 {
		g.twist()
	}
	y := g.state[g.next]
	g.next++
	g.left--
	return temper(y)
}

// noise fills out with dropout noise for keep probability keep: per element, libtorch's
// bernoulli_distribution<double>(keep) on random64 (two outputs, the first the high
// half; its 53 low bits over 2^53 below keep), times 1/keep as float32 (0 or scale).
func (g *mt19937) noise(out []float32, keep float64) {
	threshold := uint64(math.Ceil(keep * (1 << 53)))
	scale := float32(1) / float32(keep)
	pick := func(hi, lo uint32) float32 {
		if uint64(hi&(1<<21-1))<<32|uint64(lo) < threshold {
			return scale
		}
		return 0
	}
	for len(out) > 0 {
		// Whole elements left in the state; none when an element straddles a twist.
		n := min(int(g.left-1)/2, len(out))
		if n == 0 {
			hi := g.u32()
			out[0] = pick(hi, g.u32())
			out = out[1:]
			continue
		}
		w := g.state[g.next : g.next+uint32(2*n)]
		k := 0
		if hasAVX2 && n >= 8 {
			k = n &^ 7
			noiseAVX2(&w[0], &out[0], k, threshold, scale)
		}
		for ; k < n; k++ {
			out[k] = pick(temper(w[2*k]), temper(w[2*k+1]))
		}
		g.next += uint32(2 * n)
		g.left -= int32(2 * n)
		out = out[n:]
	}
}

// skip advances the engine past n elements' draws (two words each).
func (g *mt19937) skip(n int) {
	for w := 2 * n; w > 0; {
		if g.left == 1 {
			g.twist()
		}
		k := min(w, int(g.left-1))
		g.next += uint32(k)
		g.left -= int32(k)
		w -= k
	}
}

// cpuRNG is the default CPU generator's state, read once and written back once.
type cpuRNG struct {
	raw []byte
	mt  mt19937
}

// loadCPURNG reads libtorch's default CPU generator.
func loadCPURNG() (*cpuRNG, error) {
	raw, err := RNGState(gotch.CPU)
	if err != nil {
		return nil, err
	}
	if len(raw) != rngStateLen {
		return nil, fmt.Errorf("model: the CPU generator's state has %d bytes, want %d", len(raw), rngStateLen)
	}
	r := &cpuRNG{raw: raw}
	le := binary.LittleEndian
	r.mt.left = int32(le.Uint32(raw[rngLeft:]))
	r.mt.next = uint32(le.Uint64(raw[rngNext:]))
	if le.Uint32(raw[rngSeeded:])&0xff == 0 || r.mt.left < 1 || r.mt.left > mtN || r.mt.next > mtN {
		return nil, fmt.Errorf("model: the CPU generator's state is not a seeded mt19937 (left %d, next %d)", r.mt.left, r.mt.next)
	}
	for i := range r.mt.state {
		r.mt.state[i] = uint32(le.Uint64(raw[rngWords+8*i:]))
	}
	return r, nil
}

// store writes the engine back into libtorch's default CPU generator.
func (r *cpuRNG) store() error {
	le := binary.LittleEndian
	le.PutUint32(r.raw[rngLeft:], uint32(r.mt.left))
	le.PutUint64(r.raw[rngNext:], uint64(r.mt.next))
	for i, w := range r.mt.state {
		le.PutUint64(r.raw[rngWords+8*i:], uint64(w))
	}
	return SetRNGState(gotch.CPU, r.raw)
}

// dropper applies a forward's dropouts: on the CPU in training with noise from rng,
// libtorch's generator read into Go for the forward (see newDropper); else, and for
// rates 0 and 1 (which draw nothing), libtorch's dropout.
type dropper struct {
	train bool
	rng   *cpuRNG
}

// newDropper reads the CPU generator when training on the CPU; done writes it back.
func newDropper(train bool, dev gotch.Device) (*dropper, error) {
	d := &dropper{train: train}
	if train && !dev.IsCuda() {
		var err error
		if d.rng, err = loadCPURNG(); err != nil {
			return nil, err
		}
	}
	return d, nil
}

func (d *dropper) done() {
	if d.rng != nil {
		if err := d.rng.store(); err != nil {
			panic(err)
		}
	}
}

func (d *dropper) ours(x *ts.Tensor, p float64) bool {
	return d.rng != nil && p > 0 && p < 1 // a CPU model computes in float32, as the noise is
}

// apply is dropout at rate p of x, which stays the caller's.
func (d *dropper) apply(x *ts.Tensor, p float64) *ts.Tensor {
	if !d.ours(x, p) {
		return ts.MustDropout(x, p, d.train)
	}
	noise := ts.MustEmpty(x.MustSize(), gotch.Float, gotch.CPU)
	d.rng.mt.noise(floatSlice(noise, int64(noise.Numel())), 1-p)
	out := x.MustMul(noise, false)
	noise.MustDrop()
	return out
}

// first is dropout at rate p of x, the first index along dim of a tensor of shape full,
// which x stays the caller's: the noise of the whole tensor, of which x gets its part,
// so the generator advances as for the whole tensor and x's values are the whole's.
func (d *dropper) first(x *ts.Tensor, p float64, full []int64, dim int) *ts.Tensor {
	if !d.ours(x, p) {
		if !d.train || p == 0 {
			return ts.MustDropout(x, p, d.train)
		}
		// libtorch's dropout of ones of shape full is its noise.
		ones := ts.MustOnes(full, x.DType(), x.MustDevice())
		noise := ts.MustDropout(ones, p, d.train).MustNarrow(int64(dim), 0, 1, true)
		ones.MustDrop()
		out := x.MustMul(noise, false)
		noise.MustDrop()
		return out
	}
	part := slices.Clone(full)
	part[dim] = 1
	noise := ts.MustEmpty(part, gotch.Float, gotch.CPU)
	inner := int(numel(full[dim+1:]))
	rest := int(full[dim]-1) * inner
	buf := floatSlice(noise, int64(noise.Numel()))
	for o := 0; o < len(buf); o += inner {
		d.rng.mt.noise(buf[o:o+inner], 1-p)
		d.rng.mt.skip(rest)
	}
	out := x.MustMul(noise, false)
	noise.MustDrop()
	return out
}
