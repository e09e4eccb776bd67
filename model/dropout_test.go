package model

import (
	"bytes"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// The Go engine draws libtorch's dropout noise bit for bit and leaves libtorch's default
// CPU generator where libtorch's dropout leaves it: for several rates and lengths (within
// a block of the engine and across many), from a fresh seed and from a generator other
// draws have moved.
func TestDropoutNoiseMatchesLibtorch(t *testing.T) {
	lockThread(t)
	checkDropoutNoise(t)
}

func checkDropoutNoise(t *testing.T) {
	for _, c := range []struct {
		p     float64
		n     int
		moved int // elements libtorch's dropout draws first
	}{{0.1, 1, 0}, {0.1, 311, 0}, {0.1, 313, 5}, {0.5, 10000, 0}, {0.1, 300000, 77}, {0.9, 4097, 1}, {0.3, 624, 311}} {
		ManualSeed(int64(c.n))
		if c.moved > 0 {
			libtorchNoise(c.moved, c.p)
		}
		start, err := RNGState(gotch.CPU)
		if err != nil {
			t.Fatal(err)
		}
		want := libtorchNoise(c.n, c.p)
		wantState, _ := RNGState(gotch.CPU)

		if err := SetRNGState(gotch.CPU, start); err != nil {
			t.Fatal(err)
		}
		r, err := loadCPURNG()
		if err != nil {
			t.Fatal(err)
		}
		got := make([]float32, c.n)
		r.mt.noise(got, 1-c.p)
		if i := firstDiff(got, want); i >= 0 {
			t.Fatalf("p %v, %d elements: noise %d is %v, libtorch's %v", c.p, c.n, i, got[i], want[i])
		}
		if err := r.store(); err != nil {
			t.Fatal(err)
		}
		if gotState, _ := RNGState(gotch.CPU); !bytes.Equal(gotState, wantState) {
			t.Fatalf("p %v, %d elements: the generator's state differs from libtorch's after its dropout", c.p, c.n)
		}
	}
}

// libtorchNoise is libtorch's dropout noise for n elements: dropout of ones.
func libtorchNoise(n int, p float64) []float32 {
	ones := ts.MustOnes([]int64{int64(n)}, gotch.Float, gotch.CPU)
	d := ts.MustDropout(ones, p, true)
	ones.MustDrop()
	out := make([]float32, n)
	readFloats(d, out)
	d.MustDrop()
	return out
}

// BenchmarkDropoutNoise is the noise of one BERT-base attention dropout (8 x 12 x 128 x
// 128 elements): drawn by the Go engine against libtorch's dropout of ones.
func BenchmarkDropoutNoise(b *testing.B) {
	const n = 8 * 12 * 128 * 128
	b.Run("go", func(b *testing.B) {
		lockThread(b)
		ManualSeed(1)
		r, err := loadCPURNG()
		if err != nil {
			b.Fatal(err)
		}
		out := make([]float32, n)
		b.SetBytes(4 * n)
		for b.Loop() {
			r.mt.noise(out, 0.9)
		}
	})
	b.Run("libtorch", func(b *testing.B) {
		lockThread(b)
		b.SetBytes(4 * n)
		for b.Loop() {
			libtorchNoise(n, 0.1)
		}
	})
}
