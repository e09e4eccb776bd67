package model

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// catching runs fn as a caller of libtorch does: with Catch deferred.
func catching(fn func()) (err error) {
	defer Catch(&err)
	fn()
	return nil
}

// catchingOn runs fn with CatchOn(dev) deferred.
func catchingOn(dev Device, fn func()) (err error) {
	defer CatchOn(dev, &err)
	fn()
	return nil
}

// TestCatchTurnsLibtorchErrorsIntoErrors makes libtorch fail for real, through gotch's
// Must ops: an allocation no machine has (the CPU allocator's out-of-memory error) and
// a product of mismatched shapes. Each comes back as a *TorchError holding libtorch's
// first line, with neither stack, and only the first is out of memory. Without
// gotchadapt's panics the ops exit the test binary.
func TestCatchTurnsLibtorchErrorsIntoErrors(t *testing.T) {
	lockThread(t)
	err := catching(func() { ts.MustZeros([]int64{1 << 48}, gotch.Float, gotch.CPU) })
	var te *TorchError
	if !errors.As(err, &te) {
		t.Fatalf("allocating 1 PiB: %v, want a *TorchError", err)
	}
	t.Logf("allocating 1 PiB: %v", err)
	if !te.OutOfMemory() || !strings.HasPrefix(te.Msg, "Zeros() failed: DefaultCPUAllocator: can't allocate memory") {
		t.Errorf("allocating 1 PiB: %q is not out of memory", te.Msg)
	}
	a, b := ts.MustZeros([]int64{2, 3}, gotch.Float, gotch.CPU), ts.MustZeros([]int64{4, 5}, gotch.Float, gotch.CPU)
	defer a.MustDrop()
	defer b.MustDrop()
	err = catching(func() { a.MustMm(b, false) })
	if !errors.As(err, &te) {
		t.Fatalf("mismatched product: %v, want a *TorchError", err)
	}
	t.Logf("mismatched product: %v", err)
	if te.OutOfMemory() || !strings.Contains(te.Msg, "2x3 and 4x5") {
		t.Errorf("mismatched product: %q", te.Msg)
	}
	for _, m := range []string{te.Msg, err.Error()} {
		if strings.Contains(m, "\n") || strings.Contains(m, "Exception raised from") || strings.Contains(m, "goroutine") {
			t.Errorf("%q carries a stack", m)
		}
	}
}

// TestCatchLetsOtherPanicsGoOn: a panic that is no libtorch error is a bug, not the
// caller's to answer.
func TestCatchLetsOtherPanicsGoOn(t *testing.T) {
	defer func() {
		if p := recover(); p != "bug" {
			t.Errorf("recovered %v, want the panic to go on", p)
		}
	}()
	catching(func() { panic("bug") })
	t.Error("Catch swallowed a panic that was not libtorch's")
}

// TestCatchOnAGPU: for work on a GPU, out of memory is an error, and any other libtorch
// error goes on as a panic (the process's CUDA context is unusable after it). The
// errors are real libtorch errors, raised on the CPU.
func TestCatchOnAGPU(t *testing.T) {
	lockThread(t)
	gpu := gotch.CudaBuilder(0)
	var te *TorchError
	if err := catchingOn(gpu, func() { ts.MustZeros([]int64{1 << 48}, gotch.Float, gotch.CPU) }); !errors.As(err, &te) || !te.OutOfMemory() {
		t.Fatalf("out of memory on a GPU: %v, want the error", err)
	}
	a, b := ts.MustZeros([]int64{2, 3}, gotch.Float, gotch.CPU), ts.MustZeros([]int64{4, 5}, gotch.Float, gotch.CPU)
	defer a.MustDrop()
	defer b.MustDrop()
	if err := catchingOn(gotch.CPU, func() { a.MustMm(b, false) }); !errors.As(err, &te) {
		t.Fatalf("another error on the CPU: %v, want the error", err)
	}
	defer func() {
		if p := recover(); p == nil || !strings.Contains(fmt.Sprint(p), "2x3 and 4x5") {
			t.Errorf("another error on a GPU: recovered %v, want libtorch's panic to go on", p)
		}
	}()
	err := catchingOn(gpu, func() { a.MustMm(b, false) })
	t.Errorf("another error on a GPU came back as %v", err)
}

// TestTorchErrorOutOfMemory on the messages libtorch's allocators raise.
func TestTorchErrorOutOfMemory(t *testing.T) {
	for msg, want := range map[string]bool{
		"CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 79.15 GiB total capacity; 78.02 GiB already allocated)": true,
		"DefaultCPUAllocator: can't allocate memory: you tried to allocate 4503599627370496 bytes. Error code 12":        true,
		"CUDA error: an illegal memory access was encountered":                                                           false,
		"mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)":                                                        false,
	} {
		if got := (&TorchError{Msg: msg}).OutOfMemory(); got != want {
			t.Errorf("%q: OutOfMemory %v, want %v", msg, got, want)
		}
	}
}
