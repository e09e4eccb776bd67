package allreduce

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bertnode/bertnode/internal/netlab"
)

// shmRings builds a ring of n ranks in this process that reduces through shared memory
// (each rank maps the region on its own, as separate processes do), and checks it does.
func shmRings(t testing.TB, n int, mod func(*Config)) []*Ring {
	t.Helper()
	rings := tcpRings(t, n, func(c *Config) {
		c.NoSharedMemory = false
		if mod != nil {
			mod(c)
		}
	})
	for i, r := range rings {
		if s := r.Stats(); s.Transport != "shm" {
			t.Fatalf("rank %d: transport %s (%s), want shm", i, s.Transport, s.TransportNote)
		}
	}
	return rings
}

// TestShmSameBitsAsTCP: through shared memory every rank ends with exactly the bits of
// the documented summation order, and of a TCP ring with the same schedule on the same
// inputs, for n = 2 to 5, odd sizes, several buckets and several rounds per bucket.
func TestShmSameBitsAsTCP(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for tc := 0; tc < 10; tc++ {
		n := 2 + tc%4
		bucket, chunk := 1+rng.IntN(20000), 1+rng.IntN(700)
		if tc%5 == 0 {
			bucket, chunk = DefaultBucketElems, DefaultChunkElems
		}
		op := []Op{OpSum, OpAvg}[tc%2]
		t.Run(fmt.Sprintf("n%d_b%d_c%d_%v", n, bucket, chunk, op), func(t *testing.T) {
			mod := func(c *Config) { c.BucketElems, c.ChunkElems = bucket, chunk }
			shm, tcp := shmRings(t, n, mod), tcpRings(t, n, mod)
			for _, size := range []int{0, 1, n - 1, 7, 3*n + 1, 10007, 50000 + rng.IntN(50000), 3*bucket + 17} {
				if size > 1<<20 {
					continue
				}
				inputs := make([][]float32, n)
				viaShm, viaTCP := make([][]float32, n), make([][]float32, n)
				for i := range inputs {
					inputs[i] = make([]float32, size)
					gradientLike(rng, inputs[i])
					viaShm[i] = append([]float32(nil), inputs[i]...)
					viaTCP[i] = append([]float32(nil), inputs[i]...)
				}
				mustReduce(t, shm, viaShm, op)
				mustReduce(t, tcp, viaTCP, op)
				want := reference(inputs, bucket, op)
				for r := range n {
					if i := sameBits(viaShm[r], want); i >= 0 {
						t.Fatalf("size %d: rank %d value %d = %g, reference %g", size, r, i, viaShm[r][i], want[i])
					}
					if i := sameBits(viaShm[r], viaTCP[r]); i >= 0 {
						t.Fatalf("size %d: rank %d value %d = %g, TCP %g", size, r, i, viaShm[r][i], viaTCP[r][i])
					}
				}
			}
			if s := shm[0].Stats(); s.WireBytes != 0 || s.SharedBytes == 0 || s.LogicalBytes != tcp[0].Stats().LogicalBytes {
				t.Errorf("stats %+v, TCP's %+v: want no wire bytes, shared bytes, the same logical bytes", s, tcp[0].Stats())
			}
		})
	}
}

// TestShmDeclined: a ring uses TCP, and says why, when one rank turns shared memory
// off, for the compressing codecs, and when its ranks are in different network
// namespaces although in one process on one host (a partition must not be bypassed);
// ranks in one namespace other than the test's do use it.
func TestShmDeclined(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	t.Run("turned off on one rank", func(t *testing.T) {
		rings := tcpRings(t, 3, func(c *Config) { c.NoSharedMemory = c.Rank == 1 })
		checkTransport(t, rings, false)
		for i, r := range rings {
			if note := r.Stats().TransportNote; !strings.Contains(note, "rank 1 turned off") {
				t.Errorf("rank %d: note %q, want it to name rank 1", i, note)
			}
		}
		checkExact(t, rng, rings, 10007, OpAvg)
	})
	t.Run("codec s2", func(t *testing.T) {
		rings := tcpRings(t, 2, func(c *Config) { c.NoSharedMemory, c.Codec = false, CodecS2 })
		checkTransport(t, rings, false)
		checkExact(t, rng, rings, 10007, OpAvg)
	})
	for _, c := range []struct {
		name    string
		hostOf  []int // rank i lives in namespace hostOf[i]
		shm     bool
		explain string
	}{
		{"other network namespaces", []int{0, 1, 1}, false, "in another network namespace"},
		{"one network namespace", []int{0, 0, 0}, true, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			hosts := labHosts(t, 2)
			n := len(c.hostOf)
			lns, addrs := make([]Listener, n), make([]string, n)
			for i, h := range c.hostOf {
				err := hosts[h].Do(func() error {
					ln, err := net.Listen("tcp", net.JoinHostPort(hosts[h].IP().String(), "0"))
					if err == nil {
						t.Cleanup(func() { ln.Close() })
						lns[i], addrs[i] = ln.(*net.TCPListener), ln.Addr().String()
					}
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			rings := buildRings(t, lns, addrs, 1, func(cfg *Config) {
				cfg.NoSharedMemory, cfg.Dialer = false, nsDialer{hosts[c.hostOf[cfg.Rank]]}
			})
			checkTransport(t, rings, c.shm)
			for i, r := range rings {
				if note := r.Stats().TransportNote; !strings.Contains(note, c.explain) || (c.explain == "") != (note == "") {
					t.Errorf("rank %d: note %q, want %q", i, note, c.explain)
				}
			}
			checkExact(t, rng, rings, 10007, OpSum)
		})
	}
}

// labHosts makes k network namespaces on one bridge; it skips the test without root.
func labHosts(t *testing.T, k int) []*netlab.Host {
	t.Helper()
	if err := netlab.Available(); err != nil {
		t.Skip(err)
	}
	lab, err := netlab.New("shm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lab.Close() })
	hosts := make([]*netlab.Host, k)
	for i := range hosts {
		if hosts[i], err = lab.AddHost(fmt.Sprintf("h%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	return hosts
}

// nsDialer dials from a host's namespace.
type nsDialer struct{ h *netlab.Host }

func (d nsDialer) DialContext(ctx context.Context, network, addr string) (c net.Conn, err error) {
	err = d.h.Do(func() error {
		c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// TestShmCloseMidOperation: Close on rank 1 while it waits for a Ready that never comes
// ends its operation with ErrClosed, and the others', waiting for rank 1 or for their
// own callers, with ErrPeerLost naming rank 1, well within the timeout; nothing stays
// mapped.
func TestShmCloseMidOperation(t *testing.T) {
	before := regionsMapped(t)
	rings := shmRings(t, 3, func(c *Config) { c.BucketElems, c.Timeout = 1000, 10*time.Second })
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i, r := range rings {
		wg.Go(func() {
			p, err := r.Start(context.Background(), make([]float32, 10000), OpSum)
			if err != nil {
				errs[i] = err
				return
			}
			p.Ready([]int{10000, 3000, 5000}[i]) // rank 2 waits for its caller too
			errs[i] = p.Wait()
		})
	}
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	rings[1].Close()
	wg.Wait()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("ranks took %v to stop", d)
	}
	if !errors.Is(errs[1], ErrClosed) {
		t.Errorf("rank 1: %v, want ErrClosed", errs[1])
	}
	for _, i := range []int{0, 2} {
		var pe *PeerError
		if !errors.Is(errs[i], ErrPeerLost) || !errors.As(errs[i], &pe) || pe.Rank != 1 {
			t.Errorf("rank %d: %v, want ErrPeerLost naming rank 1", i, errs[i])
		}
	}
	for _, r := range rings {
		r.Close()
	}
	if after := regionsMapped(t); after != before {
		t.Errorf("%d regions mapped after Close, %d before", after, before)
	}
}

// TestShmNoLeftovers: the region has no name anywhere (nothing in /dev/shm), and once
// New returns no process holds a file descriptor of it: when the ranks unmap it, or
// die, it is gone.
func TestShmNoLeftovers(t *testing.T) {
	shmFiles := func() int {
		ents, _ := os.ReadDir("/dev/shm")
		return len(ents)
	}
	files := shmFiles()
	rings := shmRings(t, 4, nil)
	if f := shmFiles(); f != files {
		t.Errorf("/dev/shm has %d entries, had %d", f, files)
	}
	fds, _ := os.ReadDir("/proc/self/fd")
	for _, fd := range fds {
		if l, _ := os.Readlink("/proc/self/fd/" + fd.Name()); strings.Contains(l, "bertnode-ring") {
			t.Errorf("fd %s still open on %s", fd.Name(), l)
		}
	}
	if m := regionsMapped(t); m < 4 {
		t.Errorf("%d mappings of the region, want one per rank", m)
	}
	checkExact(t, rand.New(rand.NewPCG(9, 10)), rings, 5000, OpAvg)
}

// regionsMapped counts this process's mappings of ring regions.
func regionsMapped(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Skip(err)
	}
	return strings.Count(string(b), "memfd:bertnode-ring")
}

// TestShmAcrossProcesses: a ring of three ranks in this process and one in another,
// all through one region, over several buckets: every rank's bits equal the reference,
// and the child's own result, which it prints, matches it too.
func TestShmAcrossProcesses(t *testing.T) {
	const n, size = 4, DefaultBucketElems + 12345
	inputs := make([][]float32, n)
	for i := range inputs {
		inputs[i] = make([]float32, size)
		fill(inputs[i], i)
	}
	// Everything is prepared before the child starts and checked after the operations,
	// which run back to back: the child waits for the next one only faultTimeout.
	results := make([][][]float32, 3)
	for op := range results {
		results[op] = make([][]float32, n-1)
		for i := range results[op] {
			results[op][i] = append([]float32(nil), inputs[i]...)
		}
	}
	lns, addrs := listenTCP(t, n)
	cmd, out := startHelper(t, lns[n-1], addrs, n-1, 1, size, true)
	rings := buildRings(t, lns[:n-1], addrs, 1, func(c *Config) { c.Timeout, c.NoSharedMemory = faultTimeout, false })
	checkTransport(t, rings, true)
	for _, bufs := range results {
		mustReduce(t, rings, bufs, OpSum)
	}
	want := reference(inputs, DefaultBucketElems, OpSum)
	for op, bufs := range results {
		for r := range bufs {
			if i := sameBits(bufs[r], want); i >= 0 {
				t.Fatalf("op %d: rank %d value %d = %g, want %g", op, r, i, bufs[r][i], want[i])
			}
		}
		if !out.Scan() || out.Text() != fmt.Sprintf("op %d %08x", op, checksum(want)) {
			t.Fatalf("child after op %d: %q, want checksum %08x", op, out.Text(), checksum(want))
		}
	}
	cmd.Process.Kill()
}
