package nativeenv

/*
#cgo LDFLAGS: -ldl
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <stdlib.h>

// OpenBLAS's own answers, when the BLAS loaded with libtorch is OpenBLAS.
static const char *blas_call(const char *name) {
	char *(*f)(void) = (char *(*)(void))dlsym(RTLD_DEFAULT, name);
	return f ? f() : NULL;
}

static int blas_set_threads(int n) {
	void (*f)(int) = (void (*)(int))dlsym(RTLD_DEFAULT, "openblas_set_num_threads");
	if (!f) return 0;
	f(n);
	return 1;
}

static int blas_threads(void) {
	int (*f)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "openblas_get_num_threads");
	return f ? f() : 0;
}
*/
import "C"

import (
	"fmt"
	"os"
	"strings"
	"unsafe"

	"golang.org/x/sys/cpu"
)

func openBLAS(fn string) string {
	name := C.CString(fn)
	defer C.free(unsafe.Pointer(name))
	s := C.blas_call(name)
	if s == nil {
		return ""
	}
	return strings.TrimSpace(C.GoString(s))
}

// Core is the kernel set OpenBLAS runs with ("Prescott", "Haswell", "SkylakeX", ...),
// or "" when the BLAS is not OpenBLAS or not loaded.
func Core() string { return openBLAS("openblas_get_corename") }

// SetBLASThreads sets how many threads OpenBLAS splits one product over, unless the
// user set OPENBLAS_NUM_THREADS. Several model instances side by side each want their
// products single-threaded: OpenBLAS's threads are one pool for the whole process. It
// reports whether it set them (false: another BLAS, or the user's choice).
func SetBLASThreads(n int) bool {
	if _, set := os.LookupEnv("OPENBLAS_NUM_THREADS"); set || n < 1 {
		return false
	}
	return C.blas_set_threads(C.int(n)) != 0
}

// BLASThreads is OpenBLAS's thread count, or 0 when the BLAS is not OpenBLAS.
func BLASThreads() int { return int(C.blas_threads()) }

// Kernel levels: the instructions a core's kernels use.
const (
	levelSSE    = 1
	levelAVX    = 2
	levelAVX2   = 3 // with FMA
	levelAVX512 = 4 // F, CD, BW, DQ, VL: what OpenBLAS's SkylakeX kernels use
)

// coreLevels places OpenBLAS's x86-64 core names (lower case) by the instructions
// their kernels use. A name missing here is left alone.
var coreLevels = map[string]int{
	"katmai": levelSSE, "coppermine": levelSSE, "northwood": levelSSE, "prescott": levelSSE,
	"banias": levelSSE, "atom": levelSSE, "core2": levelSSE, "penryn": levelSSE,
	"dunnington": levelSSE, "nehalem": levelSSE, "opteron": levelSSE, "opteron_sse3": levelSSE,
	"barcelona": levelSSE, "bobcat": levelSSE,
	"sandybridge": levelAVX, "bulldozer": levelAVX, "piledriver": levelAVX, "steamroller": levelAVX,
	"haswell": levelAVX2, "zen": levelAVX2, "excavator": levelAVX2,
	"skylakex": levelAVX512, "cooperlake": levelAVX512, "sapphirerapids": levelAVX512,
}

// cpuLevel is the highest kernel level this CPU runs with the OS's support (x/sys/cpu
// checks that the OS saves the AVX and AVX-512 registers).
func cpuLevel() int {
	x := cpu.X86
	switch {
	case x.HasAVX512F && x.HasAVX512CD && x.HasAVX512BW && x.HasAVX512DQ && x.HasAVX512VL && x.HasAVX2 && x.HasFMA:
		return levelAVX512
	case x.HasAVX2 && x.HasFMA:
		return levelAVX2
	}
	return 0
}

// betterCore is the core to name instead of the detected one: "" unless the detected
// core's kernels are below what the CPU supports, at AVX2 or above.
func betterCore(detected string, level int) string {
	have, known := coreLevels[strings.ToLower(detected)]
	if !known || have >= level {
		return ""
	}
	switch level {
	case levelAVX512:
		return "SkylakeX"
	case levelAVX2:
		return "Haswell"
	}
	return ""
}

// Describe says which BLAS libtorch calls and with which kernels, for bertnode version
// and the benchmarks: "OpenBLAS 0.3.21 ... (core SkylakeX, named by bertnode: OpenBLAS
// detected Prescott)".
func Describe() string {
	config := openBLAS("openblas_get_config")
	if config == "" {
		return "not OpenBLAS (or none loaded)"
	}
	core := Core()
	switch detected := os.Getenv(detectedVar); {
	case detected != "" && strings.EqualFold(os.Getenv("OPENBLAS_CORETYPE"), core):
		return fmt.Sprintf("%s (core %s, named by bertnode: OpenBLAS detected %s)", config, core, detected)
	case os.Getenv("OPENBLAS_CORETYPE") != "":
		return fmt.Sprintf("%s (core %s; OPENBLAS_CORETYPE=%s)", config, core, os.Getenv("OPENBLAS_CORETYPE"))
	}
	return fmt.Sprintf("%s (core %s, OpenBLAS's detection)", config, core)
}
