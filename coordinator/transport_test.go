package coordinator

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestRaftTransportHandshake: connections between holders of the same key go
// through; with another key the dialer fails and the acceptor never hands the
// connection to raft, nor one from a stranger speaking another protocol.
func TestRaftTransportHandshake(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	key := []byte("0123456789abcdef0123456789abcdef")
	l, err := newStreamLayer("127.0.0.1:0", "", key, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	good, err := newStreamLayer("127.0.0.1:0", "", key, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	c, err := good.Dial(raft.ServerAddress(l.Addr().String()), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("raft bytes"))
	select {
	case ac := <-accepted:
		buf := make([]byte, 10)
		if _, err := io.ReadFull(ac, buf); err != nil || string(buf) != "raft bytes" {
			t.Fatalf("accepted connection reads %q, %v", buf, err)
		}
		ac.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("the right key's connection was not accepted")
	}
	c.Close()

	bad, err := newStreamLayer("127.0.0.1:0", "", []byte("another key, another cluster...."), nil, log)
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if _, err := bad.Dial(raft.ServerAddress(l.Addr().String()), time.Second); !errors.Is(err, errAuth) {
		t.Fatalf("dial with a wrong key: %v, want %v", err, errAuth)
	}
	stranger, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	stranger.Write(append([]byte{0, 1, 2}, make([]byte, 100)...)) // raft's own RPC framing, no handshake
	if n, err := stranger.Read(make([]byte, 1)); err == nil {
		t.Fatalf("a stranger got %d bytes back", n)
	}
	stranger.Close()
	select {
	case ac := <-accepted:
		t.Fatalf("a connection without the key reached raft: %v", ac.RemoteAddr())
	case <-time.After(300 * time.Millisecond):
	}
}
