package model

import (
	"math"
	"testing"

	"github.com/sugarme/gotch/ts"
)

// Each hidden_act matches its definition in transformers' activations.py.
func TestActivations(t *testing.T) {
	lockThread(t)
	xs := []float32{-3, -1, -0.5, 0, 0.3, 1, 2.5, 7}
	erfGelu := func(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) }
	tanhGelu := func(x float64) float64 {
		return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
	}
	sig := func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
	want := map[string]func(float64) float64{
		"gelu": erfGelu, "gelu_new": tanhGelu, "gelu_pytorch_tanh": tanhGelu,
		"quick_gelu": func(x float64) float64 { return x * sig(1.702*x) },
		"relu":       func(x float64) float64 { return math.Max(0, x) },
		"relu6":      func(x float64) float64 { return math.Min(6, math.Max(0, x)) },
		"silu":       func(x float64) float64 { return x * sig(x) },
		"mish":       func(x float64) float64 { return x * math.Tanh(math.Log1p(math.Exp(x))) },
		"tanh":       math.Tanh, "sigmoid": sig, "linear": func(x float64) float64 { return x },
	}
	for name, f := range want {
		act, err := activation(name)
		if err != nil {
			t.Fatal(err)
		}
		got := act(ts.MustOfSlice(xs)).Float64Values(true)
		for i, x := range xs {
			if d := math.Abs(got[i] - f(float64(x))); d > 1e-5 {
				t.Errorf("%s(%v) = %v, want %v", name, x, got[i], f(float64(x)))
			}
		}
	}
	if _, err := activation("gelu_10"); err == nil {
		t.Error("an unknown activation was accepted")
	}
}
