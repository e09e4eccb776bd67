package allreduce

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkAllReduce runs every rank in this process over loopback TCP or through
// shared memory, so the ranks share the CPUs the way co-located processes would.
// b.SetBytes is the buffer size: MB/s is algbw; busbw is algbw*2(n-1)/n.
func BenchmarkAllReduce(b *testing.B) {
	for _, tr := range []string{"tcp", "shm"} {
		for _, n := range []int{2, 4} {
			for _, mib := range []int{16, 64} {
				b.Run(fmt.Sprintf("%s_n%d_%dMiB", tr, n, mib), func(b *testing.B) {
					rings := tcpRings(b, n, nil)
					if tr == "shm" {
						rings = shmRings(b, n, nil)
					}
					bufs := make([][]float32, n)
					for i := range bufs {
						bufs[i] = make([]float32, mib<<18)
						for j := range bufs[i] {
							bufs[i][j] = float32(j%1000) / 1000
						}
					}
					b.SetBytes(int64(mib) << 20)
					b.ResetTimer()
					for b.Loop() {
						mustReduce(b, rings, bufs, OpAvg)
					}
					s := b.Elapsed().Seconds() / float64(b.N)
					b.ReportMetric(float64(mib<<20)/s/1e9*2*float64(n-1)/float64(n), "busbw_GB/s")
				})
			}
		}
	}
}

// The reduce loops, per frame (DefaultChunkElems values).
func BenchmarkAddScaled(b *testing.B) {
	dst := make([]float32, DefaultChunkElems)
	src := make([]byte, 4*DefaultChunkElems)
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		addScaled(dst, src, 1)
	}
}

func BenchmarkScale(b *testing.B) {
	v := make([]float32, DefaultChunkElems)
	b.SetBytes(int64(4 * len(v)))
	for b.Loop() {
		scale(v, 1/float32(3))
	}
}

// chunkOf returns one DefaultChunkElems chunk of "dense" gradient (normal values at one
// scale) or "embedding" gradient (one row of 768 in 50 non-zero).
func chunkOf(kind string) []float32 {
	rng := rand.New(rand.NewPCG(41, 42))
	v := make([]float32, DefaultChunkElems)
	for i := range v {
		if kind == "dense" || (i/768)%50 == 7 {
			v[i] = float32(rng.NormFloat64() * 1e-3)
		}
	}
	return v
}

// BenchmarkCodec measures each codec's encode and decode-and-add on one frame; MB/s is
// raw float32 bytes, ratio is raw bytes over payload bytes.
func BenchmarkCodec(b *testing.B) {
	for _, kind := range []string{"dense", "embedding"} {
		src := chunkOf(kind)
		for _, c := range []Codec{CodecS2, CodecZstd, CodecBF16, CodecFP16} {
			enc, dec := newWireCodec(c, DefaultChunkElems), newWireCodec(c, DefaultChunkElems)
			scratch := make([]byte, enc.scratch(len(src)))
			payload, _ := enc.encode(scratch, src)
			payload = append([]byte(nil), payload...)
			ratio := float64(4*len(src)) / float64(len(payload)+frameHeaderSize)
			b.Run(fmt.Sprintf("%s/%v/encode", kind, c), func(b *testing.B) {
				b.SetBytes(int64(4 * len(src)))
				b.ReportAllocs()
				for b.Loop() {
					enc.encode(scratch, src)
				}
				b.ReportMetric(ratio, "ratio")
			})
			b.Run(fmt.Sprintf("%s/%v/decode", kind, c), func(b *testing.B) {
				dst := make([]float32, len(src))
				b.SetBytes(int64(4 * len(src)))
				b.ReportAllocs()
				for b.Loop() {
					if err := dec.decode(dst, payload, true); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkShuffle(b *testing.B) {
	src := chunkOf("dense")
	dst := make([]byte, 4*len(src))
	var nonzero [4]bool
	b.SetBytes(int64(len(dst)))
	for b.Loop() {
		shuffle(dst, src, &nonzero)
	}
}

func BenchmarkUnshuffleAdd(b *testing.B) {
	dst := chunkOf("dense")
	planes := make([]byte, 4*len(dst))
	b.SetBytes(int64(len(planes)))
	for b.Loop() {
		unshuffle(dst, planes, true)
	}
}

// BenchmarkHalfCodec runs the half codecs' encode, decode-and-add and quantize on one
// frame of dense gradient through the vector loops and, forced, the scalar ones, side by
// side in one run.
func BenchmarkHalfCodec(b *testing.B) {
	src := chunkOf("dense")
	for _, c := range []halfCodec{{bf: true}, {bf: false}} {
		for _, loop := range []string{"vector", "scalar"} {
			name := fmt.Sprintf("%v/%s", map[bool]Codec{true: CodecBF16, false: CodecFP16}[c.bf], loop)
			run := func(b *testing.B, fn func()) {
				if loop == "scalar" {
					defer func(v bool) { halfVector = v }(halfVector)
					halfVector = false
				} else if !halfVector {
					b.Skip("no vector loops on this CPU")
				}
				b.SetBytes(int64(4 * len(src)))
				for b.Loop() {
					fn()
				}
			}
			payload := make([]byte, c.scratch(len(src)))
			c.encode(payload, src)
			dst, q := make([]float32, len(src)), make([]float32, len(src))
			b.Run(name+"/encode", func(b *testing.B) { run(b, func() { c.encode(payload, src) }) })
			b.Run(name+"/decode", func(b *testing.B) { run(b, func() { c.decode(dst, payload, true) }) })
			b.Run(name+"/quantize", func(b *testing.B) {
				run(b, func() {
					copy(q, src)
					c.quantize(q)
				})
			})
		}
	}
}

// BenchmarkPowerSGDBucket runs PowerSGD's products on one default 16 MiB bucket of dense
// gradient at rank 4 and 768 columns (everything but the two small all-reduces and the
// orthonormalisation), with the vector loops and, forced, the scalar ones.
func BenchmarkPowerSGDBucket(b *testing.B) {
	const cols, rk = 768, 4
	m := make([]float32, DefaultBucketElems)
	for i := range m {
		m[i] = float32(i%1000) / 1000
	}
	mem := make([]float32, len(m))
	p := make([]float32, (len(m)+cols-1)/cols*rk)
	qt, qlt := make([]float32, rk4(rk)*cols), make([]float32, rk4(rk)*cols)
	for i := range qt {
		qt[i] = float32(i%7) / 7
	}
	for _, loop := range []string{"vector", "scalar"} {
		b.Run(loop, func(b *testing.B) {
			if loop == "scalar" {
				defer func(v bool) { psgdVector = v }(psgdVector)
				psgdVector = false
			} else if !psgdVector {
				b.Skip("no vector loops on this CPU")
			}
			b.SetBytes(int64(4 * len(m)))
			for b.Loop() {
				project(m, mem, qt, p, cols, rk)
				backProject(m, p, qlt, cols, rk)
				reconstruct(m, mem, p, qt, cols, rk, 0.5, 0.5)
			}
		})
	}
}
