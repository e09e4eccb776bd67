package node

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/bertnode/bertnode/allreduce"
	"github.com/bertnode/bertnode/shard"
)

// Overlapper is a Replica whose gradient the all-reduce can take while Backward still
// runs, prefix by prefix as backward finishes it.
type Overlapper interface {
	// CanOverlap says whether BackwardReady reports early prefixes (false for a model
	// on a GPU, whose gradient is copied to the host after backward).
	CanOverlap() bool
	// BackwardReady is Backward, calling ready(n), from another goroutine and with n
	// growing, each time Grad()[:n] has become final. Grad's buffer must be the same
	// before and after.
	BackwardReady(recs []shard.Record, weight float64, seed int64, ready func(n int)) (float64, error)
}

// GradStats are what BackwardAllReduce measured.
type GradStats struct {
	Loss    float64
	Compute time.Duration // backward
	// Comm is the all-reduce's time after backward returned: all of it without overlap,
	// what overlap did not hide with it.
	Comm time.Duration
	// Sent is what this rank put on the wire for the gradient, SentEarly the part of it
	// sent before backward returned: the communication overlap hid.
	Sent, SentEarly int64
	// Overlapped: the all-reduce started before backward; the hooks declared its
	// first prefix final Lead before backward returned.
	Overlapped bool
	Lead       time.Duration
}

// BackwardAllReduce runs r's Backward and sums its gradient over ring in place. With
// overlap on and a replica that can, ring.Start comes first and each prefix of the
// gradient goes on the wire as backward finishes it (Ready), the rest once backward
// returns; otherwise the all-reduce follows backward. The sums are bit-identical either
// way: the ring's order of addition depends only on the buffer's length and the ring.
// afterBackward, if not nil, is called as soon as backward has returned (a benchmark's
// clock).
func BackwardAllReduce(ctx context.Context, ring *allreduce.Ring, r Replica, recs []shard.Record, weight float64, seed int64,
	overlap bool, afterBackward func()) (GradStats, error) {
	var st GradStats
	ov, ok := r.(Overlapper)
	if !overlap || !ok || !ov.CanOverlap() {
		t0 := time.Now()
		loss, err := r.Backward(recs, weight, seed)
		if err != nil {
			return st, err
		}
		if afterBackward != nil {
			afterBackward()
		}
		t1, w1 := time.Now(), ring.Stats().WireBytes
		st.Loss, st.Compute = loss, t1.Sub(t0)
		err = ring.AllReduce(ctx, r.Grad(), allreduce.OpSum)
		st.Comm, st.Sent = time.Since(t1), ring.Stats().WireBytes-w1
		return st, err
	}
	st.Overlapped = true
	grad := r.Grad()
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	t0, w0 := time.Now(), ring.Stats().WireBytes
	p, err := ring.Start(pctx, grad, allreduce.OpSum)
	if err != nil {
		return st, err
	}
	var first atomic.Int64 // ns after t0
	loss, err := ov.BackwardReady(recs, weight, seed, func(n int) {
		first.CompareAndSwap(0, int64(time.Since(t0)))
		p.Ready(n)
	})
	t1, w1 := time.Now(), ring.Stats().WireBytes
	if afterBackward != nil {
		afterBackward()
	}
	if err != nil {
		cancel() // tears the ring down: the neighbours wait for buckets that will not come
		p.Wait()
		return st, err
	}
	st.Loss, st.Compute, st.SentEarly = loss, t1.Sub(t0), w1-w0
	if f := first.Load(); f > 0 {
		st.Lead = st.Compute - time.Duration(f)
	}
	p.Ready(len(grad))
	err = p.Wait()
	st.Comm, st.Sent = time.Since(t1), ring.Stats().WireBytes-w0
	return st, err
}
