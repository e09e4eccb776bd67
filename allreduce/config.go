package allreduce

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"time"
)

// Defaults, chosen by measurement on loopback (see README.md).
const (
	DefaultTimeout      = 5 * time.Second
	DefaultSetupTimeout = 30 * time.Second
	DefaultBucketElems  = 4 << 20 // 16 MiB of float32
	// 1 MiB of float32 per frame. On loopback TCP, against 256 KiB frames in the same
	// runs (2 and 4 ranks, 16 and 64 MiB, five rounds), it moved 1.03-1.52x the busbw
	// (median 1.22x) on 3-34% less CPU (median 14%): fewer syscalls and hand-offs.
	DefaultChunkElems = 256 << 10

	// MaxRanks bounds the ring; larger rings want a tree or hierarchical scheme anyway.
	MaxRanks = 64
	// maxChunkElems bounds a frame's payload at 64 MiB, so a peer cannot make us
	// allocate more than that no matter what it announces.
	maxChunkElems = 16 << 20
)

// Dialer opens the connection to the next rank. *net.Dialer satisfies it; MemNetwork is
// the in-memory twin.
type Dialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// Listener accepts the connection from the previous rank. It belongs to the caller and
// outlives rings, so that the ring of the next generation can be built on the same
// address; the deadline lets ring setup give up without closing it.
// *net.TCPListener satisfies it.
type Listener interface {
	net.Listener
	SetDeadline(t time.Time) error
}

// Config is one rank's view of a ring: the membership of one generation and the
// parameters every member must agree on (codec, bucket and chunk sizes).
type Config struct {
	Peers      []string // addresses in ring order; Peers[Rank] is this rank's Listener
	Rank       int
	Generation uint32 // bumped each time the membership changes

	// Secret is the cluster secret both ends prove knowledge of in the handshake. It may
	// be empty only when TLS is set.
	Secret []byte
	// TLS, when set, wraps every connection in mutual TLS: it must hold this rank's
	// certificate and the CA pool (RootCAs and ClientCAs) that signs its peers'.
	TLS *tls.Config

	Codec    Codec          // default CodecNone
	PowerSGD PowerSGDParams // used when Codec is CodecPowerSGD

	// Timeout bounds how long a neighbour may go without delivering or accepting a
	// frame (including the time it spends preparing its buckets) before every rank's
	// call fails. Default DefaultTimeout. A frame must cross the link within it: the
	// default frame at the default timeout needs about 2 Mbit/s.
	Timeout time.Duration
	// SetupTimeout bounds New when ctx has no earlier deadline. Default DefaultSetupTimeout.
	SetupTimeout time.Duration
	// BucketElems and ChunkElems set the schedule, and with it the summation order; all
	// ranks must agree. A bucket is reduced as one ring pass; a chunk is one frame.
	BucketElems int
	ChunkElems  int

	// NoSharedMemory keeps a ring whose ranks share a host and network namespace on
	// TCP. Otherwise such a ring with codec none reduces through shared memory (see
	// README.md); one rank setting it is enough.
	NoSharedMemory bool

	Listener Listener
	Dialer   Dialer // default &net.Dialer{}
}

func (c *Config) withDefaults() (Config, error) {
	d := *c
	if d.Timeout <= 0 {
		d.Timeout = DefaultTimeout
	}
	if d.SetupTimeout <= 0 {
		d.SetupTimeout = DefaultSetupTimeout
	}
	if d.BucketElems == 0 {
		d.BucketElems = DefaultBucketElems
	}
	if d.ChunkElems == 0 {
		d.ChunkElems = DefaultChunkElems
	}
	if d.Codec == 0 {
		d.Codec = CodecNone
	}
	if d.Dialer == nil {
		d.Dialer = &net.Dialer{KeepAlive: 15 * time.Second}
	}
	if d.Codec == CodecPowerSGD {
		d.PowerSGD = d.PowerSGD.withDefaults()
	}
	n := len(d.Peers)
	switch {
	case n < 1 || n > MaxRanks:
		return d, fmt.Errorf("allreduce: config: %d peers, want 1 to %d", n, MaxRanks)
	case d.Rank < 0 || d.Rank >= n:
		return d, fmt.Errorf("allreduce: config: rank %d out of range for %d peers", d.Rank, n)
	case d.ChunkElems < 1 || d.ChunkElems > maxChunkElems:
		return d, fmt.Errorf("allreduce: config: ChunkElems %d, want 1 to %d", d.ChunkElems, maxChunkElems)
	case d.BucketElems < 1:
		return d, fmt.Errorf("allreduce: config: BucketElems %d, want > 0", d.BucketElems)
	case !d.Codec.valid():
		return d, fmt.Errorf("allreduce: config: unknown codec %d", d.Codec)
	case n > 1 && d.Listener == nil:
		return d, errors.New("allreduce: config: Listener is required for more than one rank")
	case n > 1 && len(d.Secret) == 0 && d.TLS == nil:
		return d, errors.New("allreduce: config: neither Secret nor TLS set; peers must authenticate")
	}
	if d.Codec == CodecPowerSGD {
		if err := d.PowerSGD.validate(); err != nil {
			return d, err
		}
	}
	return d, nil
}

// digest commits to everything that determines the bits on the wire and the summation
// order, so that the handshake refuses a peer that would silently compute something else.
func (c *Config) digest() [32]byte {
	var b [56]byte
	b[0] = frameVersion
	b[1] = byte(c.Codec)
	binary.LittleEndian.PutUint16(b[2:], uint16(len(c.Peers)))
	binary.LittleEndian.PutUint64(b[4:], uint64(c.BucketElems))
	binary.LittleEndian.PutUint64(b[12:], uint64(c.ChunkElems))
	if c.Codec == CodecPowerSGD {
		binary.LittleEndian.PutUint64(b[20:], uint64(c.PowerSGD.Rank))
		binary.LittleEndian.PutUint64(b[28:], uint64(c.PowerSGD.Cols))
		binary.LittleEndian.PutUint32(b[36:], c.PowerSGD.Seed)
		binary.LittleEndian.PutUint64(b[40:], uint64(c.PowerSGD.StartStep))
		binary.LittleEndian.PutUint64(b[48:], math.Float64bits(c.PowerSGD.MinCompression))
	}
	return sha256.Sum256(b[:])
}
