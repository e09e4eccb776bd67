package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/internal/nativeenv"
	"github.com/bertnode/bertnode/model"
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
	v := model.LibtorchVersion()
	attn, adamw := model.FusedOps()
	if want := fmt.Sprintf("\nlibtorch %d.%d: fused attention %s, fused AdamW on CUDA %s", v/100, v%100, onOff(attn), onOff(adamw)); !strings.Contains(out, want) {
		t.Fatalf("version does not say %q:\n%s", want[1:], out)
	}
	if core != "" && (!strings.Contains(out, "BLAS: OpenBLAS") || !strings.Contains(out, "(core "+core)) {
		t.Fatalf("version does not name the kernels %q:\n%s", core, out)
	}
}
