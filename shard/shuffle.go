package shard

import (
	"io"
	"math/bits"
	"math/rand/v2"
)

// Order returns the order in which an epoch visits a shard's n records: a
// permutation that depends on seed, epoch and shard only, so every node and
// every restart computes the same one. The generator (PCG) and the shuffle
// (Fisher-Yates with Lemire's bounded draw) are fixed here, not borrowed from
// math/rand's helpers, so the order cannot change with the Go version.
func Order(n int, seed uint64, epoch, shard int) []int {
	rng := rand.NewPCG(seed, splitmix(uint64(epoch)<<32|uint64(uint32(shard))))
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j := bounded(rng, uint64(i+1))
		p[i], p[j] = p[j], p[i]
	}
	return p
}

// splitmix scrambles x, so that neighbouring (epoch, shard) pairs seed
// unrelated streams.
func splitmix(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
	x = (x ^ (x >> 27)) * 0x94D049BB133111EB
	return x ^ (x >> 31)
}

// bounded draws uniformly from [0, n) without modulo bias.
func bounded(rng *rand.PCG, n uint64) uint64 {
	hi, lo := bits.Mul64(rng.Uint64(), n)
	if lo < n {
		for thresh := -n % n; lo < thresh; {
			hi, lo = bits.Mul64(rng.Uint64(), n)
		}
	}
	return hi
}

// Epoch visits an indexed shard's records in the order Order gives. The
// triple (epoch, shard index, Done) is an exact resume point.
type Epoch struct {
	ix    *Index
	order []int
	next  int
}

// Epoch starts an epoch over the index, skipping the first from records of
// its order.
func (ix *Index) Epoch(seed uint64, epoch, from int) *Epoch {
	return &Epoch{ix: ix, order: Order(ix.Len(), seed, epoch, ix.shard.Index), next: min(max(from, 0), ix.Len())}
}

// Next reads the next record of the epoch, or returns io.EOF.
func (e *Epoch) Next(rec *Record) error {
	if e.next == len(e.order) {
		return io.EOF
	}
	if err := e.ix.Read(e.order[e.next], rec); err != nil {
		return err
	}
	e.next++
	return nil
}

// Done is how many records the epoch has returned.
func (e *Epoch) Done() int { return e.next }
