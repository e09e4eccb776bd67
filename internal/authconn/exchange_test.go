package authconn

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
)

type result struct {
	hello []byte
	err   error
}

// exchangePair runs Exchange at both ends of conns (dialer side, acceptor side).
func exchangePair(d, a net.Conn, dKey, aKey []byte, dHello, aHello []byte) (dialer, acceptor result) {
	done := make(chan result)
	go func() {
		h, err := Exchange(a, aKey, "test", aHello, Acceptor)
		if err != nil {
			a.Close() // as a listener drops it
		}
		done <- result{h, err}
	}()
	h, err := Exchange(d, dKey, "test", dHello, Dialer)
	if err != nil {
		d.Close()
	}
	return result{h, err}, <-done
}

func TestExchangeReturnsThePeersHello(t *testing.T) {
	key := newKey(t)
	d, a := net.Pipe()
	defer d.Close()
	defer a.Close()
	rd, ra := exchangePair(d, a, key, key, []byte("dialer's"), []byte("acceptor"))
	if rd.err != nil || ra.err != nil {
		t.Fatalf("dialer: %v, acceptor: %v", rd.err, ra.err)
	}
	if string(rd.hello) != "acceptor" || string(ra.hello) != "dialer's" {
		t.Fatalf("hellos: dialer got %q, acceptor got %q", rd.hello, ra.hello)
	}
}

// A hello altered on the way fails both proofs: the hellos are authenticated.
func TestExchangeDetectsAnAlteredHello(t *testing.T) {
	key := newKey(t)
	d, mitmD := net.Pipe()
	mitmA, a := net.Pipe()
	defer d.Close()
	defer a.Close()
	go func() { // relays acceptor to dialer untouched
		io.Copy(mitmD, mitmA)
		mitmD.Close()
	}()
	go func() { // relays dialer to acceptor, flipping the last byte of the hello
		buf := make([]byte, headerSize+4)
		if _, err := io.ReadFull(mitmD, buf); err == nil {
			buf[len(buf)-1] ^= 1
			mitmA.Write(buf)
			io.Copy(mitmA, mitmD)
		}
		mitmA.Close()
	}()
	rd, ra := exchangePair(d, a, key, key, []byte("gen1"), []byte("gen1"))
	if !errors.Is(rd.err, ErrAuth) || !errors.Is(ra.err, ErrAuth) {
		t.Fatalf("dialer: %v, acceptor: %v; want both ErrAuth", rd.err, ra.err)
	}
}

func TestExchangeLabelsSeparateUses(t *testing.T) {
	key := newKey(t)
	d, a := net.Pipe()
	defer d.Close()
	defer a.Close()
	done := make(chan error)
	go func() { _, err := Exchange(a, key, "raft", nil, Acceptor); a.Close(); done <- err }()
	_, err := Exchange(d, key, "ring", nil, Dialer)
	if !errors.Is(err, ErrAuth) || !errors.Is(<-done, ErrAuth) {
		t.Fatalf("another label: %v", err)
	}
}

// The proof covers every part of the transcript.
func TestProofBindsItsInputs(t *testing.T) {
	key := newKey(t)
	base := proof(key, "l", []byte("d"), []byte("a"), Dialer)
	for name, p := range map[string][]byte{
		"key":   proof(newKey(t), "l", []byte("d"), []byte("a"), Dialer),
		"label": proof(key, "m", []byte("d"), []byte("a"), Dialer),
		"msgD":  proof(key, "l", []byte("e"), []byte("a"), Dialer),
		"msgA":  proof(key, "l", []byte("d"), []byte("b"), Dialer),
		"role":  proof(key, "l", []byte("d"), []byte("a"), Acceptor),
	} {
		if bytes.Equal(p, base) {
			t.Errorf("changing the %s leaves the proof the same", name)
		}
	}
}
