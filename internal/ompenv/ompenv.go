// Package ompenv makes sure the OpenMP runtime under libtorch starts with passive waits.
//
// libgomp reads OMP_WAIT_POLICY once, when it is loaded, before any Go code runs: with
// its default spinning waits, 2-thread libtorch steps ran 10-30x slower on machines
// whose cores are shared. The only way to set it from inside is to re-execute.
package ompenv

import (
	"os"
	"syscall"
)

// Ensure re-executes the process with OMP_WAIT_POLICY=passive unless the variable is
// already set (by the user, who then keeps the choice). It returns only when no
// re-execution was needed or possible.
func Ensure() {
	if _, set := os.LookupEnv("OMP_WAIT_POLICY"); set {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	env := append(os.Environ(), "OMP_WAIT_POLICY=passive")
	syscall.Exec(exe, os.Args, env) // returns only on failure: run on with the default
}
