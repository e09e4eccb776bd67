// Package model is bertnode's BERT: the encoder and its task heads on libtorch (through
// gotch), parameters in one flat buffer whose gradient the all-reduce reads in place, our
// AdamW with exportable state, and Hugging Face checkpoints in and out.
//
// libtorch keeps grad mode and gotch keeps its last error per OS thread, and goroutines
// migrate between threads: this package pins each of its calls to one thread, and callers
// that drive libtorch directly as well should lock their goroutine to its thread.
package model

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"unsafe"

	"github.com/bertnode/bertnode/internal/nativeenv"
	"github.com/sugarme/gotch"
	lib "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/ts"
)

// Device is where tensors live: CPU, or a CUDA device when the libtorch has one.
type Device = gotch.Device

// CUDADevices is the number of CUDA devices this libtorch sees.
func CUDADevices() int64 { return cuda.DeviceCount() }

// ParseDevice reads "cpu", "cuda", "cuda:N" or "auto" (CUDA when available).
func ParseDevice(s string) (Device, error) {
	switch {
	case s == "cpu":
		return gotch.CPU, nil
	case s == "" || s == "auto":
		return gotch.CudaIfAvailable(), nil
	case s == "cuda":
		if !cuda.IsAvailable() {
			return gotch.CPU, fmt.Errorf("device %q: this libtorch has no CUDA device", s)
		}
		return gotch.CudaBuilder(0), nil
	case strings.HasPrefix(s, "cuda:"):
		var n int
		if _, err := fmt.Sscanf(s, "cuda:%d", &n); err != nil || n < 0 || int64(n) >= cuda.DeviceCount() {
			return gotch.CPU, fmt.Errorf("device %q: no such CUDA device (%d available)", s, cuda.DeviceCount())
		}
		return gotch.CudaBuilder(uint(n)), nil
	}
	return gotch.CPU, fmt.Errorf("device %q: want cpu, cuda, cuda:N or auto", s)
}

// DeviceName is d as ParseDevice reads it: "cpu" or "cuda:N".
func DeviceName(d Device) string {
	if !d.IsCuda() {
		return "cpu"
	}
	return fmt.Sprintf("cuda:%d", d.Value)
}

// SetThreads sets libtorch's intra-op thread count (Debian's libtorch starts with 1),
// and OpenBLAS's pool, which libtorch's count does not bound (as many threads as CPUs),
// unless the user set OPENBLAS_NUM_THREADS: --threads N then means N cores.
func SetThreads(n int) {
	if n > 0 {
		lib.BnSetNumThreads(n)
		nativeenv.SetBLASThreads(n)
	}
}

// Threads is libtorch's intra-op thread count.
func Threads() int { return lib.BnNumThreads() }

// SetTF32 lets CUDA float32 matmuls and convolutions use TensorFloat-32 (10-bit
// mantissa products, float32 sums) on GPUs that have it, as torch's
// allow_tf32 and Hugging Face's --tf32; it changes nothing on a CPU.
func SetTF32(on bool) { lib.BnSetTF32(on) }

// TF32 says whether SetTF32 allowed TensorFloat-32.
func TF32() bool { return lib.BnTF32() }

// ManualSeed seeds libtorch's default generators (CPU and CUDA).
func ManualSeed(seed int64) { lib.BnManualSeed(seed) }

// RNGState is the state of the default generator of dev (bytes, as torch.get_rng_state).
func RNGState(dev Device) ([]byte, error) {
	var c lib.Ctensor
	lib.BnRngState(&c, int(dev.CInt()))
	if err := ts.TorchErr(); err != nil {
		return nil, fmt.Errorf("reading the RNG state: %w", err)
	}
	t := ts.New(c)
	defer t.MustDrop()
	return slices.Clone(byteSlice(t)), nil
}

// byteSlice is the contiguous uint8 CPU tensor t as a Go slice aliasing its memory
// (gotch's CopyData and OfSlice go element by element through reflection: 0.3 ms for a
// generator's state, which dropout reads and writes every training forward).
func byteSlice(t *ts.Tensor) []byte {
	return unsafe.Slice((*byte)(t.MustDataPtr()), t.Numel())
}

// SetRNGState restores what RNGState returned.
func SetRNGState(dev Device, state []byte) error {
	t := ts.MustEmpty([]int64{int64(len(state))}, gotch.Uint8, gotch.CPU)
	defer t.MustDrop()
	copy(byteSlice(t), state)
	lib.BnSetRngState(ctensor(t), int(dev.CInt()))
	if err := ts.TorchErr(); err != nil {
		return fmt.Errorf("restoring the RNG state: %w", err)
	}
	return nil
}

// ctensor is t's libtorch handle, for our C API extension.
func ctensor(t *ts.Tensor) lib.Ctensor { return lib.Ctensor(t.Ctensor()) }

func setAutocast(mode string) {
	switch mode {
	case "bf16":
		lib.BnCudaAutocast(2)
	case "fp16":
		lib.BnCudaAutocast(1)
	default:
		lib.BnCudaAutocast(0)
	}
}

var cuda gotch.Cuda

// noGrad runs fn with autograd off, pinned to one OS thread: libtorch's grad mode is per
// thread, and a goroutine that moved between turning it off and back on would leave it
// off on the first thread, for whatever runs there next.
func noGrad(fn func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ts.NoGrad(fn)
}
