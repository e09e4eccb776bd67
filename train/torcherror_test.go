package train

import (
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"testing"

	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/shard"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// TestSmallerAfterOutOfMemory: with auto_micro_batch, a step out of memory halves the
// micro-batch (from the step's size when that is below batch_size), clears the
// gradient the attempt added and frees the tensors it left to their finalizers
// (on a GPU those hold device memory, which no Go collection is due for), at once.
// Without auto_micro_batch, or for another error, or with the gradient handed out
// during backward, the step is not taken again.
func TestSmallerAfterOutOfMemory(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	s := smsSpec(t)
	s.BatchSize, s.AutoMicroBatch = 32, true
	tr, err := Prepare(s, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	oom := &model.TorchError{Msg: "Mul() failed: DefaultCPUAllocator: can't allocate memory: you tried to allocate 536870912 bytes"}
	other := &model.TorchError{Msg: "Mm() failed: mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)"}
	if tr.smaller(other, 32, nil) || tr.smaller(oom, 32, func(int) {}) || tr.smaller(errors.New("no"), 32, nil) {
		t.Fatal("a step taken again after another error, or with the gradient handed out")
	}
	live := ts.LiveTensors()
	for range 50 { // what a failed forward leaves: tensors nothing drops
		ts.MustZeros([]int64{1024}, gotch.Float, gotch.CPU)
	}
	g := tr.Model.Params.GradSlice()
	g[0], g[len(g)-1] = 1, 2
	if !tr.smaller(oom, 20, nil) {
		t.Fatal("out of memory: not taken again")
	}
	if tr.microSize() != 10 {
		t.Errorf("micro-batches of %d after a step of 20 ran out of memory, want 10", tr.microSize())
	}
	if g[0] != 0 || g[len(g)-1] != 0 {
		t.Error("the failed attempt's gradient was not cleared")
	}
	if n := ts.LiveTensors(); n > live {
		t.Errorf("%d tensors left by the failed attempt are still allocated", n-live)
	}
	for _, want := range []int{5, 3, 2, 1} {
		if !tr.smaller(oom, 20, nil) || tr.microSize() != want {
			t.Fatalf("micro-batches of %d, want %d", tr.microSize(), want)
		}
	}
	if tr.smaller(oom, 20, nil) {
		t.Fatal("taken again below one example")
	}
	tr.Spec.AutoMicroBatch = false
	tr.micro = 0
	if tr.smaller(oom, 20, nil) {
		t.Fatal("taken again without auto_micro_batch")
	}
}

// TestCUDAAutoMicroBatch: on a GPU, a step of base BERT over 4096 sequences of 512
// tokens runs out of device memory for real; with auto_micro_batch the replica takes it
// again in smaller micro-batches, and its gradient is (within the GPU's nondeterministic
// sums) the one a replica configured with those micro-batches from the start computes.
func TestCUDAAutoMicroBatch(t *testing.T) {
	if _, err := model.ParseDevice("cuda"); err != nil {
		t.Skip(err) // CI has no GPU; scripts/gpu-check.sh runs this on one
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	s := smsSpec(t)
	s.Device, s.Model, s.MaxLength, s.Padding, s.BatchSize, s.AutoMicroBatch = "cuda", "base", 512, "max_length", 4096, true
	recs := make([]shard.Record, 4096)
	for i := range recs {
		recs[i] = shard.Record{ID: fmt.Sprint(i), Text: fmt.Sprintf("message %d: call now to claim your prize", i), Labels: []string{[]string{"ham", "spam"}[i%2]}}
	}
	grad := func(s Spec) ([]float32, int) {
		r, err := NewReplica(s, []string{"ham", "spam"}, nil, 10, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		r.ZeroGrad()
		if _, err := r.Backward(recs, 1, 9); err != nil {
			t.Fatal(err)
		}
		return append([]float32(nil), r.Grad()...), r.t.microSize()
	}
	auto, micro := grad(s)
	if micro >= 4096 {
		t.Fatalf("micro-batches of %d: the step did not run out of memory", micro)
	}
	t.Logf("micro-batches of %d", micro)
	s.BatchSize, s.AutoMicroBatch = micro, false
	want, _ := grad(s)
	var diff, norm float64
	for i, w := range want {
		diff += float64(auto[i]-w) * float64(auto[i]-w)
		norm += float64(w) * float64(w)
	}
	if math.Sqrt(diff) > 1e-4*math.Sqrt(norm) {
		t.Fatalf("the gradient taken again differs from micro-batches of %d configured: |diff| %g, |grad| %g", micro, math.Sqrt(diff), math.Sqrt(norm))
	}
}
