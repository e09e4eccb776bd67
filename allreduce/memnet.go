package allreduce

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
)

// MemNetwork is an in-memory twin of TCP for rings inside one process: Listen returns a
// Listener and DialContext connects to it with net.Pipe. It has no buffering, so it
// exercises the ring's concurrency harder than loopback TCP does.
type MemNetwork struct {
	mu        sync.Mutex
	listeners map[string]*memListener
}

// Listen registers addr.
func (m *MemNetwork) Listen(addr string) (Listener, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.listeners == nil {
		m.listeners = make(map[string]*memListener)
	}
	if _, ok := m.listeners[addr]; ok {
		return nil, fmt.Errorf("memnet: %s already in use", addr)
	}
	l := &memListener{net: m, addr: memAddr(addr), conns: make(chan net.Conn), closed: make(chan struct{}),
		deadlineChanged: make(chan struct{}, 1)}
	m.listeners[addr] = l
	return l, nil
}

// DialContext connects to a listener registered under addr.
func (m *MemNetwork) DialContext(ctx context.Context, _, addr string) (net.Conn, error) {
	m.mu.Lock()
	l := m.listeners[addr]
	m.mu.Unlock()
	if l == nil {
		return nil, &net.OpError{Op: "dial", Net: "mem", Err: fmt.Errorf("connection refused: %s", addr)}
	}
	ours, theirs := net.Pipe()
	select {
	case l.conns <- theirs:
		return ours, nil
	case <-l.closed:
		return nil, &net.OpError{Op: "dial", Net: "mem", Err: fmt.Errorf("connection refused: %s", addr)}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type memAddr string

func (a memAddr) Network() string { return "mem" }
func (a memAddr) String() string  { return string(a) }

type memListener struct {
	net             *MemNetwork
	addr            memAddr
	conns           chan net.Conn
	closed          chan struct{}
	once            sync.Once
	mu              sync.Mutex
	deadline        time.Time
	deadlineChanged chan struct{}
}

func (l *memListener) Accept() (net.Conn, error) {
	for {
		l.mu.Lock()
		d := l.deadline
		l.mu.Unlock()
		var expired <-chan time.Time
		var timer *time.Timer
		if !d.IsZero() {
			timer = time.NewTimer(time.Until(d))
			expired = timer.C
		}
		var c net.Conn
		var err error
		select {
		case c = <-l.conns:
		case <-l.closed:
			err = net.ErrClosed
		case <-expired:
			err = os.ErrDeadlineExceeded
		case <-l.deadlineChanged:
		}
		if timer != nil {
			timer.Stop()
		}
		if c != nil || err != nil {
			return c, err
		}
	}
}

func (l *memListener) SetDeadline(t time.Time) error {
	l.mu.Lock()
	l.deadline = t
	l.mu.Unlock()
	select {
	case l.deadlineChanged <- struct{}{}:
	default:
	}
	return nil
}

func (l *memListener) Close() error {
	l.once.Do(func() {
		close(l.closed)
		l.net.mu.Lock()
		delete(l.net.listeners, string(l.addr))
		l.net.mu.Unlock()
	})
	return nil
}

func (l *memListener) Addr() net.Addr { return l.addr }
