package allreduce

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// The handshake on every new connection, dialer (rank r) to acceptor (rank r+1):
//
//	dialer   -> acceptor  hello_d
//	acceptor -> dialer    hello_a, HMAC(secret, "bnr acceptor" | hello_d | hello_a)
//	dialer   -> acceptor  HMAC(secret, "bnr dialer" | hello_d | hello_a)
//
// Each hello carries a fresh nonce, so a recorded handshake cannot be replayed. After
// it both ends hold the same two hellos and apply the same checks (generation, ring
// size, ranks, configuration digest), so they agree on the outcome without another
// message. With TLS the exchange runs inside a mutually authenticated TLS session.
const helloSize = 4 + 1 + 4 + 2 + 2 + 32 + 32

var helloMagic = [4]byte{'b', 'n', 'r', 'h'}

type hello struct {
	gen    uint32
	rank   uint16
	n      uint16
	digest [32]byte
	nonce  [32]byte
}

func (h *hello) marshal() []byte {
	b := make([]byte, helloSize)
	copy(b, helloMagic[:])
	b[4] = frameVersion
	binary.LittleEndian.PutUint32(b[5:], h.gen)
	binary.LittleEndian.PutUint16(b[9:], h.rank)
	binary.LittleEndian.PutUint16(b[11:], h.n)
	copy(b[13:45], h.digest[:])
	copy(b[45:77], h.nonce[:])
	return b
}

func parseHello(b []byte) (hello, error) {
	var h hello
	if [4]byte(b[:4]) != helloMagic || b[4] != frameVersion {
		return h, fmt.Errorf("%w: not a bertnode ring hello (magic %q, version %d)", ErrProtocol, b[:4], b[4])
	}
	h.gen = binary.LittleEndian.Uint32(b[5:])
	h.rank = binary.LittleEndian.Uint16(b[9:])
	h.n = binary.LittleEndian.Uint16(b[11:])
	copy(h.digest[:], b[13:45])
	copy(h.nonce[:], b[45:77])
	return h, nil
}

func transcriptMAC(secret []byte, label string, helloD, helloA []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(label))
	m.Write(helloD)
	m.Write(helloA)
	return m.Sum(nil)
}

// errPeerBehind: the peer is on an older generation. The acceptor drops such a
// connection; the dialer retries, since the peer may still be leaving the old ring.
var errPeerBehind = fmt.Errorf("%w: the peer is on an older generation", ErrStaleGeneration)

// handshake authenticates c and returns it (wrapped in TLS when configured). The
// returned error wraps ErrAuth, ErrStaleGeneration, ErrConfigMismatch, ErrProtocol,
// ErrTimeout, ErrPeerLost or errPeerBehind.
func handshake(ctx context.Context, c net.Conn, cfg *Config, dialer bool) (net.Conn, error) {
	dl := time.Now().Add(cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	c.SetDeadline(dl)
	// Cancelling ctx ends the handshake too: a peer whose listener is open but whose
	// ring is gone (its node left the job) lets the kernel complete the connection and
	// never answers, and the deadline alone held New for the whole Timeout.
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if cfg.TLS != nil {
		tc := cfg.TLS.Clone()
		var t *tls.Conn
		if dialer {
			if tc.ServerName == "" {
				tc.ServerName, _, _ = net.SplitHostPort(cfg.Peers[(cfg.Rank+1)%len(cfg.Peers)])
			}
			t = tls.Client(c, tc)
		} else {
			tc.ClientAuth = tls.RequireAndVerifyClientCert
			t = tls.Server(c, tc)
		}
		if err := t.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("%w: TLS: %v", ErrAuth, err)
		}
		c = t
	}
	n := len(cfg.Peers)
	mine := hello{gen: cfg.Generation, rank: uint16(cfg.Rank), n: uint16(n), digest: cfg.digest()}
	if _, err := rand.Read(mine.nonce[:]); err != nil {
		return nil, err
	}
	my := mine.marshal()
	peerBuf := make([]byte, helloSize+sha256.Size)
	var peer hello
	if dialer {
		if _, err := c.Write(my); err != nil {
			return nil, ioCause(err)
		}
		if _, err := io.ReadFull(c, peerBuf); err != nil {
			return nil, ioCause(err)
		}
		var err error
		if peer, err = parseHello(peerBuf); err != nil {
			return nil, err
		}
		// Our proof goes out even when the acceptor's failed, so that it too learns
		// that the secrets differ rather than seeing the connection drop.
		_, werr := c.Write(transcriptMAC(cfg.Secret, "bnr dialer", my, peerBuf[:helloSize]))
		if !hmac.Equal(peerBuf[helloSize:], transcriptMAC(cfg.Secret, "bnr acceptor", my, peerBuf[:helloSize])) {
			return nil, fmt.Errorf("%w: acceptor's proof of the cluster secret is wrong", ErrAuth)
		}
		if werr != nil {
			return nil, ioCause(werr)
		}
	} else {
		if _, err := io.ReadFull(c, peerBuf[:helloSize]); err != nil {
			return nil, ioCause(err)
		}
		var err error
		if peer, err = parseHello(peerBuf); err != nil {
			return nil, err
		}
		reply := append(my, transcriptMAC(cfg.Secret, "bnr acceptor", peerBuf[:helloSize], my)...)
		if _, err := c.Write(reply); err != nil {
			return nil, ioCause(err)
		}
		if _, err := io.ReadFull(c, peerBuf[helloSize:]); err != nil {
			return nil, ioCause(err)
		}
		if !hmac.Equal(peerBuf[helloSize:], transcriptMAC(cfg.Secret, "bnr dialer", peerBuf[:helloSize], my)) {
			return nil, fmt.Errorf("%w: dialer's proof of the cluster secret is wrong", ErrAuth)
		}
	}
	if err := checkPeer(&mine, &peer, dialer); err != nil {
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

func checkPeer(mine, peer *hello, dialer bool) error {
	switch {
	case peer.gen < mine.gen:
		return fmt.Errorf("%w (%d, ours is %d)", errPeerBehind, peer.gen, mine.gen)
	case peer.gen > mine.gen:
		return fmt.Errorf("%w: we are on generation %d, the peer on %d", ErrStaleGeneration, mine.gen, peer.gen)
	case peer.n != mine.n:
		return fmt.Errorf("%w: peer has %d ranks, we have %d", ErrConfigMismatch, peer.n, mine.n)
	case peer.digest != mine.digest:
		return fmt.Errorf("%w: codec, bucket or chunk size differ", ErrConfigMismatch)
	}
	want := (int(mine.rank) + 1) % int(mine.n)
	if !dialer {
		want = (int(mine.rank) + int(mine.n) - 1) % int(mine.n)
	}
	if int(peer.rank) != want {
		return fmt.Errorf("%w: peer says it is rank %d, want %d", ErrConfigMismatch, peer.rank, want)
	}
	return nil
}

// ioCause maps a connection error to ErrTimeout or ErrPeerLost, keeping the detail.
func ioCause(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: %v", ErrTimeout, err)
	}
	return fmt.Errorf("%w: %v", ErrPeerLost, err)
}
