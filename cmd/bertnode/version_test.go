package main

import (
	"strings"
	"testing"

	"github.com/bertnode/bertnode/internal/nativeenv"
)

// version names the kernels that run here, the same ones --blas-core prints for scripts.
func TestVersionNamesTheBLASKernels(t *testing.T) {
	core := strings.TrimSpace(mustRun(t, "version", "--blas-core"))
	if core != nativeenv.Core() {
		t.Fatalf("--blas-core printed %q; OpenBLAS runs %q", core, nativeenv.Core())
	}
	out := mustRun(t, "version")
	if !strings.HasPrefix(out, "bertnode ") || !strings.Contains(out, "\nCUDA devices: ") {
		t.Fatalf("version printed:\n%s", out)
	}
	if core != "" && (!strings.Contains(out, "BLAS: OpenBLAS") || !strings.Contains(out, "(core "+core)) {
		t.Fatalf("version does not name the kernels %q:\n%s", core, out)
	}
}
