package allreduce

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"
)

// setupErrors runs New for every config at once and returns the errors (closing any
// ring that was built).
func setupErrors(cfgs []Config) []error {
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	for i, c := range cfgs {
		wg.Go(func() {
			r, err := New(context.Background(), c)
			if r != nil {
				r.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	return errs
}

func pairConfigs(t *testing.T) []Config {
	lns, addrs := listenTCP(t, 2)
	cfgs := make([]Config, 2)
	for i := range cfgs {
		cfgs[i] = Config{Peers: addrs, Rank: i, Generation: 1, Secret: testSecret, Listener: lns[i],
			Timeout: time.Second, SetupTimeout: 1500 * time.Millisecond}
	}
	return cfgs
}

// TestHandshakeRejects: a wrong secret, another generation or a different codec makes
// setup fail on both ends with the matching sentinel, never succeed.
func TestHandshakeRejects(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*Config)
		want [2]error
	}{
		{"wrong secret", func(c *Config) { c.Secret = []byte("not the cluster secret") }, [2]error{ErrAuth, ErrAuth}},
		{"stale generation", func(c *Config) { c.Generation = 0 }, [2]error{ErrStaleGeneration, ErrStaleGeneration}},
		{"other codec", func(c *Config) { c.Codec = CodecS2 }, [2]error{ErrConfigMismatch, ErrConfigMismatch}},
		{"other chunk size", func(c *Config) { c.ChunkElems = 1000 }, [2]error{ErrConfigMismatch, ErrConfigMismatch}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfgs := pairConfigs(t)
			c.edit(&cfgs[1])
			for i, err := range setupErrors(cfgs) {
				var pe *PeerError
				if !errors.Is(err, c.want[i]) || !errors.As(err, &pe) {
					t.Errorf("rank %d: %v, want a PeerError wrapping %v", i, err, c.want[i])
				}
			}
		})
	}
}

// TestCorruptFrames: a peer that passed the handshake and then sends a frame that does
// not fit the schedule (or a payload that does not decode) makes the receiving rank
// fail with ErrProtocol (ErrStaleGeneration for another generation's frame) naming
// that peer, and the rank after it fail too, within the timeout.
func TestCorruptFrames(t *testing.T) {
	good := func(r *Ring, total int) frameHeader {
		return frameHeader{Codec: r.cfg.Codec, Op: OpSum, From: uint16(r.rank), Generation: r.cfg.Generation,
			Total: uint64(total), Elems: uint32(total / 3)}
	}
	for _, c := range []struct {
		name  string
		codec Codec
		frame func(r *Ring, total int) []byte
		want  error
	}{
		{"bad magic", CodecNone, func(r *Ring, total int) []byte {
			return make([]byte, frameHeaderSize)
		}, ErrProtocol},
		{"wrong index", CodecNone, func(r *Ring, total int) []byte {
			h := good(r, total)
			h.Index = 5
			return frameBytes(h, nil)
		}, ErrProtocol},
		{"old generation", CodecNone, func(r *Ring, total int) []byte {
			h := good(r, total)
			h.Generation--
			return frameBytes(h, nil)
		}, ErrStaleGeneration},
		{"wrong buffer length", CodecNone, func(r *Ring, total int) []byte {
			h := good(r, total)
			h.Total++
			return frameBytes(h, nil)
		}, ErrProtocol},
		{"payload over limit", CodecNone, func(r *Ring, total int) []byte {
			h := good(r, total)
			h.PayloadLen = 1 << 31
			return frameBytes(h, nil)
		}, ErrProtocol},
		{"corrupt zstd", CodecZstd, func(r *Ring, total int) []byte {
			h := good(r, total)
			payload := []byte{0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3, 4, 5, 6, 7, 8}
			h.PayloadLen = uint32(len(payload))
			return frameBytes(h, payload)
		}, ErrProtocol},
	} {
		t.Run(c.name, func(t *testing.T) {
			const total = 3000
			rings := tcpRings(t, 3, func(cfg *Config) { cfg.Codec, cfg.Timeout = c.codec, time.Second })
			impostor := rings[2]
			start := time.Now()
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for i := range errs {
				wg.Go(func() {
					buf := make([]float32, total)
					errs[i] = rings[i].AllReduce(context.Background(), buf, OpSum)
				})
			}
			impostor.next.Write(c.frame(impostor, total))
			wg.Wait()
			impostor.Close()
			var pe *PeerError
			if !errors.Is(errs[0], c.want) || !errors.As(errs[0], &pe) || pe.Rank != 2 {
				t.Errorf("rank 0: %v, want %v from rank 2", errs[0], c.want)
			}
			if errs[1] == nil {
				t.Errorf("rank 1 succeeded next to a failed rank")
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("ranks took %v to fail", d)
			}
		})
	}
}

func frameBytes(h frameHeader, payload []byte) []byte {
	var b [frameHeaderSize]byte
	h.put(&b)
	return append(b[:], payload...)
}

// testPKI issues a CA and, per address, a certificate for 127.0.0.1 signed by it.
func testPKI(t *testing.T, n int) []*tls.Config {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bertnode test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	cfgs := make([]*tls.Config, n)
	for i := range cfgs {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: "rank"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		cfgs[i] = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
			RootCAs: pool, ClientCAs: pool, MinVersion: tls.VersionTLS13}
	}
	return cfgs
}

// TestMutualTLS: with certificates and no secret the ring reduces exactly over TLS; a
// rank whose certificate another CA signed is refused with ErrAuth.
func TestMutualTLS(t *testing.T) {
	pki := testPKI(t, 3)
	rings := tcpRings(t, 3, func(c *Config) { c.Secret, c.TLS = nil, pki[c.Rank] })
	checkExact(t, mrand.New(mrand.NewPCG(1, 1)), rings, 70001, OpSum)

	cfgs := pairConfigs(t)
	other := testPKI(t, 1)
	cfgs[0].TLS, cfgs[1].TLS = pki[0], other[0]
	for i, err := range setupErrors(cfgs) {
		if !errors.Is(err, ErrAuth) {
			t.Errorf("rank %d: %v, want ErrAuth", i, err)
		}
	}
}
