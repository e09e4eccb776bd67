package allreduce

import (
	"fmt"
	"math/rand/v2"
	"testing"
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
