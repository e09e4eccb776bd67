package allreduce

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// The schedule. The caller's buffer is cut into buckets of BucketElems values, each
// reduced by one ring pass; a bucket of L values is cut into n segments, segment c
// being [c*L/n, (c+1)*L/n); a segment travels in frames of at most ChunkElems values.
// In the 2(n-1) steps of a pass rank r
//
//	reduce-scatter, s = 0..n-2:  sends segment r-s, receives r-s-1 and adds it
//	all-gather, t = 0..n-2:      sends segment r+1-t, receives r-t and stores it
//
// (segment numbers mod n). Segment c therefore starts at rank c and is summed in ring
// order, ((x_c + x_c+1) + x_c+2) + ... + x_c-1, on rank c-1, which multiplies it by
// float32(1/n) (OpAvg) and rounds it to the codec (lossy codecs) before the all-gather hands the same bits to
// everyone. The order is fixed by n, BucketElems and ChunkElems alone, so results are
// reproducible and identical on every rank.
//
// Both directions run at once: a sender goroutine writes to the next rank while the
// receiver reads from the previous one. A frame the sender forwards at step s is the one
// the receiver finished at step s-1, so the sender waits frame by frame, not step by
// step, and sending, receiving and reducing overlap.

func segBounds(lo, hi, seg, n int) (int, int) {
	l := hi - lo
	return lo + seg*l/n, lo + (seg+1)*l/n
}

func mod(a, n int) int { return ((a % n) + n) % n }

func sendSeg(rank, s, n int) int {
	if s < n-1 {
		return mod(rank-s, n)
	}
	return mod(rank+1-(s-(n-1)), n)
}

func recvSeg(rank, s, n int) int {
	if s < n-1 {
		return mod(rank-s-1, n)
	}
	return mod(rank-(s-(n-1)), n)
}

func frames(a, b, chunk int) int { return (b - a + chunk - 1) / chunk }

// gauge is a monotone counter another goroutine can wait on without allocating.
type gauge struct {
	v    atomic.Int64
	wake chan struct{}
}

func newGauge() gauge { return gauge{wake: make(chan struct{}, 1)} }

func (g *gauge) raise(v int64) {
	for {
		old := g.v.Load()
		if v <= old || g.v.CompareAndSwap(old, v) {
			break
		}
	}
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// await returns once the gauge reaches v, or false when abort closes first.
func (g *gauge) await(v int64, abort <-chan struct{}) bool {
	for g.v.Load() < v {
		select {
		case <-g.wake:
		case <-abort:
			return false
		}
	}
	return true
}

// pass is one all-reduce of a buffer over the ring.
type pass struct {
	r       *Ring
	buf     []float32
	op      Op
	logical bool          // count the bytes as logical traffic (not for PowerSGD's factors)
	exact   bool          // codec none whatever the ring's (AllReduceExact)
	readyS  *gauge        // how much of buf the caller has prepared, seen by the sender
	readyR  *gauge        // the same, seen by the receiver
	recvd   gauge         // frames the receiver has finished
	sent    gauge         // frames the sender has handed to the kernel
	abort   chan struct{} // closed on the first failure
	once    sync.Once
	err     error
}

func (r *Ring) newPass(buf []float32, op Op) *pass {
	return &pass{r: r, buf: buf, op: op, recvd: newGauge(), sent: newGauge(), abort: make(chan struct{})}
}

// fail records the first error and tears the ring down, which also unblocks the other
// goroutine and tells both neighbours (they see the connections close).
func (p *pass) fail(err error) {
	p.once.Do(func() {
		if p.r.closed.Load() {
			err = ErrClosed
		}
		p.err = err
		close(p.abort)
		p.r.closeConns()
	})
}

// run executes the pass: the sender in a new goroutine, the receiver in this one.
func (p *pass) run(ctx context.Context) error {
	r := p.r
	stop := context.AfterFunc(ctx, func() { p.fail(fmt.Errorf("allreduce: %w", context.Cause(ctx))) })
	senderDone := make(chan struct{})
	go func() {
		defer close(senderDone)
		if err := p.sender(); err != nil {
			p.fail(err)
		}
	}()
	if err := p.receiver(); err != nil {
		p.fail(err)
	}
	<-senderDone
	stop()
	p.once.Do(func() {}) // waits for a cancellation already failing the pass; bars later ones
	if p.err != nil {
		r.broken = p.err
	}
	return p.err
}

func (p *pass) header(from int) frameHeader {
	r := p.r
	c := r.cfg.Codec
	if c == CodecPowerSGD || p.exact { // PowerSGD's factors travel raw, as exact passes do
		c = CodecNone
	}
	return frameHeader{Codec: c, Op: p.op, From: uint16(from), Generation: r.cfg.Generation,
		Seq: r.seq, Total: uint64(len(p.buf))}
}

func (p *pass) sender() error {
	r, n, rank, chunk := p.r, p.r.n, p.r.rank, p.r.cfg.ChunkElems
	s := &r.send
	codec := s.codec
	if p.exact {
		codec = rawCodec{}
	}
	h := p.header(rank)
	var recvBase, logical int64
	for lo := 0; lo < len(p.buf); lo += r.cfg.BucketElems {
		hi := min(lo+r.cfg.BucketElems, len(p.buf))
		if p.readyS != nil && !p.readyS.await(int64(hi), p.abort) {
			return nil
		}
		rb := recvBase
		for step := 0; step < 2*(n-1); step++ {
			a, b := segBounds(lo, hi, sendSeg(rank, step, n), n)
			k := int64(0)
			for off := a; off < b; off += chunk {
				e := min(off+chunk, b)
				if step > 0 && !p.recvd.await(rb+k+1, p.abort) {
					return nil
				}
				payload, err := codec.encode(s.scratch, p.buf[off:e])
				if err != nil {
					return fmt.Errorf("allreduce: encoding frame %d: %w", h.Index, err)
				}
				h.Elems, h.PayloadLen = uint32(e-off), uint32(len(payload))
				h.put(&s.hdr)
				r.next.SetWriteDeadline(time.Now().Add(r.cfg.Timeout))
				s.iov = [2][]byte{s.hdr[:], payload}
				s.vec = s.iov[:]
				if _, err := s.vec.WriteTo(r.next); err != nil {
					return r.peerErr(r.nextRank(), ioCause(err))
				}
				h.Index++
				k++
				r.wire.Add(int64(frameHeaderSize + len(payload)))
				p.sent.raise(int64(h.Index))
				logical += int64(4 * (e - off))
			}
			if step > 0 {
				rb += k
			}
		}
		a, b := segBounds(lo, hi, recvSeg(rank, 2*n-3, n), n)
		recvBase = rb + int64(frames(a, b, chunk))
	}
	if p.logical {
		r.logical.Add(logical)
	}
	return nil
}

func (p *pass) receiver() error {
	r, n, rank, chunk := p.r, p.r.n, p.r.rank, p.r.cfg.ChunkElems
	s := &r.recv
	codec := s.codec
	if p.exact {
		codec = rawCodec{}
	}
	_, isRaw := codec.(rawCodec)
	want := p.header(r.prevRank())
	var done, sendBase int64
	for lo := 0; lo < len(p.buf); lo += r.cfg.BucketElems {
		hi := min(lo+r.cfg.BucketElems, len(p.buf))
		if p.readyR != nil && !p.readyR.await(int64(hi), p.abort) {
			return nil
		}
		sb := sendBase // sender frames before reduce-scatter step t, during all-gather step t
		for step := 0; step < 2*(n-1); step++ {
			a, b := segBounds(lo, hi, recvSeg(rank, step, n), n)
			add := step < n-1
			k := int64(0)
			for off := a; off < b; off += chunk {
				e := min(off+chunk, b)
				dst := p.buf[off:e]
				// The all-gather overwrites the segment that the sender read at the
				// reduce-scatter step of the same number. It has been sent, since the
				// data we are about to receive depends on it; the wait, which in
				// practice never blocks, makes that ordering visible to the memory
				// model (and the race detector), not just to the network.
				if !add && !p.sent.await(sb+k+1, p.abort) {
					return nil
				}
				k++
				want.Elems = uint32(e - off)
				h, err := p.readHeader(&want)
				if err != nil {
					return err
				}
				payload := s.scratch[:h.PayloadLen]
				if isRaw && !add {
					payload = f32bytes(dst)[:h.PayloadLen]
				}
				if _, err := io.ReadFull(r.prev, payload); err != nil {
					return r.peerErr(r.prevRank(), ioCause(err))
				}
				owner := step == n-2 // this rank owns the segment: its sum completes here
				switch {
				case owner && isRaw && p.op == OpAvg && len(payload) == 4*len(dst):
					addScaled(dst, payload, 1/float32(n))
				default:
					if err := codec.decode(dst, payload, add); err != nil {
						return r.peerErr(r.prevRank(), fmt.Errorf("%w: frame %d: %v", ErrProtocol, want.Index, err))
					}
					if owner && p.op == OpAvg {
						scale(dst, 1/float32(n))
					}
				}
				if owner {
					codec.quantize(dst)
				}
				want.Index++
				done++
				p.recvd.raise(done)
			}
			if !add {
				sb += k // the segment of all-gather step t is the one sent at step t
			}
		}
		for step := 0; step < 2*(n-1); step++ {
			a, b := segBounds(lo, hi, sendSeg(rank, step, n), n)
			sendBase += int64(frames(a, b, chunk))
		}
	}
	return nil
}

func (p *pass) readHeader(want *frameHeader) (frameHeader, error) {
	r, s := p.r, &p.r.recv
	r.prev.SetReadDeadline(time.Now().Add(r.cfg.Timeout))
	if _, err := io.ReadFull(r.prev, s.hdr[:]); err != nil {
		return frameHeader{}, r.peerErr(r.prevRank(), ioCause(err))
	}
	h, err := decodeFrameHeader(s.hdr[:])
	if err != nil {
		return h, r.peerErr(r.prevRank(), fmt.Errorf("%w: frame %d: %v", ErrProtocol, want.Index, err))
	}
	if h.Generation != want.Generation {
		return h, r.peerErr(r.prevRank(), fmt.Errorf("%w: frame of generation %d on a ring of generation %d",
			ErrStaleGeneration, h.Generation, want.Generation))
	}
	if m := h.mismatch(want); m != "" {
		return h, r.peerErr(r.prevRank(), fmt.Errorf("%w: frame %d: %s", ErrProtocol, want.Index, m))
	}
	return h, nil
}

// Pending is an all-reduce that has been started and may still be waiting for the
// caller to finish preparing its buffer.
type Pending struct {
	r     *Ring
	ready [2]gauge
	done  chan struct{}
	err   error
}

// Start begins an all-reduce of buf in place. Nothing is read from buf until Ready says
// which prefix is final, so the first buckets can be on the wire while the caller is
// still producing later ones. Every rank must call Start with a buffer of the same
// length and the same op. Wait must follow; until it returns, Start blocks.
//
// Cancelling ctx aborts the operation on every rank (the ring is torn down).
func (r *Ring) Start(ctx context.Context, buf []float32, op Op) (*Pending, error) {
	return r.start(ctx, buf, op, false)
}

func (r *Ring) start(ctx context.Context, buf []float32, op Op, exact bool) (*Pending, error) {
	if op != OpSum && op != OpAvg {
		return nil, fmt.Errorf("allreduce: unknown op %d", op)
	}
	r.mu.Lock()
	switch {
	case r.closed.Load():
		r.mu.Unlock()
		return nil, ErrClosed
	case r.broken != nil:
		r.mu.Unlock()
		return nil, fmt.Errorf("%w: %w", ErrBroken, r.broken)
	case ctx.Err() != nil:
		r.mu.Unlock()
		return nil, fmt.Errorf("allreduce: %w", context.Cause(ctx))
	}
	p := &Pending{r: r, ready: [2]gauge{newGauge(), newGauge()}, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		switch {
		case r.psgd != nil && !exact:
			p.err = r.psgd.allReduce(ctx, r, buf, op, &p.ready[0])
		case r.shm != nil:
			p.err = r.runShm(ctx, buf, op, &p.ready[0])
			r.seq++
		default:
			ps := r.newPass(buf, op)
			ps.logical, ps.readyS, ps.readyR, ps.exact = true, &p.ready[0], &p.ready[1], exact
			p.err = r.runPass(ctx, ps)
		}
		r.ops.Add(1)
	}()
	return p, nil
}

// runPass runs one pass (nothing to do for a single rank) and advances the sequence.
func (r *Ring) runPass(ctx context.Context, p *pass) error {
	if r.n == 1 {
		return nil
	}
	err := p.run(ctx)
	r.seq++
	return err
}

// Ready declares buf[:n] final. Calls must not decrease n.
func (p *Pending) Ready(n int) {
	p.ready[0].raise(int64(n))
	p.ready[1].raise(int64(n))
}

// Wait returns when the operation has finished on this rank. The error wraps one of
// the package's sentinels, and a *PeerError when a neighbour is to blame.
func (p *Pending) Wait() error {
	<-p.done
	p.r.mu.Unlock()
	return p.err
}

// AllReduce reduces buf in place across the ring: afterwards every rank holds the same
// bits, the element-wise sum (or average) in the order documented above.
func (r *Ring) AllReduce(ctx context.Context, buf []float32, op Op) error {
	return r.allReduce(ctx, buf, op, false)
}

// AllReduceExact is AllReduce with codec none whatever the ring's codec: the sums of
// exactly representable values are exact, and values only one rank contributes arrive
// bit for bit. For what must not be rounded: states handed to a new replica, the
// integers and checksums ranks agree on, evaluation outputs.
func (r *Ring) AllReduceExact(ctx context.Context, buf []float32, op Op) error {
	return r.allReduce(ctx, buf, op, true)
}

func (r *Ring) allReduce(ctx context.Context, buf []float32, op Op, exact bool) error {
	p, err := r.start(ctx, buf, op, exact)
	if err != nil {
		return err
	}
	p.Ready(len(buf))
	return p.Wait()
}
