package nativeenv

/*
#cgo LDFLAGS: -ldl
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>

// glibc's malloc_trim, where the C library has one.
static int trim(void) {
	int (*f)(size_t) = (int (*)(size_t))dlsym(RTLD_DEFAULT, "malloc_trim");
	return f ? f(0) : 0;
}
*/
import "C"

import (
	"runtime"
	"time"
)

// ReleaseMemory frees the C memory of the tensors nothing references any more, and
// hands what the C allocator then holds free back to the OS. Call it once a model is
// dropped (a node's session or predict job ended). A tensor's memory goes when the Go
// GC finalizes its handle, but the Go heap, small beside the tensors, grows too slowly
// for the GC to run often; and glibc keeps freed memory in the arena of the thread that
// used it, a different one for each session's locked thread. A node running job after
// job grew by 75 MB per tiny-BERT job, to 1 GB after 12 (docs/cluster.md, "Soak").
func ReleaseMemory() {
	// Twice: the finalizers run on their own goroutine, in no set order; a second
	// collection's sentinel comes after what the first one queued.
	for range 2 {
		done := make(chan struct{})
		sentinel := &struct{ _ *int }{} // a pointer field: not a tiny allocation, which may never be finalized
		runtime.SetFinalizer(sentinel, func(*struct{ _ *int }) { close(done) })
		sentinel = nil
		runtime.GC()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
	}
	C.trim()
}
