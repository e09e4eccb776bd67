package model

import (
	"errors"
	"regexp"
	"strings"
)

// TorchError is an error libtorch raised in a gotch op: the device ran out of memory,
// shapes did not agree, a CUDA kernel failed. gotch panics with it (as tools/gotchadapt
// adapts it); Catch turns the panic back into this error.
type TorchError struct {
	// Msg is libtorch's message, without the C++ and Go stacks gotch appends.
	Msg string
}

func (e *TorchError) Error() string { return "libtorch: " + e.Msg }

// OutOfMemory says the op could not allocate its result: on a GPU, CUDA's "out of
// memory"; on the CPU, the allocator's "can't allocate memory".
func (e *TorchError) OutOfMemory() bool {
	m := strings.ToLower(e.Msg)
	return strings.Contains(m, "out of memory") || strings.Contains(m, "can't allocate memory")
}

// OutOfMemory says err holds a libtorch error that is out of memory.
func OutOfMemory(err error) bool {
	var te *TorchError
	return errors.As(err, &te) && te.OutOfMemory()
}

// enforce is where a failed TORCH_CHECK/CAFFE_ENFORCE says it failed, before its
// message: "[enforce fail at alloc_cpu.cpp:75] err == 0. ".
var enforce = regexp.MustCompile(`^\[enforce fail at [^\]]*\] [^.]*\. `)

// gotchMark is in the message of every error gotch makes of libtorch's (ts.TorchErr),
// after the op's name ("Zeros() failed: ").
const gotchMark = "Libtorch API Error: "

// Catch, deferred, turns a libtorch error that a gotch op panicked with into *err, a
// *TorchError; any other panic goes on.
//
//	func f() (err error) { defer model.Catch(&err); ... }
func Catch(err *error) {
	if p := recover(); p != nil {
		*err = caught(p, false)
	}
}

// CatchOn is Catch for work on device dev. On a GPU, a libtorch error other than out
// of memory is the device's (a CUDA error leaves the process's context unusable): it
// goes on as a panic, which ends the process for its supervisor to start afresh.
func CatchOn(dev Device, err *error) {
	if p := recover(); p != nil {
		*err = caught(p, dev.IsCuda())
	}
}

// caught is the error a recovered panic p is, or p panicking again.
func caught(p any, cuda bool) error {
	te := torchError(p)
	if te == nil || cuda && !te.OutOfMemory() {
		panic(p)
	}
	return te
}

// torchError is p as a *TorchError, or nil when p is not a libtorch error.
func torchError(p any) *TorchError {
	e, ok := p.(error)
	if !ok {
		return nil
	}
	var te *TorchError
	if errors.As(e, &te) {
		return te
	}
	op, msg, ok := strings.Cut(e.Error(), gotchMark)
	if !ok {
		return nil
	}
	// libtorch's message goes on with its C++ frames or "Exception raised from ...";
	// gotch adds a line break and the Go stack.
	msg, _, _ = strings.Cut(msg, "\n")
	msg, _, _ = strings.Cut(msg, "Exception raised from")
	return &TorchError{Msg: op + enforce.ReplaceAllString(strings.TrimSpace(msg), "")}
}
