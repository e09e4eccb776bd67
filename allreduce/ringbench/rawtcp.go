package ringbench

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"
)

// rawTCPRow names the baseline's rows.
const rawTCPRow = "raw-tcp"

// rawRing is the baseline Options.RawTCP measures: plain TCP connections in the ring's
// shape (each rank sends to the next and receives from the previous, at once), carrying
// as many bytes as codec none puts on the wire, without the all-reduce's framing,
// schedule or arithmetic: what the links and the machine allow a ring right now. Like
// the ring, it sends from and receives into memory the size of the buffer reduced; from
// a 1 MiB buffer, which stays in the cache, loopback TCP ran up to 1.22x faster.
type rawRing struct {
	next, prev net.Conn
	timeout    time.Duration
	span       []byte // as large as the buffer reduced
}

// rawWrite is the bytes a rawRing hands the kernel or asks of it at once.
const rawWrite = 1 << 20

var rawHello = [4]byte{'b', 'n', 'r', 't'}

// newRawRing dials the next rank and accepts the previous one, which says who it is.
func newRawRing(ctx context.Context, peers []string, rank int, ln *net.TCPListener, timeout time.Duration) (*rawRing, error) {
	n := len(peers)
	r := &rawRing{timeout: timeout}
	dialed := make(chan error, 1)
	go func() {
		c, err := (&net.Dialer{Timeout: timeout}).DialContext(ctx, "tcp", peers[(rank+1)%n])
		if err == nil {
			hello := append(rawHello[:], 0, 0)
			binary.LittleEndian.PutUint16(hello[4:], uint16(rank))
			_, err = c.Write(hello)
			r.next = c
		}
		dialed <- err
	}()
	ln.SetDeadline(time.Now().Add(timeout))
	for r.prev == nil {
		c, err := ln.Accept()
		if err != nil {
			return nil, fmt.Errorf("raw tcp: accepting rank %d: %w", (rank+n-1)%n, err)
		}
		var hello [6]byte
		c.SetReadDeadline(time.Now().Add(timeout))
		if _, err := io.ReadFull(c, hello[:]); err != nil || [4]byte(hello[:4]) != rawHello ||
			int(binary.LittleEndian.Uint16(hello[4:])) != (rank+n-1)%n {
			c.Close() // not the previous rank
			continue
		}
		r.prev = c
	}
	if err := <-dialed; err != nil {
		r.close()
		return nil, fmt.Errorf("raw tcp: dialling rank %d: %w", (rank+1)%n, err)
	}
	return r, nil
}

// transfer sends n bytes to the next rank while receiving n from the previous, the
// sender walking the first half of a span of size bytes, the receiver the second (each
// wraps within its half): as much memory as the ring's buffer, and no byte that one
// side reads while the other writes it.
func (r *rawRing) transfer(n int64, size int) error {
	if len(r.span) != size {
		r.span = make([]byte, size)
	}
	at := func(half []byte, off int64, left int64) []byte {
		off %= int64(len(half))
		return half[off : off+min(left, rawWrite, int64(len(half))-off)]
	}
	out, in := r.span[:size/2], r.span[size/2:]
	sent := make(chan error, 1)
	go func() {
		for left := n; left > 0; {
			b := at(out, n-left, left)
			r.next.SetWriteDeadline(time.Now().Add(r.timeout))
			if _, err := r.next.Write(b); err != nil {
				sent <- fmt.Errorf("raw tcp: send: %w", err)
				return
			}
			left -= int64(len(b))
		}
		sent <- nil
	}()
	for left := n; left > 0; {
		b := at(in, n-left, left)
		r.prev.SetReadDeadline(time.Now().Add(r.timeout))
		if _, err := io.ReadFull(r.prev, b); err != nil {
			r.close() // unblocks the sender
			<-sent
			return fmt.Errorf("raw tcp: receive: %w", err)
		}
		left -= int64(len(b))
	}
	return <-sent
}

func (r *rawRing) close() {
	for _, c := range []net.Conn{r.next, r.prev} {
		if c != nil {
			c.Close()
		}
	}
}
