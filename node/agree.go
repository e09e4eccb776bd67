package node

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/bertnode/bertnode/allreduce"
)

// The small collective steps a generation starts with, all built on the ring's
// exact all-reduce (sum: codec none whatever the job's codec), so they need no
// transport of their own. Integers travel as float32 values below 2^24, which sums
// keep exact, and a donor's state arrives bit for bit.

const lo20 = 1 << 20

// agreement is what the ranks of a new generation learn about each other.
type agreement struct {
	has     []bool  // the rank holds a state of this job's lineage
	applied []int64 // its applied steps
	target  int64   // the most steps any rank with state applied
	donor   int     // the lowest rank at target with state; 0 when none has state
}

// needsTransfer says whether some rank must receive the donor's state.
func (a agreement) needsTransfer() bool {
	for r := range a.has {
		if !a.has[r] || a.applied[r] != a.target {
			return true
		}
	}
	return false
}

// agree exchanges (has state, applied steps) among the ranks.
func agree(ctx context.Context, ring *allreduce.Ring, has bool, applied int64) (agreement, error) {
	n, r := ring.Size(), ring.Rank()
	v := make([]float32, 3*n)
	if has {
		v[3*r] = 1
		v[3*r+1] = float32(applied / lo20)
		v[3*r+2] = float32(applied % lo20)
	}
	if err := ring.AllReduceExact(ctx, v, allreduce.OpSum); err != nil {
		return agreement{}, err
	}
	a := agreement{has: make([]bool, n), applied: make([]int64, n), target: -1}
	for i := range n {
		a.has[i] = v[3*i] == 1
		a.applied[i] = int64(v[3*i+1])*lo20 + int64(v[3*i+2])
		if a.has[i] && a.applied[i] > a.target {
			a.target, a.donor = a.applied[i], i
		}
	}
	if a.target < 0 { // nobody has state: the job starts from rank 0's replica
		a.target, a.donor = 0, 0
	}
	return a, nil
}

// broadcast gives every rank the donor's buffers and position: the others contribute
// zeros, and x + 0 = x for every float (a -0 arrives as +0 on every rank alike). A
// receiver sums into new buffers and takes them only once the whole state has arrived:
// a transfer cut short (the donor dies) leaves its state, and pos, as they were, so it
// can still be the next generation's donor at its own step.
func broadcast(ctx context.Context, ring *allreduce.Ring, donor int, bufs [][]float32, pos *Position) error {
	mine := ring.Rank() == donor
	in := bufs
	if !mine {
		in = make([][]float32, len(bufs))
		for i, b := range bufs {
			in[i] = make([]float32, len(b))
		}
	}
	for _, b := range in {
		if err := ring.AllReduceExact(ctx, b, allreduce.OpSum); err != nil {
			return err
		}
	}
	var enc []float32
	if mine {
		enc = bytesToFloats(pos.marshal())
	}
	n, err := sumLen(ctx, ring, len(enc))
	if err != nil {
		return err
	}
	if !mine {
		enc = make([]float32, n)
	}
	if err := ring.AllReduceExact(ctx, enc, allreduce.OpSum); err != nil {
		return err
	}
	var p Position
	if err := json.Unmarshal(floatsToBytes(enc), &p); err != nil {
		return fmt.Errorf("state transfer: position: %w", err)
	}
	for i := range in {
		copy(bufs[i], in[i])
	}
	*pos = p
	return nil
}

// sumLen all-reduces one length (the others contribute 0).
func sumLen(ctx context.Context, ring *allreduce.Ring, n int) (int, error) {
	v := []float32{float32(n / lo20), float32(n % lo20)}
	if err := ring.AllReduceExact(ctx, v, allreduce.OpSum); err != nil {
		return 0, err
	}
	return int(v[0])*lo20 + int(v[1]), nil
}

// verify checks that every rank's checksum equals this one's: the replicas are
// identical. It compares the first 64 bits, in 16-bit pieces.
func verify(ctx context.Context, ring *allreduce.Ring, sum string) error {
	n, r := ring.Size(), ring.Rank()
	v := make([]float32, 4*n)
	for i := range 4 {
		v[4*r+i] = float32(hexPiece(sum, i))
	}
	if err := ring.AllReduceExact(ctx, v, allreduce.OpSum); err != nil {
		return err
	}
	for q := range n {
		for i := range 4 {
			if v[4*q+i] != v[4*r+i] {
				return fmt.Errorf("%w: rank %d's state differs from rank %d's (checksum %s...)", errDiverged, q, r, sum[:16])
			}
		}
	}
	return nil
}

// hexPiece is the i-th 16-bit piece of a hex digest.
func hexPiece(sum string, i int) int {
	var v int
	fmt.Sscanf(sum[4*i:4*i+4], "%x", &v)
	return v
}

func bytesToFloats(b []byte) []float32 {
	f := make([]float32, len(b))
	for i, c := range b {
		f[i] = float32(c)
	}
	return f
}

func floatsToBytes(f []float32) []byte {
	b := make([]byte, len(f))
	for i, v := range f {
		b[i] = byte(v)
	}
	return b
}
