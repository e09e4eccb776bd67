package allreduce

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Ring is one rank's end of an all-reduce ring of one generation: a connection to the
// next rank (we send) and one from the previous rank (we receive). Operations run one at
// a time. After any failure the ring is broken for good: build a new one, usually with
// the surviving members and Generation+1, on the same Listener.
type Ring struct {
	cfg        Config
	n, rank    int
	next, prev net.Conn // nil when n == 1

	mu     sync.Mutex // held from Start to Wait: one operation at a time
	seq    uint32
	broken error
	closed atomic.Bool

	send, recv side // per-direction codec state and scratch, owned by one goroutine each
	psgd       *powerSGD

	// shm, when set, is the region the ranks reduce through instead of the
	// connections, which then only watch for the neighbours' failures.
	shm           *shmRegion
	transportNote string // why not shared memory, when it was declined

	ops, logical, wire, shared atomic.Int64
}

// side is what one direction of the ring needs per frame, allocated once per ring.
type side struct {
	codec   wireCodec
	scratch []byte
	hdr     [frameHeaderSize]byte
	iov     [2][]byte   // header and payload, written with one writev
	vec     net.Buffers // kept here so that passing it to the kernel does not allocate
}

// Stats counts what this rank has sent since the ring was built.
type Stats struct {
	Ops          int64
	LogicalBytes int64 // what CodecNone over TCP would have sent for the same operations
	WireBytes    int64 // what was sent on the connections, headers included
	// Transport is "shm" when the ranks reduce through shared memory, else "tcp";
	// TransportNote says why shared memory was declined, if it was.
	Transport     string
	TransportNote string
	SharedBytes   int64 // what this rank wrote into the shared region
}

// Ratio is LogicalBytes / WireBytes, the compression the codec achieved.
func (s Stats) Ratio() float64 {
	if s.WireBytes == 0 { // nothing sent, or all through shared memory
		return 1
	}
	return float64(s.LogicalBytes) / float64(s.WireBytes)
}

// New connects this rank to its neighbours: it dials the next rank, retrying until the
// peer listens, and accepts the previous rank on cfg.Listener, rejecting connections
// that fail the handshake or come from another generation. It gives up when ctx ends
// or after cfg.SetupTimeout.
func New(ctx context.Context, cfg Config) (*Ring, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if !littleEndian {
		return nil, errors.New("allreduce: big-endian hosts are not supported")
	}
	c.Peers = append([]string(nil), c.Peers...)
	r := &Ring{cfg: c, n: len(c.Peers), rank: c.Rank}
	wc := c.Codec
	if wc == CodecPowerSGD {
		r.psgd = newPowerSGD(c.PowerSGD)
		wc = CodecNone // PowerSGD's factors travel raw
	}
	r.send.codec, r.recv.codec = newWireCodec(wc, c.ChunkElems), newWireCodec(wc, c.ChunkElems)
	r.send.scratch = make([]byte, r.send.codec.scratch(c.ChunkElems))
	r.recv.scratch = make([]byte, 4*c.ChunkElems)
	if r.n == 1 {
		return r, nil
	}

	ctx, cancel := context.WithTimeout(ctx, c.SetupTimeout)
	defer cancel()
	type accepted struct {
		conn net.Conn
		err  error
	}
	acc := make(chan accepted, 1)
	go func() {
		conn, err := r.accept(ctx)
		acc <- accepted{conn, err}
	}()
	next, err := r.dial(ctx)
	if err != nil {
		cancel()
	}
	a := <-acc
	if err == nil || a.err != nil && inconclusive(err) {
		err = a.err
	}
	if err != nil {
		for _, conn := range []net.Conn{next, a.conn} {
			if conn != nil {
				conn.Close()
			}
		}
		return nil, err
	}
	r.next, r.prev = next, a.conn
	if err := r.setupShm(ctx); err != nil {
		r.closeConns()
		return nil, err
	}
	return r, nil
}

// inconclusive errors say only that setup did not complete; when the other direction
// found out why (a wrong secret, a stale generation), that is what New reports.
func inconclusive(err error) bool { return errors.Is(err, ErrTimeout) || errors.Is(err, ErrPeerLost) }

func (r *Ring) peerErr(rank int, err error) error {
	return &PeerError{Rank: rank, Addr: r.cfg.Peers[rank], Err: err}
}

func (r *Ring) nextRank() int { return (r.rank + 1) % r.n }
func (r *Ring) prevRank() int { return (r.rank + r.n - 1) % r.n }

func (r *Ring) dial(ctx context.Context) (net.Conn, error) {
	to := r.nextRank()
	backoff := 10 * time.Millisecond
	for {
		c, err := r.cfg.Dialer.DialContext(ctx, "tcp", r.cfg.Peers[to])
		if err == nil {
			var hc net.Conn
			if hc, err = handshake(ctx, c, &r.cfg, true); err == nil {
				return hc, nil
			}
			c.Close()
			if !errors.Is(err, errPeerBehind) && !errors.Is(err, ErrPeerLost) && !errors.Is(err, ErrTimeout) {
				return nil, r.peerErr(to, err)
			}
		}
		select {
		case <-ctx.Done():
			return nil, r.peerErr(to, fmt.Errorf("%w: no ring connection during setup: %v", ErrTimeout, err))
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

func (r *Ring) accept(ctx context.Context) (net.Conn, error) {
	from := r.prevRank()
	ln := r.cfg.Listener
	dl, _ := ctx.Deadline()
	ln.SetDeadline(dl)
	// Ending ctx unblocks Accept. The listener is every generation's: a call started as
	// ctx ended, while a connection came in, must land before this accept returns, not
	// on the next generation's, whose Accept would fail at once.
	unblocked := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		ln.SetDeadline(time.Unix(1, 0))
		close(unblocked)
	})
	defer func() {
		if !stop() {
			<-unblocked
		}
	}()
	var last error // why the latest connection was turned away
	for {
		c, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if ctx.Err() == nil && !(errors.As(err, &ne) && ne.Timeout()) {
				return nil, fmt.Errorf("allreduce: accepting from rank %d: %w", from, err)
			}
			if last == nil {
				last = fmt.Errorf("%w: rank %d did not connect during setup", ErrTimeout, from)
			}
			return nil, r.peerErr(from, last)
		}
		hc, err := handshake(ctx, c, &r.cfg, false)
		if err == nil {
			return hc, nil
		}
		c.Close()
		if errors.Is(err, ErrStaleGeneration) && !errors.Is(err, errPeerBehind) {
			return nil, r.peerErr(from, err) // we are the stale one
		}
		last = err
	}
}

// Stats returns the counters so far.
func (r *Ring) Stats() Stats {
	s := Stats{Ops: r.ops.Load(), LogicalBytes: r.logical.Load(), WireBytes: r.wire.Load(), Transport: "tcp",
		TransportNote: r.transportNote, SharedBytes: r.shared.Load()}
	if r.shm != nil {
		s.Transport = "shm"
	}
	return s
}

// Size and Rank describe the membership.
func (r *Ring) Size() int { return r.n }
func (r *Ring) Rank() int { return r.rank }

// Generation is the generation the ring was built for.
func (r *Ring) Generation() uint32 { return r.cfg.Generation }

// Rebuild closes r and builds the ring of the next generation (Generation+1) for a new
// membership, typically the survivors of a failure, with the same listener, secret,
// codec and schedule. Every member must call it with the same peers. A coordinator that
// numbers generations itself uses New.
func (r *Ring) Rebuild(ctx context.Context, peers []string, rank int) (*Ring, error) {
	r.Close()
	cfg := r.cfg
	cfg.Peers, cfg.Rank, cfg.Generation = peers, rank, r.cfg.Generation+1
	return New(ctx, cfg)
}

// Close tears the ring down; an operation in flight fails with ErrClosed. It does not
// close the Listener.
func (r *Ring) Close() error {
	r.closed.Store(true)
	if r.shm != nil {
		r.shm.close()
	}
	r.closeConns()
	return nil
}

func (r *Ring) closeConns() {
	for _, c := range []net.Conn{r.next, r.prev} {
		if c != nil {
			c.Close()
		}
	}
}
