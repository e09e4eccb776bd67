package coordinator

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// The raft transport's handshake, on every connection before raft sees a byte:
//
//	dialer   -> acceptor  magic | nonce_d
//	acceptor -> dialer    nonce_a | HMAC(key, "acceptor" | nonce_d | nonce_a)
//	dialer   -> acceptor  HMAC(key, "dialer" | nonce_d | nonce_a)
//
// key is the cluster secret's raft key. Both nonces are fresh, so a recorded
// handshake proves nothing; each side checks the other's proof before trusting the
// connection, and the acceptor hands it to raft only after the dialer's proof. With
// TLS it runs inside a mutually authenticated session.
var raftMagic = [8]byte{'b', 'n', 'r', 'a', 'f', 't', '0', '1'}

const nonceSize = 32

// errAuth is a peer that does not hold the cluster's raft key.
var errAuth = errors.New("raft transport: the peer does not hold the cluster secret")

func proof(key []byte, role string, nd, na []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(role))
	m.Write(nd)
	m.Write(na)
	return m.Sum(nil)
}

func handshake(c net.Conn, key []byte, tlsConf *tls.Config, dialer bool, deadline time.Time) (net.Conn, error) {
	c.SetDeadline(deadline)
	if tlsConf != nil {
		tc := tlsConf.Clone()
		var t *tls.Conn
		if dialer {
			if tc.ServerName == "" {
				tc.ServerName, _, _ = net.SplitHostPort(c.RemoteAddr().String())
			}
			t = tls.Client(c, tc)
		} else {
			tc.ClientAuth = tls.RequireAndVerifyClientCert
			t = tls.Server(c, tc)
		}
		if err := t.Handshake(); err != nil {
			return nil, fmt.Errorf("raft transport: TLS: %w", err)
		}
		c = t
	}
	var mine [nonceSize]byte
	if _, err := rand.Read(mine[:]); err != nil {
		return nil, err
	}
	if dialer {
		hello := append(raftMagic[:], mine[:]...)
		if _, err := c.Write(hello); err != nil {
			return nil, err
		}
		reply := make([]byte, nonceSize+sha256.Size)
		if _, err := io.ReadFull(c, reply); err != nil {
			return nil, fmt.Errorf("raft transport: handshake: %w", err)
		}
		na := reply[:nonceSize]
		if !hmac.Equal(reply[nonceSize:], proof(key, "acceptor", mine[:], na)) {
			return nil, errAuth
		}
		if _, err := c.Write(proof(key, "dialer", mine[:], na)); err != nil {
			return nil, err
		}
	} else {
		hello := make([]byte, len(raftMagic)+nonceSize)
		if _, err := io.ReadFull(c, hello); err != nil {
			return nil, fmt.Errorf("raft transport: handshake: %w", err)
		}
		if [8]byte(hello[:8]) != raftMagic {
			return nil, fmt.Errorf("raft transport: not a bertnode raft peer (magic %q)", hello[:8])
		}
		nd := hello[8:]
		if _, err := c.Write(append(mine[:], proof(key, "acceptor", nd, mine[:])...)); err != nil {
			return nil, err
		}
		got := make([]byte, sha256.Size)
		if _, err := io.ReadFull(c, got); err != nil {
			return nil, fmt.Errorf("raft transport: handshake: %w", err)
		}
		if !hmac.Equal(got, proof(key, "dialer", nd, mine[:])) {
			return nil, errAuth
		}
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// streamLayer is raft.StreamLayer over TCP with the handshake above. Accepted
// connections are authenticated in their own goroutines, so a slow or hostile peer
// cannot hold up the others.
type streamLayer struct {
	ln        net.Listener
	advertise net.Addr
	key       []byte
	tls       *tls.Config
	timeout   time.Duration
	log       *slog.Logger

	conns     chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once
}

var _ raft.StreamLayer = (*streamLayer)(nil)

func newStreamLayer(bind, advertise string, key []byte, tlsConf *tls.Config, log *slog.Logger) (*streamLayer, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("raft: listen: %w", err)
	}
	adv := ln.Addr()
	if advertise != "" {
		if adv, err = net.ResolveTCPAddr("tcp", advertise); err != nil {
			ln.Close()
			return nil, fmt.Errorf("raft: advertise address: %w", err)
		}
	}
	if a, ok := adv.(*net.TCPAddr); ok && a.IP.IsUnspecified() {
		ln.Close()
		return nil, fmt.Errorf("raft: %s is not an address peers can reach: set the advertise address", adv)
	}
	l := &streamLayer{ln: ln, advertise: adv, key: key, tls: tlsConf, timeout: 10 * time.Second, log: log,
		conns: make(chan net.Conn), closed: make(chan struct{})}
	go l.acceptLoop()
	return l, nil
}

func (l *streamLayer) acceptLoop() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			select {
			case <-l.closed:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		go func() {
			ac, err := handshake(c, l.key, l.tls, false, time.Now().Add(l.timeout))
			if err != nil {
				l.log.Warn("raft connection refused", "from", c.RemoteAddr(), "err", err)
				c.Close()
				return
			}
			select {
			case l.conns <- ac:
			case <-l.closed:
				ac.Close()
			}
		}()
	}
}

func (l *streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *streamLayer) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.closed)
		err = l.ln.Close()
	})
	return err
}

func (l *streamLayer) Addr() net.Addr { return l.advertise }

func (l *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", string(address), timeout)
	if err != nil {
		return nil, err
	}
	ac, err := handshake(c, l.key, l.tls, true, time.Now().Add(max(timeout, time.Second)))
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("raft: dial %s: %w", address, err)
	}
	return ac, nil
}
