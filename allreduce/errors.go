package allreduce

import (
	"errors"
	"fmt"
)

// Sentinel causes. Every error returned by a Ring wraps exactly one of them, so callers
// decide with errors.Is whether to retry, rebuild the ring or give up.
var (
	// ErrPeerLost: a neighbour closed or reset its connection (it died or gave up).
	ErrPeerLost = errors.New("allreduce: peer lost")
	// ErrTimeout: a neighbour sent or accepted nothing for Config.Timeout.
	ErrTimeout = errors.New("allreduce: peer timed out")
	// ErrProtocol: a neighbour sent a frame that does not match the agreed schedule.
	ErrProtocol = errors.New("allreduce: protocol violation")
	// ErrAuth: the peer failed the handshake (wrong secret or certificate).
	ErrAuth = errors.New("allreduce: authentication failed")
	// ErrStaleGeneration: the peer belongs to an older ring generation, or we do.
	ErrStaleGeneration = errors.New("allreduce: stale generation")
	// ErrConfigMismatch: the peer agreed on a different ring size, codec or schedule.
	ErrConfigMismatch = errors.New("allreduce: configuration mismatch")
	// ErrBroken: an earlier operation failed; the ring must be rebuilt.
	ErrBroken = errors.New("allreduce: ring broken by an earlier failure")
	// ErrClosed: Close was called.
	ErrClosed = errors.New("allreduce: ring closed")
)

// PeerError says which neighbour an error came from. Err wraps one of the sentinels
// above, so errors.Is(err, ErrTimeout) and the like work on what a Ring returns.
type PeerError struct {
	Rank int    // the neighbour's rank
	Addr string // the neighbour's address
	Err  error
}

func (e *PeerError) Error() string {
	return fmt.Sprintf("%v (rank %d at %s)", e.Err, e.Rank, e.Addr)
}

func (e *PeerError) Unwrap() error { return e.Err }
