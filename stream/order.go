package stream

import (
	"fmt"
	"sort"

	"github.com/bertnode/bertnode/shard"
)

// blockStream is the shard.Order stream of the block permutation; window w uses w.
const blockStream = -1

// Epoch is the order of one epoch's training records (see the package doc), computed
// a window at a time: it holds a few words per block, not per record. It keeps the
// last window it computed, so one Epoch is for one goroutine.
type Epoch struct {
	p         *Plan
	seed      uint64
	epoch, wb int
	blocks    []int // the permuted blocks
	ends      []int // ends[w]: the order's length through window w
	cur       int   // the window in win, or -1
	win       []int32
	scratch   []int32
}

// Epoch starts computing the order of epoch for seed with windows of windowBlocks
// blocks (at least 1).
func (p *Plan) Epoch(seed int64, epoch, windowBlocks int) *Epoch {
	if windowBlocks < 1 {
		panic(fmt.Sprintf("stream: window of %d blocks", windowBlocks))
	}
	e := &Epoch{p: p, seed: uint64(seed), epoch: epoch, wb: windowBlocks, cur: -1,
		blocks: shard.Order(len(p.Blocks), uint64(seed), epoch, blockStream)}
	n := 0
	for j, b := range e.blocks {
		n += int(p.train[b])
		if (j+1)%windowBlocks == 0 || j == len(e.blocks)-1 {
			e.ends = append(e.ends, n)
		}
	}
	return e
}

// Len is the number of training records, the epoch's length.
func (e *Epoch) Len() int { return e.ends[len(e.ends)-1] }

// Batch is Batch(order, pos, size) of this epoch's order.
func (e *Epoch) Batch(pos, size int) []int32 {
	lo, hi := batchRange(e.Len(), pos, size)
	out := make([]int32, 0, hi-lo)
	for lo < hi {
		w := sort.SearchInts(e.ends, lo+1) // the window holding position lo
		start := 0
		if w > 0 {
			start = e.ends[w-1]
		}
		win := e.window(w)
		n := min(hi, e.ends[w]) - lo
		out = append(out, win[lo-start:lo-start+n]...)
		lo += n
	}
	return out
}

// window returns window w's part of the order.
func (e *Epoch) window(w int) []int32 {
	if e.cur == w {
		return e.win
	}
	ids := e.scratch[:0]
	for _, b := range e.blocks[w*e.wb : min((w+1)*e.wb, len(e.blocks))] {
		ids = e.p.appendTrain(ids, b)
	}
	q := shard.Order(len(ids), e.seed, e.epoch, w)
	e.win = e.win[:0]
	for _, k := range q {
		e.win = append(e.win, ids[k])
	}
	e.scratch, e.cur = ids, w
	return e.win
}

// Order is the training record IDs of one epoch in the order it visits them: a pure
// function of the plan, seed, epoch and windowBlocks (see the package doc).
func (p *Plan) Order(seed int64, epoch, windowBlocks int) []int32 {
	e := p.Epoch(seed, epoch, windowBlocks)
	return e.Batch(0, e.Len())
}

// Batch is the global batch at position pos of an epoch's order: the next size
// records, fewer at the end of the epoch, none once pos is len(order). The next batch
// starts at pos+len(batch). pos must be in [0, len(order)] and size positive.
func Batch(order []int32, pos, size int) []int32 {
	lo, hi := batchRange(len(order), pos, size)
	return order[lo:hi]
}

func batchRange(n, pos, size int) (lo, hi int) {
	if pos < 0 || pos > n || size < 1 {
		panic(fmt.Sprintf("stream: batch of %d at position %d of an epoch of %d", size, pos, n))
	}
	return pos, min(pos+size, n)
}

// Piece is rank's share of a global batch among n ranks: contiguous cuts in rank
// order, of len(batch)/n records, the first len(batch)%n ranks one more. A rank weights
// its loss by len(piece)/len(batch).
func Piece(batch []int32, n, rank int) []int32 {
	if n < 1 || rank < 0 || rank >= n {
		panic(fmt.Sprintf("stream: piece %d of %d", rank, n))
	}
	q, r := len(batch)/n, len(batch)%n
	lo := rank*q + min(rank, r)
	hi := lo + q
	if rank < r {
		hi++
	}
	return batch[lo:hi]
}

// WeightedPiece is rank's contiguous part of batch when the ranks take shares in
// proportion to weights (their speeds): sizes by largest remainder, ties to the lower
// rank, so every rank computes the same cut from the same weights; the pieces in rank
// order make up the batch. Non-positive or missing weights fall back to Piece.
func WeightedPiece(batch []int32, weights []float64, rank int) []int32 {
	n := len(weights)
	var sum float64
	for _, w := range weights {
		if !(w > 0) {
			return Piece(batch, n, rank)
		}
		sum += w
	}
	sizes := make([]int, n)
	rem := make([]float64, n)
	left := len(batch)
	for i, w := range weights {
		exact := float64(len(batch)) * w / sum
		sizes[i] = int(exact)
		rem[i] = exact - float64(sizes[i])
		left -= sizes[i]
	}
	for ; left > 0; left-- {
		best := 0
		for i := range rem {
			if rem[i] > rem[best] {
				best = i
			}
		}
		sizes[best]++
		rem[best] = -1
	}
	lo := 0
	for i := range rank {
		lo += sizes[i]
	}
	return batch[lo : lo+sizes[rank]]
}
