package allreduce

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"testing"
	"time"
)

var testSecret = []byte("0123456789abcdef-test-secret")

// listenTCP opens n loopback listeners.
func listenTCP(t testing.TB, n int) ([]Listener, []string) {
	t.Helper()
	lns := make([]Listener, n)
	addrs := make([]string, n)
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		lns[i], addrs[i] = ln.(*net.TCPListener), ln.Addr().String()
	}
	return lns, addrs
}

// buildRings builds one ring per listener concurrently, mod adjusting each config. The
// rings use TCP unless mod turns shared memory back on.
func buildRings(t testing.TB, lns []Listener, addrs []string, gen uint32, mod func(*Config)) []*Ring {
	t.Helper()
	rings := make([]*Ring, len(lns))
	errs := make([]error, len(lns))
	var wg sync.WaitGroup
	for i := range lns {
		cfg := Config{Peers: addrs, Rank: i, Generation: gen, Secret: testSecret, Listener: lns[i],
			Timeout: 2 * time.Second, SetupTimeout: 5 * time.Second, Codec: CodecNone, NoSharedMemory: true}
		if mod != nil {
			mod(&cfg)
		}
		wg.Go(func() { rings[i], errs[i] = New(context.Background(), cfg) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: New: %v", i, err)
		}
	}
	t.Cleanup(func() {
		for _, r := range rings {
			r.Close()
		}
	})
	return rings
}

func tcpRings(t testing.TB, n int, mod func(*Config)) []*Ring {
	lns, addrs := listenTCP(t, n)
	return buildRings(t, lns, addrs, 1, mod)
}

// reduceAll runs AllReduce on every rank at once and returns the errors.
func reduceAll(rings []*Ring, bufs [][]float32, op Op) []error {
	errs := make([]error, len(rings))
	var wg sync.WaitGroup
	for i, r := range rings {
		wg.Go(func() { errs[i] = r.AllReduce(context.Background(), bufs[i], op) })
	}
	wg.Wait()
	return errs
}

func mustReduce(t testing.TB, rings []*Ring, bufs [][]float32, op Op) {
	t.Helper()
	for i, err := range reduceAll(rings, bufs, op) {
		if err != nil {
			t.Fatalf("rank %d: %v", i, err)
		}
	}
}

// reference computes the documented summation order independently of the ring: value
// i of a bucket of length L lies in the segment c with c*L/n <= i-lo < (c+1)*L/n, and
// is summed as ((x_c + x_c+1) + ...) + x_c-1.
func reference(inputs [][]float32, bucket int, op Op) []float32 {
	out := referenceAt(inputs, 0, len(inputs[0]), bucket)
	if op == OpAvg {
		for i := range out {
			out[i] *= 1 / float32(len(inputs))
		}
	}
	return out
}

// gradientLike fills v with values of mixed magnitude and signs, some runs of zeros
// (like unused embedding rows) and some negative zeros.
func gradientLike(rng *rand.Rand, v []float32) {
	for i := 0; i < len(v); {
		run := 1 + rng.IntN(200)
		zero := rng.IntN(3) == 0
		for ; run > 0 && i < len(v); run, i = run-1, i+1 {
			switch {
			case zero:
				v[i] = 0
			case rng.IntN(500) == 0:
				v[i] = float32(math.Copysign(0, -1))
			default:
				v[i] = float32(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(7)-5)))
			}
		}
	}
}

func sameBits(a, b []float32) int {
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return i
		}
	}
	return -1
}

// TestAllReduceProperty: for random ring sizes, buffer lengths (0, 1, odd, not
// divisible by n), bucket and chunk sizes, ops and lossless codecs, every rank ends
// with exactly the bits of the documented summation order.
func TestAllReduceProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	codecs := []Codec{CodecNone, CodecS2, CodecZstd}
	for tc := 0; tc < 18; tc++ {
		n := 2 + rng.IntN(7)
		codec := codecs[tc%len(codecs)]
		bucket, chunk := 1+rng.IntN(5000), 1+rng.IntN(700)
		if tc%4 == 0 {
			bucket, chunk = DefaultBucketElems, DefaultChunkElems
		}
		op := []Op{OpSum, OpAvg}[rng.IntN(2)]
		t.Run(fmt.Sprintf("n%d_%v_b%d_c%d_%v", n, codec, bucket, chunk, op), func(t *testing.T) {
			rings := tcpRings(t, n, func(c *Config) { c.Codec, c.BucketElems, c.ChunkElems = codec, bucket, chunk })
			for _, size := range []int{0, 1, n - 1, 7, 3*n + 1, 10007, 50000 + rng.IntN(50000)} {
				checkExact(t, rng, rings, size, op)
			}
		})
	}
}

func checkExact(t *testing.T, rng *rand.Rand, rings []*Ring, size int, op Op) {
	t.Helper()
	n := len(rings)
	inputs := make([][]float32, n)
	bufs := make([][]float32, n)
	for i := range inputs {
		inputs[i] = make([]float32, size)
		gradientLike(rng, inputs[i])
		bufs[i] = append([]float32(nil), inputs[i]...)
	}
	mustReduce(t, rings, bufs, op)
	want := reference(inputs, rings[0].cfg.BucketElems, op)
	for r := range bufs {
		if i := sameBits(bufs[r], want); i >= 0 {
			t.Fatalf("size %d: rank %d value %d = %g (%#x), want %g (%#x)", size, r, i,
				bufs[r][i], math.Float32bits(bufs[r][i]), want[i], math.Float32bits(want[i]))
		}
	}
}

// TestAllReduce256MiB reduces one 256 MiB buffer on three ranks and checks every value
// against the summation order, generated on the fly so the test holds no copies.
func TestAllReduce256MiB(t *testing.T) {
	if testing.Short() {
		t.Skip("256 MiB case skipped in -short mode")
	}
	const size = 64 << 20
	n := 3
	rings := tcpRings(t, n, nil)
	val := func(rank, i int) float32 { return float32(int32(uint32(i)*2654435761+uint32(rank)*40503)>>8) / 1024 }
	bufs := make([][]float32, n)
	for r := range bufs {
		bufs[r] = make([]float32, size)
		for i := range bufs[r] {
			bufs[r][i] = val(r, i)
		}
	}
	start := time.Now()
	mustReduce(t, rings, bufs, OpSum)
	t.Logf("256 MiB, %d ranks: %v", n, time.Since(start))
	inputs := make([][]float32, n)
	for base := 0; base < size; base += 1 << 20 {
		for r := range inputs {
			inputs[r] = make([]float32, 1<<20)
			for i := range inputs[r] {
				inputs[r][i] = val(r, base+i)
			}
		}
		want := referenceAt(inputs, base, size, DefaultBucketElems)
		for r := range bufs {
			if i := sameBits(bufs[r][base:base+1<<20], want); i >= 0 {
				t.Fatalf("rank %d value %d = %g, want %g", r, base+i, bufs[r][base+i], want[i])
			}
		}
	}
}

// referenceAt is reference for the window [base, base+len(inputs[0])) of a buffer of
// total values.
func referenceAt(inputs [][]float32, base, total, bucket int) []float32 {
	n := len(inputs)
	out := make([]float32, len(inputs[0]))
	for w := range out {
		i := base + w
		lo := i / bucket * bucket
		l := min(bucket, total-lo)
		j := i - lo
		c := j * n / l
		for c*l/n > j {
			c--
		}
		for (c+1)*l/n <= j {
			c++
		}
		sum := inputs[c][w]
		for k := 1; k < n; k++ {
			sum += inputs[(c+k)%n][w]
		}
		out[w] = sum
	}
	return out
}

// TestAllReduceExact: on rings whose codec is lossy, AllReduceExact sums in codec none's
// order, bit for bit as a codec none ring does, so a value only one rank contributes
// (a state handed to a new replica) arrives unchanged; the codec's own all-reduces
// before and after it are unaffected.
func TestAllReduceExact(t *testing.T) {
	const n, size = 3, 300_000
	for _, codec := range []Codec{CodecBF16, CodecFP16, CodecPowerSGD} {
		t.Run(codec.String(), func(t *testing.T) {
			rings := tcpRings(t, n, func(c *Config) {
				c.Codec = codec
				c.PowerSGD = PowerSGDParams{Rank: 2, Cols: 64}
			})
			rng := rand.New(rand.NewPCG(7, uint64(codec)))
			inputs := make([][]float32, n)
			for i := range inputs {
				inputs[i] = make([]float32, size)
				gradientLike(rng, inputs[i])
			}
			run := func(exact bool) [][]float32 {
				bufs := make([][]float32, n)
				errs := make([]error, n)
				var wg sync.WaitGroup
				for i, r := range rings {
					bufs[i] = slices.Clone(inputs[i])
					wg.Go(func() {
						if exact {
							errs[i] = r.AllReduceExact(context.Background(), bufs[i], OpSum)
						} else {
							errs[i] = r.AllReduce(context.Background(), bufs[i], OpSum)
						}
					})
				}
				wg.Wait()
				for i, err := range errs {
					if err != nil {
						t.Fatalf("rank %d (exact %v): %v", i, exact, err)
					}
				}
				return bufs
			}
			want := reference(inputs, rings[0].cfg.BucketElems, OpSum)
			lossy := run(false)
			if sameBits(lossy[0], want) < 0 {
				t.Fatalf("the %v ring's AllReduce gave codec none's bits: the test proves nothing", codec)
			}
			for i, got := range run(true) {
				if j := sameBits(got, want); j >= 0 {
					t.Fatalf("rank %d: value %d is %v, codec none's sum is %v", i, j, got[j], want[j])
				}
			}
			again := run(false)
			for i := range again {
				if j := sameBits(again[i], again[0]); j >= 0 {
					t.Fatalf("after an exact all-reduce, ranks 0 and %d differ at %d", i, j)
				}
			}
		})
	}
}

// heldListener holds the first call that sets its deadline in the past (the one that
// unblocks Accept when a setup is cancelled) until release is closed, as a goroutine
// the scheduler runs late; accepting and held say when a setup set its deadline and
// when the call came.
type heldListener struct {
	Listener
	once            sync.Once
	accepting, held chan struct{}
	release         chan struct{}
}

func (l *heldListener) SetDeadline(t time.Time) error {
	if t.Before(time.Now()) {
		l.once.Do(func() {
			close(l.held)
			<-l.release
		})
		return l.Listener.SetDeadline(t)
	}
	err := l.Listener.SetDeadline(t)
	select {
	case l.accepting <- struct{}{}:
	default:
	}
	return err
}

// TestCancelledSetupLeavesTheListenerToTheNext: rank 0's setup of generation 1 is
// cancelled (the generation was superseded) just as rank 1, in generation 2 already,
// connects to it; the accept that takes the connection returns. The call unblocking
// Accept on the cancellation, late, must not land on generation 2's setup on the same
// listener: its Accept failed at once (a node test hung so, both nodes out of
// generation 2 and waiting for a third).
func TestCancelledSetupLeavesTheListenerToTheNext(t *testing.T) {
	lns, addrs := listenTCP(t, 2)
	ln := &heldListener{Listener: lns[0], accepting: make(chan struct{}, 4), held: make(chan struct{}), release: make(chan struct{})}
	cfg := func(rank int, gen uint32, l Listener) Config {
		return Config{Peers: addrs, Rank: rank, Generation: gen, Secret: testSecret, Listener: l,
			Timeout: 2 * time.Second, SetupTimeout: 5 * time.Second, Codec: CodecNone, NoSharedMemory: true}
	}
	type built struct {
		r   *Ring
		err error
	}
	start := func(ctx context.Context, c Config) chan built {
		ch := make(chan built, 1)
		go func() {
			r, err := New(ctx, c)
			if r != nil {
				t.Cleanup(func() { r.Close() })
			}
			ch <- built{r, err}
		}()
		return ch
	}
	ctx1, cancel1 := context.WithCancel(context.Background())
	gen1 := start(ctx1, cfg(0, 1, ln))
	<-ln.accepting
	cancel1()
	<-ln.held
	peer := start(context.Background(), cfg(1, 2, lns[1]))
	// The next generation starts as soon as the cancelled setup returns; the late call
	// is let go once that one accepts, or after a while if the first waits for it.
	gen2 := make(chan chan built, 1)
	go func() {
		b := <-gen1
		if b.err == nil {
			t.Errorf("generation 1 built after its cancellation")
		}
		gen2 <- start(context.Background(), cfg(0, 2, ln))
	}()
	select {
	case <-ln.accepting:
	case <-time.After(300 * time.Millisecond):
	}
	close(ln.release)
	for i, ch := range []chan built{<-gen2, peer} {
		if b := <-ch; b.err != nil {
			t.Fatalf("rank %d: generation 2: %v", i, b.err)
		}
	}
}
