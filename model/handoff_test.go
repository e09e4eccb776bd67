package model

import (
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"

	"github.com/sugarme/gotch/ts"
)

// GradSlice is the flat gradient tensor's own memory: writes show through both ways,
// and backward accumulates each parameter's gradient straight into it.
func TestGradSliceAliasesTheTensor(t *testing.T) {
	lockThread(t)
	m := newModel(t, smallConfig(0), Options{Task: Classify, NumLabels: 2, Freeze: Freeze{Embeddings: true}}, 1)
	ps := m.Params
	g := ps.GradSlice() // taken once: everything below must show through it
	if int64(len(g)) != ps.TrainEnd || unsafe.Pointer(&g[0]) != ps.Grad.MustDataPtr() {
		t.Fatalf("slice of %d at %p, tensor at %p with %d trainable", len(g), &g[0], ps.Grad.MustDataPtr(), ps.TrainEnd)
	}
	g[7] = 3.5
	if v := ps.Grad.MustFloat64Value([]int64{7}); v != 3.5 {
		t.Fatalf("tensor reads %g after the slice wrote 3.5", v)
	}
	ps.Grad.MustFill_(ts.FloatScalar(0.25))
	if g[0] != 0.25 || g[len(g)-1] != 0.25 {
		t.Fatalf("slice reads %g, %g after the tensor was filled with 0.25", g[0], g[len(g)-1])
	}

	ps.ZeroGrad()
	b := randomBatch(rand.New(rand.NewPCG(2, 2)), m, 12, []int{12, 6, 9})
	if _, err := m.Backward(b, 1); err != nil {
		t.Fatal(err)
	}
	for _, p := range ps.List() {
		if !p.Trainable {
			continue
		}
		grad := p.T.MustGrad(false)
		if grad.MustDataPtr() != unsafe.Pointer(&g[p.Offset]) {
			t.Fatalf("%s: .grad at %p, not in the flat gradient at %p", p.Name, grad.MustDataPtr(), &g[p.Offset])
		}
		grad.MustDrop()
		if slices.Max(g[p.Offset:p.Offset+p.Numel]) == 0 && slices.Min(g[p.Offset:p.Offset+p.Numel]) == 0 {
			t.Errorf("%s: no gradient in the flat buffer", p.Name)
		}
	}
	first := slices.Clone(g)

	// A second backward accumulates in place; ZeroGrad keeps the views attached; a
	// scaled loss (gradient accumulation) scales the gradient.
	if _, err := m.Backward(b, 1); err != nil {
		t.Fatal(err)
	}
	for i := range g {
		if g[i] != 2*first[i] {
			t.Fatalf("after two backward passes gradient %d is %g, want %g", i, g[i], 2*first[i])
		}
	}
	ps.ZeroGrad()
	if _, err := m.Backward(b, 0.25); err != nil {
		t.Fatal(err)
	}
	for i := range g {
		if g[i] != first[i]/4 {
			t.Fatalf("backward of loss/4: gradient %d is %g, want %g", i, g[i], first[i]/4)
		}
	}
}
