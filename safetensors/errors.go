package safetensors

import (
	"fmt"
	"strconv"
)

// Error reports a problem with a safetensors file, naming the file (when known)
// and the tensor (when the problem belongs to one).
type Error struct {
	File   string
	Tensor string
	Err    error
}

func (e *Error) Error() string {
	s := "safetensors: "
	if e.File != "" {
		s += e.File + ": "
	}
	if e.Tensor != "" {
		s += "tensor " + strconv.Quote(e.Tensor) + ": "
	}
	return s + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

func errorf(tensor, format string, args ...any) *Error {
	return &Error{Tensor: tensor, Err: fmt.Errorf(format, args...)}
}
