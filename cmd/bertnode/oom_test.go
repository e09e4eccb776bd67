package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/train"
)

// longTexts writes n labeled texts of 600 words (512 tokens each at max_length 512)
// into dir.
func longTexts(t *testing.T, dir string, n int) string {
	words := strings.Fields("the cat sat on a mat while dogs ran far away from home today")
	lines := []string{"label\ttext"}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range n {
		text := make([]string, 600)
		for j := range text {
			text[j] = words[r.IntN(len(words))]
		}
		lines = append(lines, fmt.Sprintf("%s\t%s", []string{"neg", "pos"}[i%2], strings.Join(text, " ")))
	}
	return writeLines(t, dir, "long.tsv", lines...)
}

// capped runs bertnode (this test binary as main) in a process whose address space is
// capped at capKB (ulimit -v; "" for none). bertnode starts in 2-3 GB of address space
// (Go's reservations, libtorch, OpenBLAS); a training step of 256 x 512 needs several
// more, an eval batch of 280 more than 1 GB more.
func capped(capKB string, args ...string) (string, error) {
	exe, _ := os.Executable()
	script := `exec "$@"`
	if capKB != "" {
		script = `ulimit -v ` + capKB + ` && ` + script
	}
	cmd := exec.Command("sh", append([]string{"-c", script, "sh", exe}, args...)...)
	// The cap counts address space, and glibc reserves 64 MB of it for each thread's
	// heap (arena): on many threads it ran out for those rather than for tensors (a
	// cluster node under such a cap went down to micro-batches of 4 where 128 fit).
	cmd.Env = append(os.Environ(), asMain+"=1", "MALLOC_ARENA_MAX=2")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// trainLong is bertnode train's arguments for one step over data at max_length 512,
// into dir/name.
func trainLong(data, dir, name string, batch, accum int, extra ...string) []string {
	return append([]string{"train", "--train", data, "--eval-split", "0.1", "--model", "tiny", "--max-length", "512",
		"--batch-size", fmt.Sprint(batch), "--grad-accum", fmt.Sprint(accum), "--max-steps", "1",
		"--output", filepath.Join(dir, name)}, extra...)
}

// TestTrainOutOfMemoryNamesTheRemedies runs bertnode train in a process whose address
// space is capped (ulimit -v): enough to start and train a small batch, not a batch of
// 256 sequences of 512 tokens, so libtorch's CPU allocator really fails mid-step. The
// command ends with one error line naming the failed allocation and the settings that
// shrink a step, not a crash: before, gotch's ops exited the process with libtorch's
// and Go's stacks (and a cluster node was restarted into the same step, to fail again).
// bertnode eval of such a batch ends with the allocation's error line too.
func TestTrainOutOfMemoryNamesTheRemedies(t *testing.T) {
	if testing.Short() {
		t.Skip("starts bertnode three times")
	}
	dir := t.TempDir()
	data := longTexts(t, dir, 280)
	if out, err := capped("3500000", trainLong(data, dir, "run-8", 8, 1)...); err != nil {
		t.Fatalf("a batch of 8 under the cap: %v\n%s", err, out)
	}
	for _, c := range []struct {
		name, capKB string
		args        []string
		want        []string
	}{
		{"train", "4500000", trainLong(data, dir, "run-256", 256, 1), []string{"does not fit in the memory of cpu", "batch_size", "max_length", "auto_micro_batch", "gradient_checkpointing"}},
		// eval answers it in the command line's main (execute)
		{"eval", "3500000", []string{"eval", "--model", filepath.Join(dir, "run-8", "final"), "--data", data, "--max-length", "512", "--batch-size", "280"}, nil},
	} {
		out, err := capped(c.capKB, c.args...)
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

// TestAutoMicroBatchTakesTheStepAgain: with --auto-micro-batch, a step of two
// micro-batches of 256 whose second runs out of memory under the cap (its texts are
// 512 tokens long; the first's are short, and fit) is taken again in micro-batches
// half as large, and the run ends. Its step is the one a run configured with those
// micro-batches from the start takes (the batch the same, accumulated): the same loss
// and gradient norm, bit for bit, so the first micro-batch's gradient, added before
// the failure, was cleared.
func TestAutoMicroBatchTakesTheStepAgain(t *testing.T) {
	if testing.Short() {
		t.Skip("starts bertnode twice")
	}
	dir := t.TempDir()
	data := longTexts(t, dir, 600)
	// The step's first micro-batch: the first 256 records of the epoch's order.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	s := train.Defaults()
	s.Train, s.EvalSplit, s.Data, s.Model = data, 0.1, shard.Spec{Format: shard.TSV}, "tiny"
	s.MaxLength, s.BatchSize, s.GradAccum, s.MaxSteps, s.Output = 512, 256, 2, 1, filepath.Join(dir, "plan")
	tr, err := train.Prepare(s, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	first := map[string]bool{}
	for _, id := range tr.Plan.Order(s.Seed, 0, s.Cluster.WithDefaults().WindowBlocks)[:256] {
		first[tr.Records[id].Text] = true
	}
	lines := readLines(t, data)
	for i, l := range lines[1:] {
		if label, text, _ := strings.Cut(l, "\t"); first[text] {
			lines[i+1] = label + "\t" + strings.Join(strings.Fields(text)[:20], " ")
		}
	}
	writeLines(t, dir, "long.tsv", lines...)

	out, err := capped("4500000", trainLong(data, dir, "auto", 256, 2, "--auto-micro-batch")...)
	if err != nil {
		t.Fatalf("under the cap with --auto-micro-batch: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`out of memory in micro-batches of (\d+) on cpu: micro-batches of (\d+) from now on`).FindAllStringSubmatch(out, -1)
	if len(m) == 0 || m[0][1] != "256" {
		t.Fatalf("no step taken again from micro-batches of 256:\n%s", out)
	}
	micro := 0
	fmt.Sscan(m[len(m)-1][2], &micro)
	t.Logf("%d times out of memory; micro-batches of %d", len(m), micro)
	if out, err := capped("", trainLong(data, dir, "accum", micro, 512/micro)...); err != nil {
		t.Fatalf("micro-batches of %d, accumulated: %v\n%s", micro, err, out)
	}
	step := func(name string) (v struct{ Loss, GradNorm float64 }) {
		b, err := os.ReadFile(filepath.Join(dir, name, "metrics.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		var raw map[string]float64
		if err := json.Unmarshal([]byte(line), &raw); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		v.Loss, v.GradNorm = raw["loss"], raw["grad_norm"]
		return v
	}
	if a, b := step("auto"), step("accum"); a != b || a.Loss == 0 {
		t.Fatalf("the step taken again: %+v; configured so from the start: %+v", a, b)
	}
}

// TestServeSplitsABatchOutOfMemory serves a model from a process whose address space
// is capped, so that one batch of 256 texts of 512 tokens runs out of memory in
// libtorch for real. The request is answered all the same, the batch run again in
// halves (bertnode_serve_batch_splits_total), each text as it is answered alone.
func TestServeSplitsABatchOutOfMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("starts bertnode serve")
	}
	m := trainedSMS(t)
	texts := readLines(t, longTexts(t, t.TempDir(), 256))[1:]
	for i, l := range texts {
		_, texts[i], _ = strings.Cut(l, "\t")
	}
	exe, _ := os.Executable()
	cmd := exec.Command("sh", "-c", `ulimit -v 3500000 && exec "$@"`, "sh", exe, "serve", "--model", m.dir,
		"--addr", "127.0.0.1:0", "--max-length", "512", "--max-batch", "256", "--max-batch-tokens", "131072",
		"--max-texts", "256", "--max-body-bytes", "8000000", "--min-fill", "0")
	cmd.Env = append(os.Environ(), asMain+"=1", "MALLOC_ARENA_MAX=2")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Signal(syscall.SIGTERM)
	sc := bufio.NewScanner(stderr)
	url := ""
	for url == "" && sc.Scan() {
		if _, u, ok := strings.Cut(sc.Text(), " on http://"); ok && strings.HasPrefix(sc.Text(), "serving ") {
			url = "http://" + u
		}
	}
	if url == "" {
		t.Fatal("bertnode serve did not start")
	}
	go io.Copy(io.Discard, stderr)
	var all, alone struct{ Predictions []train.Prediction }
	postJSON(t, url+"/v1/classify", map[string]any{"texts": texts}, &all)
	metrics, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(metrics.Body)
	metrics.Body.Close()
	splits := regexp.MustCompile(`(?m)^bertnode_serve_batch_splits_total (\S+)$`).FindStringSubmatch(string(b))
	if splits == nil || splits[1] == "0" {
		t.Fatalf("batch_splits_total %v: the batch of 256 did not run out of memory (the cap is too high?)", splits)
	}
	t.Logf("batch_splits_total %s", splits[1])
	for _, i := range []int{0, 255} {
		postJSON(t, url+"/v1/classify", map[string]any{"texts": texts[i : i+1]}, &alone)
		p, w := all.Predictions[i], alone.Predictions[0]
		if p.Label != w.Label || math.Abs(p.Probs[p.Label]-w.Probs[w.Label]) > 1e-5 {
			t.Errorf("text %d in the split batch: %+v; alone: %+v", i, p, w)
		}
	}
}
