package ddpbench

import (
	"bytes"
	"context"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/allreduce/ringbench"
	"github.com/bertnode/bertnode/data"
	"github.com/bertnode/bertnode/hf"
	"github.com/bertnode/bertnode/internal/nativeenv"
	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/tokenize"
)

// TestMain lets Run start this test binary as its rank processes.
func TestMain(m *testing.M) {
	if IsWorker() {
		if err := Worker(context.Background(), os.Stdout); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	nativeenv.Ensure()
	os.Exit(m.Run())
}

// TestRunTwoRanks trains tiny BERT in two rank processes over the real ring and
// checks the summary: every kind of step timed, the ranks' weights identical after
// the node steps of the warm-up, the model the script's. The warm-up alternates
// overlapped and plain node steps, and ends with the same weights, bit for bit, as a
// run whose warm-up all-reduces after backward only, over TCP.
func TestRunTwoRanks(t *testing.T) {
	o := Options{Ranks: 2, Configs: []string{"tiny"}, Batch: 2, Seq: 16, Threads: 1, Warmup: 3, Steps: 2, NoSync: -1,
		Overlap: true, Timeout: DefaultTimeout}
	res, err := Run(context.Background(), o, []string{os.Args[0], "-test.run=^$"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 {
		t.Fatalf("%d results, want 1", len(res))
	}
	r := res[0]
	if r.Params != torchParams["tiny"] || r.GradBytes != 4*int64(r.Params) {
		t.Errorf("tiny: %d parameters, %d gradient bytes; the script's model has %d", r.Params, r.GradBytes, torchParams["tiny"])
	}
	if r.WeightsAgree == nil || !*r.WeightsAgree {
		t.Errorf("weights_agree %s, want true: the ring must leave both ranks the same model", agreeString(r.WeightsAgree))
	}
	if len(r.StepTimes) != 2 || len(r.NoSyncStepTimes) != 2 || len(r.OverlapStepTimes) != 2 || r.NoSyncSteps != 2 || r.OverlapSteps != 2 {
		t.Errorf("steps timed: %d node, %d compute-only, %d overlapped; want 2 each", len(r.StepTimes), len(r.NoSyncStepTimes), len(r.OverlapStepTimes))
	}
	if r.StepOverlapMedian <= 0 || r.ComputeOverlapMedian <= 0 || r.EarlyMedian < 0 || r.EarlyMedian > 1 || r.LeadMedian < 0 {
		t.Errorf("inconsistent overlapped timings %+v", r)
	}
	if r.StepMedian <= 0 || r.ComputeMedian <= 0 || r.CommMedian <= 0 || r.OptMedian <= 0 ||
		r.StepMedian < r.ComputeMedian || r.SamplesPerS != 4/r.StepMedian {
		t.Errorf("inconsistent timings %+v", r)
	}
	if math.IsNaN(r.LossFirst) || r.LossFirst <= 0 || r.LossLast <= 0 {
		t.Errorf("loss %v -> %v", r.LossFirst, r.LossLast)
	}
	if r.Transport != "shm" && r.Transport != "tcp-loopback" {
		t.Errorf("transport %q: want the ring's own, shm or tcp-loopback", r.Transport)
	}
	// Over TCP, which reduces to the same bits as shared memory.
	plain := o
	plain.Overlap, plain.Steps, plain.NoSync, plain.TCP = false, 1, 0, true
	pres, err := Run(context.Background(), plain, []string{os.Args[0], "-test.run=^$"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pres) != 1 || pres[0].Weights == 0 || pres[0].Weights != r.Weights {
		t.Errorf("weights after the warm-up: checksum %08x with overlapped steps (%s), %08x without (%s); want equal", r.Weights, r.Transport, pres[0].Weights, pres[0].Transport)
	}
	if pres[0].Transport != "tcp-loopback" {
		t.Errorf("transport %q with Options.TCP, want tcp-loopback", pres[0].Transport)
	}
	var out bytes.Buffer
	if err := Report(&out, res, true); err != nil {
		t.Fatal(err)
	}
	back, err := ReadResults(&out, &bytes.Buffer{})
	if err != nil || len(back) != 1 || back[0].Params != r.Params || back[0].StepMedian != r.StepMedian {
		t.Errorf("the report's JSON line reads back as %+v (%v)", back, err)
	}
}

func TestOptionsRejected(t *testing.T) {
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{Ranks: 2, Configs: []string{"huge"}, Batch: 1, Seq: 16, Steps: 1}, "huge"},
		{Options{Ranks: 2, Configs: []string{"roberta-tiny"}, Batch: 1, Seq: 16, Steps: 1}, "roberta-tiny"},
		{Options{Ranks: 2, Configs: []string{"tiny"}, Batch: 1, Seq: 4, Steps: 1}, "--seq 4"},
		{Options{Ranks: 0, Configs: []string{"tiny"}, Batch: 1, Seq: 16, Steps: 1}, "--nprocs 0"},
		{Options{Ranks: 2, Configs: []string{"tiny"}, Batch: 0, Seq: 16, Steps: 1}, "--batch 0"},
	} {
		if _, err := Run(context.Background(), c.o, []string{os.Args[0], "-test.run=^$"}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err = %v, want it to name %q", c.o, err, c.want)
		}
	}
}

// TestRecords: every sequence is exactly seq tokens of the vocabulary, none unknown,
// so the batch is B x seq as the script's; ranks draw different batches.
func TestRecords(t *testing.T) {
	v, err := tokenize.NewVocab(data.UncasedVocab())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenize.New(v, tokenize.BertConfig(true))
	if err != nil {
		t.Fatal(err)
	}
	unk, _ := v.ID("[UNK]")
	a, b := Records(4, 128, 0), Records(4, 128, 1)
	for i, r := range a {
		enc, err := tok.Encode(r.Text, 512)
		if err != nil {
			t.Fatal(err)
		}
		if enc.Len() != 128 {
			t.Errorf("record %d: %d tokens, want 128", i, enc.Len())
		}
		for _, id := range enc.InputIDs {
			if id == unk {
				t.Errorf("record %d has an unknown token", i)
				break
			}
		}
		if r.Labels[0] != "0" && r.Labels[0] != "1" {
			t.Errorf("record %d: label %q", i, r.Labels[0])
		}
		if r.Text == b[i].Text {
			t.Errorf("record %d: ranks 0 and 1 drew the same text", i)
		}
	}
	if again := Records(4, 128, 0); again[3].Text != a[3].Text {
		t.Error("the batch is not fixed: two draws differ")
	}
}

// torchParams are the parameter counts of bert_step_torch.py's configs (its
// BertClassifier, 2 labels), as the script reports them.
var torchParams = map[string]int{"tiny": 4386178, "mini": 11171074, "small": 28764674, "base": 109483778}

// TestPresetsMatchTorchConfigs: the presets are the script's configs (layers, width,
// heads, intermediate, vocabulary), with its parameter count, and the flat layout
// puts the embedding tables last, where backward finishes them.
func TestPresetsMatchTorchConfigs(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	torchConfigs := map[string][4]int{"tiny": {2, 128, 2, 512}, "mini": {4, 256, 4, 1024}, "small": {4, 512, 8, 2048}, "base": {12, 768, 12, 3072}}
	for name, want := range torchConfigs {
		c := mustPreset(t, name)
		if got := [4]int{c.NumHiddenLayers, c.HiddenSize, c.NumAttentionHeads, c.IntermediateSize}; got != want || c.VocabSize != 30522 ||
			c.MaxPositionEmbeddings != 512 || c.TypeVocabSize != 2 || c.HiddenAct != "gelu" || c.LayerNormEps != 1e-12 || c.HiddenDropoutProb != 0.1 {
			t.Errorf("%s: preset %+v, want layers/hidden/heads/intermediate %v, vocab 30522, 512 positions, 2 types, gelu, eps 1e-12, dropout 0.1", name, c, want)
		}
	}
	for _, name := range []string{"tiny", "mini"} { // small and base take too much memory for a test
		m, err := model.New(mustPreset(t, name), model.Options{Task: model.Classify, NumLabels: 2})
		if err != nil {
			t.Fatal(err)
		}
		total, trainable := m.Params.Count()
		if total != int64(torchParams[name]) || trainable != total {
			t.Errorf("%s: %d parameters (%d trainable), the script's model %d", name, total, trainable, torchParams[name])
		}
		list := m.Params.List()
		for _, p := range list[len(list)-3:] {
			if !strings.HasPrefix(p.Name, "bert.embeddings.") || !strings.HasSuffix(p.Name, "_embeddings.weight") {
				t.Errorf("%s: %s is among the last three parameters of the flat buffer, want the embedding tables", name, p.Name)
			}
		}
	}
}

// TestCompare reads the script's real output (testdata/torch_tiny.out: its table, then
// its JSON line) and compares it with a bertnode row of the same shape.
func TestCompare(t *testing.T) {
	f, err := os.Open("testdata/torch_tiny.out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var table bytes.Buffer
	torch, err := ReadResults(f, &table)
	if err != nil || len(torch) != 1 {
		t.Fatalf("%d torch rows (%v), want 1", len(torch), err)
	}
	tr := torch[0]
	if tr.Bench != TorchBenchName || tr.Config != "tiny" || tr.WorldSize != 2 || tr.BatchPerRank != 2 || tr.Threads != 1 ||
		tr.Params != torchParams["tiny"] || len(tr.StepTimes) != 2 || len(tr.NoSyncStepTimes) != 2 {
		t.Fatalf("torch row decoded as %+v", tr)
	}
	if !strings.Contains(table.String(), "DDP(gloo)") || strings.Contains(table.String(), "{") {
		t.Errorf("the script's table, without its JSON, should pass through: %q", table.String())
	}
	ours := tr
	ours.Bench = BenchName
	ours.StepTimes = []float64{tr.StepTimes[0] / 2, tr.StepTimes[1] / 2} // twice as fast
	ours.NoSyncStepTimes = []float64{0.1, 0.1}
	ours.SamplesPerS = tr.SamplesPerS * 2
	var out bytes.Buffer
	if err := Compare(&out, torch, []Result{ours}); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	if !strings.Contains(s, " 2.00x") || strings.Contains(s, "differ") {
		t.Errorf("want a 2.00x ratio and no model difference:\n%s", s)
	}
	// the paired overhead: steps minus the compute-only steps after them
	if want := ms(ringbench.Median([]float64{tr.StepTimes[0]/2 - 0.1, tr.StepTimes[1]/2 - 0.1})); !strings.Contains(s, " "+want+" ") {
		t.Errorf("want bertnode's paired communication overhead %s ms:\n%s", want, s)
	}
	ours.Params++
	out.Reset()
	Compare(&out, torch, []Result{ours})
	if !strings.Contains(out.String(), "! tiny: the models differ") {
		t.Errorf("a parameter count that differs must be flagged:\n%s", out.String())
	}
}

func mustPreset(t *testing.T, name string) *hf.BertConfig {
	t.Helper()
	c, err := hf.Preset(name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestTorchRun runs the real PyTorch script through the CPU-recording wrapper, where
// torch and the shared bench directory are installed.
func TestTorchRun(t *testing.T) {
	script := "../../../shared/bench/ddp_bert_gloo.py"
	if _, err := os.Stat(script); err != nil {
		t.Skipf("no %s", script)
	}
	if err := exec.Command("/usr/bin/python3", "-c", "import torch").Run(); err != nil {
		t.Skip("/usr/bin/python3 has no torch (apt-get install python3-torch)")
	}
	if testing.Short() {
		t.Skip("-short: PyTorch DDP takes a while")
	}
	o := Options{Ranks: 2, Configs: []string{"tiny"}, Batch: 2, Seq: 16, Threads: 1, Warmup: 1, Steps: 2, NoSync: 1}
	o.Defaults()
	var table bytes.Buffer
	res, err := Torch{Python: "/usr/bin/python3", Script: script}.Run(context.Background(), o, &table)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 {
		t.Fatalf("%d rows, want 1", len(res))
	}
	r := res[0]
	if r.Bench != TorchBenchName || r.Params != torchParams["tiny"] || len(r.StepTimes) != 2 || len(r.NoSyncStepTimes) != 1 {
		t.Errorf("row %+v", r)
	}
	// A step's CPU time is at most its wall time times the threads that can run
	// (the rank's torch thread and gloo's), and not nothing.
	if r.CPUMedian <= 0 || r.CPUNoSyncMedian <= 0 || r.CPUMedian > 4*r.StepMedian {
		t.Errorf("CPU per step %v (compute-only %v) for a %v s step", r.CPUMedian, r.CPUNoSyncMedian, r.StepMedian)
	}
	if !strings.Contains(table.String(), "DDP(gloo)") {
		t.Errorf("no table from the script: %q", table.String())
	}
}

// The torch ranks get the same threads for OpenBLAS as for torch, unless the caller's
// environment says otherwise, and gloo the loopback interface.
func TestTorchEnv(t *testing.T) {
	o := Options{Threads: 3}
	env := torchEnv(o, []string{"PATH=/bin", "GLOO_SOCKET_IFNAME=eth1"})
	for _, want := range []string{"PATH=/bin", "GLOO_SOCKET_IFNAME=eth1", "OMP_WAIT_POLICY=passive", "OPENBLAS_NUM_THREADS=3"} {
		if !slices.Contains(env, want) {
			t.Errorf("env %v lacks %s", env, want)
		}
	}
	if slices.Contains(env, "GLOO_SOCKET_IFNAME=lo") {
		t.Errorf("env %v overrides the caller's GLOO_SOCKET_IFNAME", env)
	}
	if env := torchEnv(o, []string{"OPENBLAS_NUM_THREADS=1"}); slices.Contains(env, "OPENBLAS_NUM_THREADS=3") {
		t.Errorf("env %v overrides the caller's OPENBLAS_NUM_THREADS", env)
	}
}
