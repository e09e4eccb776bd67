package ringbench

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"
)

// TestRawRingTransfer runs two raw ranks over loopback: a transfer of half the span
// carries the sender's first half into the receiver's second, and one of several spans
// wraps around it and still moves every byte.
func TestRawRingTransfer(t *testing.T) {
	const size = 3<<20 + 8 // not a multiple of the write size
	var lns [2]*net.TCPListener
	peers := make([]string, 2)
	for i := range lns {
		ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		lns[i], peers[i] = ln, ln.Addr().String()
	}
	var rings [2]*rawRing
	errs := make(chan error, 2)
	for i := range rings {
		go func() {
			var err error
			rings[i], err = newRawRing(context.Background(), peers, i, lns[i], 10*time.Second)
			errs <- err
		}()
	}
	for range rings {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		for _, r := range rings {
			r.close()
		}
	}()
	transfer := func(n int64) {
		t.Helper()
		for _, r := range rings {
			go func() { errs <- r.transfer(n, size) }()
		}
		for range rings {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	}
	transfer(1) // makes the spans
	for i, r := range rings {
		for k := range r.span {
			r.span[k] = byte(k*7 + i)
		}
	}
	sent := [2][]byte{bytes.Clone(rings[0].span[:size/2]), bytes.Clone(rings[1].span[:size/2])}
	transfer(size / 2)
	for i, r := range rings {
		if got := r.span[size/2:]; !bytes.Equal(got, sent[1-i]) {
			t.Errorf("rank %d's second half is not rank %d's first", i, 1-i)
		}
	}
	transfer(3*size + 5)
}
