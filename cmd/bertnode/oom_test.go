package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestTrainOutOfMemoryNamesTheRemedies runs bertnode train in a process whose address
// space is capped (ulimit -v): enough to start and train a small batch, not a batch of
// 256 sequences of 512 tokens, so libtorch's CPU allocator really fails mid-step. The
// command ends with one error line naming the failed allocation and the settings that
// shrink a step, not a crash: before, gotch's ops exited the process with libtorch's
// and Go's stacks (and a cluster node was restarted into the same step, to fail again).
// bertnode eval of such a batch ends with the allocation's error line too.
func TestTrainOutOfMemoryNamesTheRemedies(t *testing.T) {
	if testing.Short() {
		t.Skip("starts bertnode twice")
	}
	dir := t.TempDir()
	words := strings.Fields("the cat sat on a mat while dogs ran far away from home today")
	lines := []string{"label\ttext"}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 280 {
		text := make([]string, 600)
		for j := range text {
			text[j] = words[r.IntN(len(words))]
		}
		lines = append(lines, fmt.Sprintf("%s\t%s", []string{"neg", "pos"}[i%2], strings.Join(text, " ")))
	}
	data := writeLines(t, dir, "long.tsv", lines...)
	exe, _ := os.Executable()
	// bertnode starts in 2-3 GB of address space (Go's reservations, libtorch,
	// OpenBLAS); a training step of 256 x 512 needs several more, an eval batch of 280
	// more than 1 GB more.
	run := func(capKB string, args ...string) (string, error) {
		cmd := exec.Command("sh", append([]string{"-c", `ulimit -v ` + capKB + ` && exec "$@"`, "sh", exe}, args...)...)
		cmd.Env = append(os.Environ(), asMain+"=1")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	trainArgs := func(batch string) []string {
		return []string{"train", "--train", data, "--eval-split", "0.1", "--model", "tiny", "--max-length", "512",
			"--batch-size", batch, "--max-steps", "1", "--output", filepath.Join(dir, "run-"+batch)}
	}
	if out, err := run("3500000", trainArgs("8")...); err != nil {
		t.Fatalf("a batch of 8 under the cap: %v\n%s", err, out)
	}
	for _, c := range []struct {
		name, capKB string
		args        []string
		want        []string
	}{
		{"train", "4500000", trainArgs("256"), []string{"does not fit in the memory of cpu", "batch_size", "max_length", "gradient_checkpointing"}},
		// eval answers it in the command line's main (execute)
		{"eval", "3500000", []string{"eval", "--model", filepath.Join(dir, "run-8", "final"), "--data", data, "--max-length", "512", "--batch-size", "280"}, nil},
	} {
		out, err := run(c.capKB, c.args...)
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Fatalf("%s, a large batch under the cap: %v, want exit status 1\n%s", c.name, err, out)
		}
		out = strings.TrimSpace(out)
		last := out[strings.LastIndexAny(out, "\n\r")+1:]
		t.Logf("%s: %s", c.name, last)
		for _, want := range append([]string{"bertnode: libtorch: ", "DefaultCPUAllocator: can't allocate memory"}, c.want...) {
			if !strings.Contains(last, want) {
				t.Errorf("%s: the error line does not name %q", c.name, want)
			}
		}
		for _, stack := range []string{"goroutine ", "frame #", "panic:", "Exception raised from"} {
			if strings.Contains(out, stack) {
				t.Errorf("%s: the output holds a stack (%q):\n%s", c.name, stack, out)
			}
		}
	}
}
