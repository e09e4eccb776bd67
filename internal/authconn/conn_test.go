package authconn

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/bertnode/bertnode/internal/clusterkey"
	"github.com/bertnode/bertnode/internal/syncbuf"
)

func newKey(t *testing.T) []byte {
	t.Helper()
	s, err := clusterkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return s.Derive(clusterkey.Raft)
}

// waitLog waits for the listener's log to contain want.
func waitLog(t *testing.T, logs *syncbuf.Buffer, want string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(logs.String(), want); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the listener never logged %q; its log:\n%s", want, logs)
		}
	}
}

func listen(t *testing.T, c Config) (*Listener, *syncbuf.Buffer) {
	t.Helper()
	logs := &syncbuf.Buffer{}
	c.Logger = log.New(logs, "", 0)
	l, err := c.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, logs
}

// acceptOne accepts one connection in the background.
func acceptOne(l *Listener) <-chan net.Conn {
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(ch)
			return
		}
		ch <- c
	}()
	return ch
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// echoCheck sends msg each way over the pair and checks it arrives.
func echoCheck(t *testing.T, a, b net.Conn) {
	t.Helper()
	for _, p := range [][2]net.Conn{{a, b}, {b, a}} {
		msg := []byte("hello from " + p[0].LocalAddr().String())
		go p[0].Write(msg)
		got := make([]byte, len(msg))
		p[1].SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.ReadFull(p[1], got); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("read %q, %v; want %q", got, err, msg)
		}
	}
}

// connect dials l and returns both ends, after checking that bytes flow both ways.
func connect(t *testing.T, l *Listener, key []byte, tlsCfg *tls.Config) (dialed, accepted net.Conn) {
	t.Helper()
	ch := acceptOne(l)
	c, err := Config{Key: key, TLS: tlsCfg}.Dial(testCtx(t), l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s := <-ch
	if s == nil {
		t.Fatal("Accept failed")
	}
	t.Cleanup(func() { s.Close() })
	echoCheck(t, c, s)
	return c, s
}

func TestGoodKeyConnects(t *testing.T) {
	key := newKey(t)
	l, logs := listen(t, Config{Key: key})
	connect(t, l, key, nil)
	if logs.String() != "" {
		t.Errorf("the listener logged: %s", logs)
	}
}

func TestWrongKeyRefusedOnBothSides(t *testing.T) {
	l, logs := listen(t, Config{Key: newKey(t)})
	accepted := acceptOne(l)
	_, err := Config{Key: newKey(t)}.Dial(testCtx(t), l.Addr().String())
	if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "acceptor's proof") {
		t.Fatalf("dial with another key: %v", err)
	}
	waitLog(t, logs, "the dialer's proof of the key is wrong")
	select {
	case c := <-accepted:
		t.Fatalf("Accept returned %v for a peer with another key", c.RemoteAddr())
	case <-time.After(200 * time.Millisecond):
	}
}

// A client that connects and says nothing is dropped after the Timeout, and a good
// client connecting meanwhile is not held up by it.
func TestSilentClientDroppedWithoutBlockingOthers(t *testing.T) {
	key := newKey(t)
	const timeout = 3 * time.Second
	l, logs := listen(t, Config{Key: key, Timeout: timeout})
	// Before the dial: the listener may take the connection, and start its deadline,
	// before Dial returns here.
	start := time.Now()
	silent, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	accepted := acceptOne(l)
	c, err := Config{Key: key}.Dial(testCtx(t), l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if s := <-accepted; s == nil {
		t.Fatal("Accept failed")
	} else {
		s.Close()
	}
	if d := time.Since(start); d >= timeout {
		t.Fatalf("the good client waited %v, past the silent one's deadline", d)
	}

	silent.SetReadDeadline(time.Now().Add(30 * time.Second))
	if n, err := silent.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("the silent client read %d bytes, %v; want EOF (dropped)", n, err)
	}
	if d := time.Since(start); d < timeout {
		t.Fatalf("dropped after %v, before the %v timeout", d, timeout)
	}
	waitLog(t, logs, "i/o timeout")
}

func TestNotAHandshake(t *testing.T) {
	l, logs := listen(t, Config{Key: newKey(t)})
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	waitLog(t, logs, ErrProtocol.Error())
}

func TestCloseEndsHandshakesAndAccept(t *testing.T) {
	l, _ := listen(t, Config{Key: newKey(t)})
	silent, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	accepted := acceptOne(l)
	time.Sleep(50 * time.Millisecond) // let the silent connection's handshake start
	start := time.Now()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close took %v: it waited for the handshake's timeout", d)
	}
	if c, ok := <-accepted; ok {
		t.Fatalf("Accept after Close returned %v", c)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
}

func TestShortKeyRefused(t *testing.T) {
	if _, err := (Config{Key: []byte("short")}).Listen("127.0.0.1:0"); err == nil || !strings.Contains(err.Error(), "5 bytes") {
		t.Fatalf("Listen: %v", err)
	}
	if _, err := (Config{}).Dial(context.Background(), "127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "0 bytes") {
		t.Fatalf("Dial: %v", err)
	}
}
