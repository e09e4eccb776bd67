package shard

import (
	"math/bits"
	"math/rand/v2"
)

// Order returns a permutation of 0..n-1 that depends on seed, epoch and stream
// only, so every node and every restart computes the same one: package stream
// permutes an epoch's blocks with stream -1 and the records of window w with
// stream w. The generator (PCG) and the shuffle (Fisher-Yates with Lemire's
// bounded draw) are fixed here, not borrowed from math/rand's helpers, so the
// order cannot change with the Go version.
func Order(n int, seed uint64, epoch, stream int) []int {
	rng := rand.NewPCG(seed, splitmix(uint64(epoch)<<32|uint64(uint32(stream))))
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

// splitmix scrambles x, so that neighbouring (epoch, stream) pairs seed
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
