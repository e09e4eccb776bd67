// Package nativeenv starts the process with the settings that libtorch's native
// libraries read once, when they load, before any Go code runs; the only way to set them
// from inside is to re-execute.
//
//   - OMP_WAIT_POLICY=passive: with libgomp's default spinning waits, 2-thread libtorch
//     steps ran 10-30x slower on machines whose cores are shared.
//   - OPENBLAS_CORETYPE: OpenBLAS picks its kernels from a table of CPU models; a CPU
//     newer than its table gets the oldest x86-64 kernels (Debian's 0.3.21 runs SSE3
//     "Prescott" kernels on a 5th-generation Xeon with AVX-512: BERT steps 2-3.5x
//     slower). When it fell back below what the CPU and the OS support, bertnode names
//     the kernels they do support.
//
// A variable the user set is the user's choice and stays.
package nativeenv

import (
	"os"
	"syscall"
)

// detectedVar carries OpenBLAS's own choice across the re-execution, for Describe.
const detectedVar = "BERTNODE_BLAS_DETECTED"

// Ensure re-executes the process once with the settings above when one is missing. It
// returns only when no re-execution was needed or possible.
func Ensure() {
	var add []string
	if _, set := os.LookupEnv("OMP_WAIT_POLICY"); !set {
		add = append(add, "OMP_WAIT_POLICY=passive")
	}
	if _, set := os.LookupEnv("OPENBLAS_CORETYPE"); !set {
		if detected := Core(); detected != "" {
			if core := betterCore(detected, cpuLevel()); core != "" {
				add = append(add, "OPENBLAS_CORETYPE="+core, detectedVar+"="+detected)
			}
		}
	}
	if len(add) == 0 {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	syscall.Exec(exe, os.Args, append(os.Environ(), add...)) // returns only on failure: run on as we are
}
