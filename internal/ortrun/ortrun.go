// Package ortrun runs ONNX models in ONNX Runtime for the tests of what bertnode
// exports: through Node.js and onnxruntime-node's bundled CPU build, which make
// onnx-deps installs into build/onnxruntime (ONNX Runtime has no Go binding to build
// against here).
package ortrun

import (
	_ "embed"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

//go:embed run.js
var script []byte

// Input is an int64 input tensor, row-major.
type Input struct {
	Dims []int64 `json:"dims"`
	Data []int64 `json:"data"`
}

// Output is a float output tensor, row-major.
type Output struct {
	Dims []int64   `json:"dims"`
	Data []float64 `json:"data"`
}

// Inputs are a padded batch of sequences as an exported graph takes it, of the given
// shape ([batch, length], or multiple choice's [batch, choices, length]); types nil
// leaves token_type_ids out, for the graphs without.
func Inputs(shape []int64, ids, mask, types []int64) map[string]Input {
	in := map[string]Input{"input_ids": {Dims: shape, Data: ids}, "attention_mask": {Dims: shape, Data: mask}}
	if types != nil {
		in["token_type_ids"] = Input{Dims: shape, Data: types}
	}
	return in
}

// Job is one model run on one set of inputs, named as the graph names them.
type Job struct {
	Model  string           `json:"model"`
	Inputs map[string]Input `json:"inputs"`
}

// Runner returns a function that runs jobs in one Node.js process and returns each
// job's outputs by name, failing t on any error. Where node or onnxruntime-node is
// missing it skips t, saying which.
func Runner(t testing.TB) func(jobs []Job) []map[string]Output {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the ONNX Runtime tests need Node.js and onnxruntime-node (make onnx-deps)")
	}
	_, here, _, _ := runtime.Caller(0)
	modules := filepath.Join(filepath.Dir(here), "..", "..", "build", "onnxruntime", "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "onnxruntime-node", "package.json")); err != nil {
		t.Skipf("onnxruntime-node is not installed in %s: make onnx-deps installs it (npm)", filepath.Clean(modules))
	}
	return func(jobs []Job) []map[string]Output {
		t.Helper()
		dir := t.TempDir()
		js, in, out := filepath.Join(dir, "run.js"), filepath.Join(dir, "jobs.json"), filepath.Join(dir, "out.json")
		data, err := json.Marshal(jobs)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(in, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(js, script, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(node, js, in, out)
		cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("node run.js: %v\n%s", err, msg)
		}
		var res []map[string]Output
		if data, err = os.ReadFile(out); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &res); err != nil {
			t.Fatal(err)
		}
		return res
	}
}
