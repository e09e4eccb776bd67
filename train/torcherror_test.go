package train

import (
	"errors"
	"io"
	"runtime"
	"testing"

	"github.com/bertnode/bertnode/model"
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
