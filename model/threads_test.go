package model

import (
	"os"
	"testing"

	"github.com/bertnode/bertnode/internal/nativeenv"
)

// SetThreads bounds OpenBLAS's pool as well as libtorch's threads: libtorch's count
// alone leaves OpenBLAS splitting each product over every CPU.
func TestSetThreadsBoundsBLAS(t *testing.T) {
	lockThread(t) // libtorch's thread count is the calling thread's (OpenMP's)
	if nativeenv.Core() == "" {
		t.Skip("the BLAS under libtorch is not OpenBLAS")
	}
	t.Setenv("OPENBLAS_NUM_THREADS", "") // set or not is what counts: unset it
	os.Unsetenv("OPENBLAS_NUM_THREADS")
	threads, blas := Threads(), nativeenv.BLASThreads()
	defer func() {
		SetThreads(threads)
		nativeenv.SetBLASThreads(blas)
	}()
	for _, n := range []int{2, 1} {
		SetThreads(n)
		if Threads() != n || nativeenv.BLASThreads() != n {
			t.Fatalf("SetThreads(%d): libtorch %d threads, OpenBLAS %d", n, Threads(), nativeenv.BLASThreads())
		}
	}
}
