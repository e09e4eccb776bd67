package model

import (
	"math"
	"math/rand/v2"
	"testing"
)

// Gram equals the dot products summed in float64, and is empty for no rows.
func TestGram(t *testing.T) {
	const n, m, h = 5, 7, 33
	r := rand.New(rand.NewPCG(1, 2))
	a, b := make([]float32, n*h), make([]float32, m*h)
	for i := range a {
		a[i] = r.Float32()*2 - 1
	}
	for i := range b {
		b[i] = r.Float32()*2 - 1
	}
	g := Gram(a, b, h)
	if len(g) != n*m {
		t.Fatalf("%d values, want %d", len(g), n*m)
	}
	for i := range n {
		for j := range m {
			var want float64
			for k := range h {
				want += float64(a[i*h+k]) * float64(b[j*h+k])
			}
			if d := math.Abs(float64(g[i*m+j]) - want); d > 1e-5 {
				t.Errorf("[%d,%d] = %v, want %v", i, j, g[i*m+j], want)
			}
		}
	}
	if g := Gram(nil, b, h); len(g) != 0 {
		t.Errorf("no anchors: %d values", len(g))
	}
}
