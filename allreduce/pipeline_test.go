package allreduce

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// TestReadyPipelinesBuckets: buckets go on the wire as soon as Ready covers them, while
// the rest of the buffer still holds garbage (NaN) that must never be read.
func TestReadyPipelinesBuckets(t *testing.T) {
	forTransports(t, testReadyPipelinesBuckets)
}

func testReadyPipelinesBuckets(t *testing.T, shm bool) {
	const n, bucket, buckets = 3, 5000, 4
	rings := tcpRings(t, n, func(c *Config) { c.BucketElems, c.ChunkElems, c.NoSharedMemory = bucket, 700, !shm })
	checkTransport(t, rings, shm)
	moved := func() bool { s := rings[0].Stats(); return s.WireBytes+s.SharedBytes > 0 }
	rng := rand.New(rand.NewPCG(21, 22))
	inputs := make([][]float32, n)
	bufs := make([][]float32, n)
	pend := make([]*Pending, n)
	for i := range bufs {
		inputs[i] = make([]float32, bucket*buckets)
		gradientLike(rng, inputs[i])
		bufs[i] = make([]float32, len(inputs[i]))
		for j := range bufs[i] {
			bufs[i][j] = float32(math.NaN())
		}
		var err error
		if pend[i], err = rings[i].Start(context.Background(), bufs[i], OpSum); err != nil {
			t.Fatal(err)
		}
	}
	for b := 0; b < buckets; b++ {
		for i := range bufs {
			copy(bufs[i][b*bucket:(b+1)*bucket], inputs[i][b*bucket:])
			pend[i].Ready((b + 1) * bucket)
		}
		if b == 0 { // the first bucket travels while the others are not ready
			deadline := time.Now().Add(2 * time.Second)
			for !moved() && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if !moved() {
				t.Fatal("nothing sent after the first bucket was ready")
			}
		}
	}
	for i, p := range pend {
		if err := p.Wait(); err != nil {
			t.Fatalf("rank %d: %v", i, err)
		}
	}
	want := reference(inputs, bucket, OpSum)
	for i := range bufs {
		if j := sameBits(bufs[i], want); j >= 0 {
			t.Fatalf("rank %d value %d = %g, want %g", i, j, bufs[i][j], want[j])
		}
	}
}

// TestCancelAbortsEveryRank: cancelling one rank's context mid-operation returns
// context.Canceled there at once and makes the other ranks fail with a typed error
// within the timeout; the ring then refuses further work with ErrBroken.
func TestCancelAbortsEveryRank(t *testing.T) {
	forTransports(t, testCancelAbortsEveryRank)
}

func testCancelAbortsEveryRank(t *testing.T, shm bool) {
	rings := tcpRings(t, 3, func(c *Config) { c.BucketElems, c.Timeout, c.NoSharedMemory = 1000, time.Second, !shm })
	checkTransport(t, rings, shm)
	ctx, cancel := context.WithCancel(context.Background())
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i, r := range rings {
		wg.Go(func() {
			buf := make([]float32, 10000)
			if i > 0 {
				errs[i] = r.AllReduce(context.Background(), buf, OpSum)
				return
			}
			p, err := r.Start(ctx, buf, OpSum)
			if err != nil {
				errs[i] = err
				return
			}
			p.Ready(3000) // the rest never becomes ready
			errs[i] = p.Wait()
		})
	}
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	cancel()
	wg.Wait()
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("ranks took %v to notice the cancellation", d)
	}
	if !errors.Is(errs[0], context.Canceled) {
		t.Errorf("rank 0: %v, want context.Canceled", errs[0])
	}
	for i := 1; i < 3; i++ {
		if !errors.Is(errs[i], ErrPeerLost) {
			t.Errorf("rank %d: %v, want ErrPeerLost", i, errs[i])
		}
	}
	if err := rings[1].AllReduce(context.Background(), make([]float32, 10), OpSum); !errors.Is(err, ErrBroken) {
		t.Errorf("after a failure: %v, want ErrBroken", err)
	}
}

// TestMemNetwork: the in-memory twin carries the same protocol bit-exactly.
func TestMemNetwork(t *testing.T) {
	var mn MemNetwork
	const n = 4
	lns := make([]Listener, n)
	addrs := make([]string, n)
	for i := range lns {
		addrs[i] = fmt.Sprintf("rank%d", i)
		var err error
		if lns[i], err = mn.Listen(addrs[i]); err != nil {
			t.Fatal(err)
		}
		defer lns[i].Close()
	}
	rings := buildRings(t, lns, addrs, 1, func(c *Config) { c.Dialer, c.Codec, c.ChunkElems = &mn, CodecS2, 999 })
	rng := rand.New(rand.NewPCG(23, 24))
	for _, size := range []int{0, 1, 5, 12345} {
		checkExact(t, rng, rings, size, OpAvg)
	}
}

func TestSingleRank(t *testing.T) {
	r, err := New(context.Background(), Config{Peers: []string{"solo"}})
	if err != nil {
		t.Fatal(err)
	}
	buf := []float32{1, 2, 3}
	if err := r.AllReduce(context.Background(), buf, OpAvg); err != nil || buf[0] != 1 || buf[2] != 3 {
		t.Fatalf("single rank: %v %v", buf, err)
	}
}

// TestLossyCodecsOnRing: bf16 and fp16 leave identical bits on every rank, within
// n * (u + 2^-24) * sum|x_i| of the exact sum (u the format's unit roundoff: each of
// the n-1 hops and the owner's final rounding lose at most u of a partial sum, each
// float32 addition 2^-24), plus n of fp16's subnormal half-steps.
func TestLossyCodecsOnRing(t *testing.T) {
	rng := rand.New(rand.NewPCG(25, 26))
	for _, codec := range []Codec{CodecBF16, CodecFP16} {
		for _, n := range []int{2, 5} {
			rings := tcpRings(t, n, func(c *Config) { c.Codec, c.ChunkElems = codec, 1000 })
			const size = 20011
			inputs := make([][]float32, n)
			bufs := make([][]float32, n)
			for i := range bufs {
				inputs[i] = make([]float32, size)
				gradientLike(rng, inputs[i])
				bufs[i] = append([]float32(nil), inputs[i]...)
			}
			mustReduce(t, rings, bufs, OpSum)
			u := unitRoundoff(codec)
			for j := 0; j < size; j++ {
				var exact, abs float64
				for i := range inputs {
					exact += float64(inputs[i][j])
					abs += math.Abs(float64(inputs[i][j]))
				}
				got := float64(bufs[0][j])
				if bound := float64(n) * ((u+math.Ldexp(1, -24))*abs + subnormalStep(codec)); math.Abs(got-exact) > bound {
					t.Fatalf("%v n=%d value %d: %g, exact %g, beyond bound %g", codec, n, j, got, exact, bound)
				}
				for i := 1; i < n; i++ {
					if math.Float32bits(bufs[i][j]) != math.Float32bits(bufs[0][j]) {
						t.Fatalf("%v n=%d: ranks 0 and %d differ at %d", codec, n, i, j)
					}
				}
			}
		}
	}
}
