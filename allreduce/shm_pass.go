package allreduce

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// An all-reduce through the shared region. The schedule's summation order is kept
// exactly (segment c of each bucket summed as ((x_c + x_c+1) + ...) + x_c-1 on rank c-1,
// each addition with the new term first as the TCP receiver does it, times float32(1/n)
// for OpAvg), so the bits equal the TCP ring's; only the data movement differs. Each
// bucket's segments are cut into pieces of at most q values; round k takes piece j of
// every segment of one bucket, and rank r, with d = k mod shmDepth:
//
//	in(k):  waits until every rank has copied out round k-shmDepth (its slot d is
//	        free), copies its pieces of the segments it does not own into slot (r, d)
//	red(k): waits for every rank's in(k), sums its segment r+1 reading the other
//	        ranks' pieces from their slots and its own from its buffer, last; writes
//	        the sum to its buffer and to slot (r, d), piece r+1
//	out(k): for each other segment c, waits for its owner's red(k) and copies the sum
//	        from slot (c-1, d) into its buffer
//
// in(k+1) runs before red(k) when round k+1's bucket is ready, so the other ranks
// need not wait for this rank's copy-in. Every wait is on a counter a rank publishes
// after the work (in, red, out: rounds done), and depends only on steps that come
// earlier in the order in(0) in(1) red(0) out(0) in(2) red(1) out(1) ..., so the
// schedule cannot deadlock.
type shmPass struct {
	r     *Ring
	s     *shmRegion
	buf   []float32
	op    Op
	ready *gauge
	abort chan struct{}
	once  sync.Once
	err   error
}

// shmRound is one round: piece j of every segment of bucket [lo, hi).
type shmRound struct{ lo, hi, j int }

// rounds counts the rounds of a bucket of l values: its longest segment in pieces.
func (p *shmPass) rounds(l int) int {
	n := p.r.n
	return ((l+n-1)/n + p.s.q - 1) / p.s.q
}

// round k of the operation, computed without a table: full buckets all have the same
// number of rounds.
func (p *shmPass) round(k int) shmRound {
	bucket := p.r.cfg.BucketElems
	full := len(p.buf) / bucket
	per := p.rounds(bucket)
	if k < full*per {
		lo := k / per * bucket
		return shmRound{lo, lo + bucket, k % per}
	}
	return shmRound{full * bucket, len(p.buf), k - full*per}
}

func (p *shmPass) totalRounds() int {
	bucket := p.r.cfg.BucketElems
	full := len(p.buf) / bucket
	return full*p.rounds(bucket) + p.rounds(len(p.buf)-full*bucket)
}

// piece is round rd's piece of segment c.
func (p *shmPass) piece(rd shmRound, c int) (int, int) {
	a, b := segBounds(rd.lo, rd.hi, c, p.r.n)
	q := p.s.q
	return min(a+rd.j*q, b), min(a+(rd.j+1)*q, b)
}

func (p *shmPass) slot(rank int, g uint32, c int) []float32 {
	q := p.s.q
	return p.s.slots[rank*shmDepth+int(g%shmDepth)][c*q : (c+1)*q]
}

// runShm is runPass for a ring in shared memory.
func (r *Ring) runShm(ctx context.Context, buf []float32, op Op, ready *gauge) error {
	p := &shmPass{r: r, s: r.shm, buf: buf, op: op, ready: ready, abort: make(chan struct{})}
	if !p.s.acquire(p) {
		return ErrClosed
	}
	defer p.s.release()
	stop := context.AfterFunc(ctx, func() { p.fail(fmt.Errorf("allreduce: %w", context.Cause(ctx))) })
	if err := p.run(); err != nil {
		p.fail(err)
	}
	stop()
	p.once.Do(func() {}) // waits for a cancellation already failing the pass; bars later ones
	if p.err != nil {
		r.broken = p.err
		return p.err
	}
	r.logical.Add(p.logicalBytes())
	return nil
}

// fail records the first error, flags it in the region for the other ranks (naming
// the rank to blame) and closes the connections, as the TCP ring does.
func (p *shmPass) fail(err error) {
	p.once.Do(func() {
		if p.r.closed.Load() {
			err = ErrClosed
		}
		p.err = err
		p.s.aborted.Store(&errBox{err})
		blame, cause := p.r.rank, causeLost
		var pe *PeerError
		if errors.As(err, &pe) {
			blame = pe.Rank
			if errors.Is(err, ErrTimeout) {
				cause = causeTimeout
			}
		}
		p.s.flag(blame, cause)
		close(p.abort)
		p.r.closeConns()
	})
}

func (p *shmPass) run() error {
	r, s := p.r, p.s
	if err := s.failure(); err != nil { // a neighbour left since the last operation
		return err
	}
	me := &s.ranks[r.rank]
	me.seq.Store(r.seq)
	me.op.Store(uint32(p.op))
	me.total.Store(uint64(len(p.buf)))
	base, total := s.rounds, p.totalRounds()
	in := 0 // rounds copied in
	for k := range total {
		for in <= k {
			if err := p.copyIn(base, in); err != nil {
				return err
			}
			in++
		}
		if in < total {
			if next := p.round(in); p.ready == nil || p.ready.v.Load() >= int64(next.hi) {
				if err := p.copyIn(base, in); err != nil {
					return err
				}
				in++
			}
		}
		if err := p.reduce(base, k); err != nil {
			return err
		}
		if err := p.copyOut(base, k); err != nil {
			return err
		}
	}
	s.rounds = base + uint32(total)
	return nil
}

// errAborted stops the schedule after fail has recorded the real error.
var errAborted = errors.New("allreduce: aborted")

func (p *shmPass) copyIn(base uint32, k int) error {
	r, s := p.r, p.s
	rd := p.round(k)
	if err := p.awaitReady(int64(rd.hi)); err != nil {
		return err
	}
	g := base + uint32(k)
	for q := range r.n {
		if q != r.rank {
			if err := s.await(s.ranks[q].out, g+1-shmDepth, q); err != nil {
				return err
			}
		}
	}
	own := (r.rank + 1) % r.n
	for c := range r.n {
		if c != own {
			a, b := p.piece(rd, c)
			copy(p.slot(r.rank, g, c), p.buf[a:b])
			r.shared.Add(int64(4 * (b - a)))
		}
	}
	s.publish(s.ranks[r.rank].in, g+1)
	return nil
}

// awaitReady waits until the caller has declared buf[:hi] final. Unlike the TCP ring,
// which learns of a failure only from its connections, a rank waiting for its caller
// looks at the region every shmReadyPoll, so it fails soon after the others do.
func (p *shmPass) awaitReady(hi int64) error {
	if p.ready == nil || p.ready.v.Load() >= hi {
		return nil
	}
	tick := time.NewTicker(shmReadyPoll)
	defer tick.Stop()
	for p.ready.v.Load() < hi {
		select {
		case <-p.ready.wake:
		case <-p.abort:
			return errAborted
		case <-tick.C:
			if err := p.s.failure(); err != nil {
				return err
			}
		}
	}
	return nil
}

const shmReadyPoll = 20 * time.Millisecond

func (p *shmPass) reduce(base uint32, k int) error {
	r, s, n := p.r, p.s, p.r.n
	rd := p.round(k)
	g := base + uint32(k)
	for q := range n {
		if q == r.rank {
			continue
		}
		if err := s.await(s.ranks[q].in, g+1, q); err != nil {
			return err
		}
		if k == 0 {
			if err := p.checkPeer(q); err != nil {
				return err
			}
		}
	}
	c := (r.rank + 1) % n
	a, b := p.piece(rd, c)
	m := b - a
	dst, res := p.buf[a:b], p.slot(r.rank, g, c)[:m]
	f := float32(1)
	if p.op == OpAvg {
		f = 1 / float32(n)
	}
	// In blocks that keep the partial sum in the L1 cache while the terms stream in.
	const block = 4096
	for lo := 0; lo < m; lo += block {
		hi := min(lo+block, m)
		acc := p.slot(c, g, c)[lo:hi] // x_c
		if n > 2 {
			addTo(res[lo:hi], p.slot((c+1)%n, g, c)[lo:hi], acc) // x_c+1 + x_c
			for t := 2; t < n-1; t++ {
				addInto(res[lo:hi], p.slot((c+t)%n, g, c)[lo:hi]) // x_c+t + ...
			}
			acc = res[lo:hi]
		}
		finish(dst[lo:hi], acc, res[lo:hi], f) // (x_c-1 + ...) * f, this rank's own term last
	}
	r.shared.Add(int64(4 * m))
	s.publish(s.ranks[r.rank].red, g+1)
	return nil
}

func (p *shmPass) copyOut(base uint32, k int) error {
	r, s, n := p.r, p.s, p.r.n
	rd := p.round(k)
	g := base + uint32(k)
	own := (r.rank + 1) % n
	for c := range n {
		if c == own {
			continue
		}
		o := (c + n - 1) % n
		if err := s.await(s.ranks[o].red, g+1, o); err != nil {
			return err
		}
		a, b := p.piece(rd, c)
		copy(p.buf[a:b], p.slot(o, g, c))
	}
	s.publish(s.ranks[r.rank].out, g+1)
	return nil
}

// checkPeer: rank q runs the same operation (the TCP ring checks this in every frame
// header). Read once rank q has published its first round of this operation, before
// which it cannot have moved on to the next.
func (p *shmPass) checkPeer(q int) error {
	c := &p.s.ranks[q]
	seq, op, total := c.seq.Load(), Op(c.op.Load()), c.total.Load()
	if seq != p.r.seq || op != p.op || total != uint64(len(p.buf)) {
		return p.r.peerErr(q, fmt.Errorf("%w: rank %d runs operation %d (%v of %d values), we run %d (%v of %d)",
			ErrProtocol, q, seq, op, total, p.r.seq, p.op, len(p.buf)))
	}
	return nil
}

// logicalBytes is what the TCP ring would have sent for this operation: per bucket,
// every segment twice but the two this rank receives last in each phase.
func (p *shmPass) logicalBytes() int64 {
	r := p.r
	var v int64
	for lo := 0; lo < len(p.buf); lo += r.cfg.BucketElems {
		hi := min(lo+r.cfg.BucketElems, len(p.buf))
		a1, b1 := segBounds(lo, hi, (r.rank+1)%r.n, r.n)
		a2, b2 := segBounds(lo, hi, (r.rank+2)%r.n, r.n)
		v += int64(4 * (2*(hi-lo) - (b1 - a1) - (b2 - a2)))
	}
	return v
}
