package authconn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"sync"
	"time"
)

// DefaultTimeout bounds a handshake (TCP connect, TLS, Exchange) when Config.Timeout
// is zero.
const DefaultTimeout = 10 * time.Second

// label separates Listen and Dial's proofs from other uses of Exchange.
const label = "bertnode/authconn/v1"

// Config is what both ends of a connection need.
type Config struct {
	Key []byte // the shared key, at least 16 bytes: clusterkey.Secret.Derive(purpose)
	// TLS, when set, wraps the connection in TLS before the exchange. The acceptor
	// always requires and verifies a client certificate (mutual TLS); a dialer with no
	// ServerName uses the host it dials.
	TLS     *tls.Config
	Timeout time.Duration // bound on the whole handshake; 0: DefaultTimeout
	Logger  *log.Logger   // where a Listener logs the handshakes it drops; nil: log.Default()
}

func (c Config) check() error {
	if len(c.Key) < 16 {
		return fmt.Errorf("authconn: the key is %d bytes, want at least 16 (clusterkey.Secret.Derive)", len(c.Key))
	}
	return nil
}

func (c Config) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

// Dial connects to addr and authenticates both ends, within ctx and the Timeout.
func (c Config) Dial(ctx context.Context, addr string) (net.Conn, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("authconn: %w", err)
	}
	host, _, _ := net.SplitHostPort(addr)
	conn, err := c.handshake(ctx, raw, Dialer, host)
	if err != nil {
		raw.Close()
		return nil, fmt.Errorf("authconn: handshake with %s: %w", addr, err)
	}
	return conn, nil
}

// handshake runs TLS (when configured) and Exchange on raw within ctx, and returns the
// connection to use: raw, or the TLS connection over it.
func (c Config) handshake(ctx context.Context, raw net.Conn, role Role, serverName string) (net.Conn, error) {
	if dl, ok := ctx.Deadline(); ok {
		raw.SetDeadline(dl)
	}
	// A cancelled ctx unblocks the reads and writes below.
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Unix(1, 0)) })
	conn := raw
	if c.TLS != nil {
		tc := c.TLS.Clone()
		var t *tls.Conn
		if role == Dialer {
			if tc.ServerName == "" {
				tc.ServerName = serverName
			}
			t = tls.Client(raw, tc)
		} else {
			tc.ClientAuth = tls.RequireAndVerifyClientCert
			t = tls.Server(raw, tc)
		}
		if err := t.HandshakeContext(ctx); err != nil {
			stop()
			return nil, fmt.Errorf("%w: TLS: %v", ErrAuth, err)
		}
		conn = t
	}
	_, err := Exchange(conn, c.Key, label, nil, role)
	if !stop() && err == nil {
		err = ctx.Err() // the deadline was moved into the past: the connection is spoilt
	}
	if err != nil {
		return nil, err
	}
	raw.SetDeadline(time.Time{})
	return conn, nil
}

// Listener accepts connections and hands over only those whose peer passed the
// handshake. Handshakes run concurrently, each bounded by the Timeout, so a peer that
// connects and stays silent holds up no one.
type Listener struct {
	cfg    Config
	ln     net.Listener
	logger *log.Logger
	ready  chan net.Conn
	closed chan struct{}

	mu      sync.Mutex
	pending map[net.Conn]struct{} // raw connections still in their handshake
	down    bool
	wg      sync.WaitGroup
}

// Listen listens on addr (host:port, port 0 picks one).
func (c Config) Listen(addr string) (*Listener, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("authconn: %w", err)
	}
	l := &Listener{cfg: c, ln: ln, logger: c.Logger, ready: make(chan net.Conn), closed: make(chan struct{}), pending: map[net.Conn]struct{}{}}
	if l.logger == nil {
		l.logger = log.Default()
	}
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	backoff := 5 * time.Millisecond
	for {
		raw, err := l.ln.Accept()
		if err != nil {
			if l.isClosed() {
				return
			}
			// As net/http does: a failed accept (say, out of file descriptors) is
			// retried after a pause.
			l.logger.Printf("authconn: accept on %s: %v; retrying in %v", l.ln.Addr(), err, backoff)
			select {
			case <-time.After(backoff):
			case <-l.closed:
				return
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		if !l.track(raw) {
			raw.Close()
			return
		}
		l.wg.Add(1)
		go l.serve(raw)
	}
}

func (l *Listener) serve(raw net.Conn) {
	defer l.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.timeout())
	conn, err := l.cfg.handshake(ctx, raw, Acceptor, "")
	cancel()
	l.untrack(raw)
	if err != nil {
		raw.Close()
		if !l.isClosed() {
			l.logger.Printf("authconn: dropped a connection from %s: %v", raw.RemoteAddr(), err)
		}
		return
	}
	select {
	case l.ready <- conn:
	case <-l.closed:
		conn.Close()
	}
}

func (l *Listener) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		return false
	}
	l.pending[c] = struct{}{}
	return true
}

func (l *Listener) untrack(c net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.pending, c)
}

func (l *Listener) isClosed() bool {
	select {
	case <-l.closed:
		return true
	default:
		return false
	}
}

// Accept waits for the next authenticated connection. After Close it returns an
// error wrapping net.ErrClosed.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.closed:
		return nil, fmt.Errorf("authconn: accept on %s: %w", l.ln.Addr(), net.ErrClosed)
	}
}

// Close stops listening and ends the handshakes in progress.
func (l *Listener) Close() error {
	l.mu.Lock()
	if l.down {
		l.mu.Unlock()
		return nil
	}
	l.down = true
	close(l.closed)
	err := l.ln.Close()
	for c := range l.pending {
		c.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// Addr is the address the listener is bound to.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }
