package allreduce

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// The shared region of a ring whose ranks share a host (see README.md, "Shared
// memory"): a header with every rank's progress counters, then per rank `shmDepth`
// slots of n pieces of up to q values each. Rank r's slot holds its inputs for the
// segments others own and, in piece r+1, the sum of the segment it owns.
//
//	0:8 magic | 8 n u32 | 12 q u32 | 16 depth u32 | 32:64 nonce
//	64 failed u32: rank to blame + 1, cause << 16
//	128 + 128r: rank r's counters (written by r): in, red, out, seq, op u32, total u64
//	128 + 128r + 64: rank r's doorbell and sleeping flag (written by the others)
//	pages after the header: slot (p, d) at hdr + (p*depth + d) * n*q*4
const (
	shmMagic    = "bnrshm1\x00"
	shmDepth    = 4       // slots per rank: the next rounds are copied in while one is summed
	shmSlotVals = 1 << 18 // values in one slot (1 MiB): n pieces stay in the L2 cache
	shmMaxBytes = 64 << 20
	shmSpins    = 64 // polls of a counter before sleeping on the futex
)

const (
	causeLost    = 1 // the rank to blame died, gave up or was closed
	causeTimeout = 2 // the rank to blame made no progress for Config.Timeout
)

// shmPiece is the piece size rank 0 chooses for a ring of n ranks and the given
// bucket size; the others read it from the header. It does not change any result.
func shmPiece(n, bucket int) int {
	q := max(1024, shmSlotVals/n)
	q = min(q, shmMaxBytes/(shmDepth*n*n*4), (bucket+n-1)/n)
	return max(q, 1)
}

func shmHeaderSize(n int) int { return (128 + 128*n + 4095) / 4096 * 4096 }

func shmSize(n, q int) int { return shmHeaderSize(n) + n*shmDepth*n*q*4 }

type shmCounters struct {
	in, red, out, seq, op *atomic.Uint32
	total                 *atomic.Uint64
	bell, sleeping        *atomic.Uint32
}

// shmRegion is one rank's view of the region.
type shmRegion struct {
	mem        []byte
	n, rank, q int
	failed     *atomic.Uint32
	ranks      []shmCounters
	slots      [][]float32 // [p*shmDepth + d], n*q values each
	timeout    time.Duration

	peers []string

	mu      sync.Mutex // guards the mapping's lifetime against Close during an operation
	active  bool
	closed  bool
	cur     *shmPass               // the operation in flight, for Close to abort
	rounds  uint32                 // rounds this rank has completed, over all operations
	lost    atomic.Pointer[errBox] // a neighbour's connection broke (seen by the watchers)
	aborted atomic.Pointer[errBox] // this rank's operation failed
}

type errBox struct{ err error }

func u32at(mem []byte, off int) *atomic.Uint32 { return (*atomic.Uint32)(unsafe.Pointer(&mem[off])) }
func u64at(mem []byte, off int) *atomic.Uint64 { return (*atomic.Uint64)(unsafe.Pointer(&mem[off])) }

// initHeader is rank 0's: the layout and the nonce the others check.
func initHeader(mem []byte, n, q int, nonce [32]byte) {
	copy(mem, shmMagic)
	u32at(mem, 8).Store(uint32(n))
	u32at(mem, 12).Store(uint32(q))
	u32at(mem, 16).Store(shmDepth)
	copy(mem[32:64], nonce[:])
}

// checkHeader is the other ranks': the region rank 0 says it made is the one they
// opened (the nonce), with the layout they expect.
func checkHeader(mem []byte, n int, nonce [32]byte) (q int, err error) {
	switch {
	case len(mem) < shmHeaderSize(n) || string(mem[:8]) != shmMagic:
		return 0, fmt.Errorf("not a ring region")
	case [32]byte(mem[32:64]) != nonce:
		return 0, fmt.Errorf("the region's nonce differs from rank 0's")
	case int(u32at(mem, 8).Load()) != n || u32at(mem, 16).Load() != shmDepth:
		return 0, fmt.Errorf("region laid out for %d ranks, depth %d", u32at(mem, 8).Load(), u32at(mem, 16).Load())
	}
	q = int(u32at(mem, 12).Load())
	if q < 1 || shmSize(n, q) != len(mem) {
		return 0, fmt.Errorf("region of %d bytes for pieces of %d values", len(mem), q)
	}
	return q, nil
}

func newShmRegion(mem []byte, peers []string, rank, q int, timeout time.Duration) *shmRegion {
	n := len(peers)
	s := &shmRegion{mem: mem, n: n, rank: rank, q: q, failed: u32at(mem, 64), timeout: timeout, peers: peers}
	for p := range n {
		o := 128 + 128*p
		s.ranks = append(s.ranks, shmCounters{in: u32at(mem, o), red: u32at(mem, o+4), out: u32at(mem, o+8),
			seq: u32at(mem, o+12), op: u32at(mem, o+16), total: u64at(mem, o+24),
			bell: u32at(mem, o+64), sleeping: u32at(mem, o+68)})
	}
	hdr := shmHeaderSize(n)
	for i := range n * shmDepth {
		off := hdr + i*n*q*4
		s.slots = append(s.slots, unsafe.Slice((*float32)(unsafe.Pointer(&mem[off])), n*q))
	}
	return s
}

// acquire pins the mapping for an operation; release unpins it, unmapping it if the
// ring was closed meanwhile.
func (s *shmRegion) acquire(p *shmPass) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active = !s.closed
	if s.active {
		s.cur = p
	}
	return s.active
}

func (s *shmRegion) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active, s.cur = false, nil
	if s.closed && s.mem != nil {
		unmapRegion(s.mem)
		s.mem = nil
	}
}

// close aborts the operation in flight, if any, and unmaps the region now or when
// that operation has stopped.
func (s *shmRegion) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.cur != nil {
		s.cur.fail(ErrClosed)
	}
	if !s.active && s.mem != nil {
		unmapRegion(s.mem)
		s.mem = nil
	}
}

// reached compares counters that wrap around.
func reached(v, target uint32) bool { return int32(v-target) >= 0 }

// publish sets this rank's counter c to v and rings the doorbell of every rank
// asleep waiting for something.
func (s *shmRegion) publish(c *atomic.Uint32, v uint32) {
	c.Store(v)
	for p := range s.ranks {
		if p != s.rank {
			s.ring(p)
		}
	}
}

func (s *shmRegion) ring(p int) {
	if s.ranks[p].sleeping.Load() != 0 {
		s.ranks[p].bell.Add(1)
		futexWake(s.ranks[p].bell)
	}
}

// wakeAll rings every doorbell, sleepers or not: a failure must reach everyone.
func (s *shmRegion) wakeAll() {
	for p := range s.ranks {
		s.ranks[p].bell.Add(1)
		futexWake(s.ranks[p].bell)
	}
}

// lose records that a neighbour's connection broke and wakes this rank if it waits.
// An operation that can still complete (everything it needs is published) does.
func (s *shmRegion) lose(err error) {
	s.lost.CompareAndSwap(nil, &errBox{err})
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mem != nil {
		s.ranks[s.rank].bell.Add(1)
		futexWake(s.ranks[s.rank].bell)
	}
}

// await returns once rank p's counter c reaches target. It polls a few times, then
// sleeps on this rank's doorbell, which every publish rings while it sleeps. It gives
// up when the ring fails (anywhere), when this rank aborts, or after the timeout
// without the counter reaching target.
func (s *shmRegion) await(c *atomic.Uint32, target uint32, p int) error {
	for range shmSpins {
		if reached(c.Load(), target) {
			return nil
		}
	}
	me := &s.ranks[s.rank]
	deadline := time.Now().Add(s.timeout)
	defer me.sleeping.Store(0)
	for {
		me.sleeping.Store(1)
		bell := me.bell.Load()
		if reached(c.Load(), target) {
			return nil
		}
		if err := s.failure(); err != nil {
			return err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return s.blame(p, causeTimeout)
		}
		futexWait(me.bell, bell, left)
	}
}

// blame is the error for rank p's failure as the region shows it.
func (s *shmRegion) blame(p, cause int) error {
	err := fmt.Errorf("%w: rank %d failed or left the operation (shared memory)", ErrPeerLost, p)
	if cause == causeTimeout {
		err = fmt.Errorf("%w: rank %d made no progress in shared memory for %v", ErrTimeout, p, s.timeout)
	}
	return &PeerError{Rank: p, Addr: s.peers[p], Err: err}
}

// failure says whether the operation must stop: this rank aborted, another rank
// flagged a failure in the region, or a neighbour's connection broke.
func (s *shmRegion) failure() error {
	if b := s.aborted.Load(); b != nil {
		return b.err
	}
	if f := s.failed.Load(); f != 0 { // before lost: it names the rank at the origin
		return s.blame(int(f&0xffff)-1, int(f>>16))
	}
	if b := s.lost.Load(); b != nil {
		return b.err
	}
	return nil
}

// flag records a failure in the region for every rank to see, and wakes them.
func (s *shmRegion) flag(blame, cause int) {
	s.failed.CompareAndSwap(0, uint32(blame+1)|uint32(cause)<<16)
	s.wakeAll()
}
