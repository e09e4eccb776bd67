package sweep

import (
	"math"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// A grid varies its last field fastest, in the order written.
func TestGridTrials(t *testing.T) {
	s, err := Parse("job: sms.yaml\ngrid:\n  lr: [0.001, 0.0003]\n  cluster.nodes: [1, 2, 3]\n")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tr := range s.Trials() {
		got = append(got, tr.String())
	}
	want := []string{"lr=0.001 cluster.nodes=1", "lr=0.001 cluster.nodes=2", "lr=0.001 cluster.nodes=3",
		"lr=0.0003 cluster.nodes=1", "lr=0.0003 cluster.nodes=2", "lr=0.0003 cluster.nodes=3"}
	if !slices.Equal(got, want) {
		t.Errorf("trials %q, want %q", got, want)
	}
}

// Random draws stay in their ranges, take every choice, repeat with the seed and
// change with it; with a grid, each grid point gets the draws.
func TestRandomTrials(t *testing.T) {
	text := "job: j.yaml\ngrid: {model: [tiny, mini]}\nrandom:\n  trials: 200\n  seed: 7\n  params:\n" +
		"    lr: {log_uniform: [1.0e-5, 1.0e-3]}\n    warmup_ratio: {uniform: [0, 0.2]}\n    batch_size: {choice: [16, 32]}\n"
	s, err := Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	trials := s.Trials()
	if len(trials) != 400 {
		t.Fatalf("%d trials, want 2 x 200", len(trials))
	}
	batches := map[any]int{}
	var logLR float64
	for i, tr := range trials {
		if m := []string{"tiny", "mini"}[i/200]; tr[0].Value != m {
			t.Fatalf("trial %d: %v, want model %s first", i, tr, m)
		}
		lr, w := tr[1].Value.(float64), tr[2].Value.(float64)
		if lr < 1e-5 || lr > 1e-3 || w < 0 || w > 0.2 {
			t.Fatalf("trial %d: %v out of range", i, tr)
		}
		if r := lr / math.Pow(10, math.Floor(math.Log10(lr))); math.Abs(r*1000-math.Round(r*1000)) > 1e-6 {
			t.Errorf("trial %d: lr %v has more than 4 significant digits", i, lr)
		}
		logLR += math.Log10(lr)
		batches[tr[3].Value]++
	}
	// Log-uniform: the mean of log10(lr) is near -4, the middle of [-5, -3].
	if m := logLR / 400; math.Abs(m+4) > 0.15 {
		t.Errorf("mean log10(lr) %.3f, want about -4", m)
	}
	if batches[16] < 150 || batches[32] < 150 {
		t.Errorf("batch sizes drawn %v, want both about 200", batches)
	}
	again, _ := Parse(text)
	if a, b := again.Trials(), trials; a[17].String() != b[17].String() {
		t.Errorf("the same seed drew %v then %v", b[17], a[17])
	}
	other, _ := Parse(strings.Replace(text, "seed: 7", "seed: 8", 1))
	if other.Trials()[17].String() == trials[17].String() {
		t.Error("another seed drew the same trial")
	}
}

// Apply sets fields in place, makes missing ones and sections, and keeps the rest.
func TestApply(t *testing.T) {
	job := "# the base\ntask: classify\nlr: 0.001 # tuned\ncluster:\n  nodes: 2\n  codec: none\n"
	got, err := Apply(job, Trial{{"lr", 0.0003}, {"cluster.nodes", 3}, {"warmup_ratio", 0.1}, {"distill.alpha", 0.5}})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal([]byte(got), &m); err != nil {
		t.Fatal(err)
	}
	cl := m["cluster"].(map[string]any)
	if m["lr"] != 0.0003 || cl["nodes"] != 3 || cl["codec"] != "none" || m["warmup_ratio"] != 0.1 ||
		m["distill"].(map[string]any)["alpha"] != 0.5 || m["task"] != "classify" {
		t.Errorf("applied:\n%s", got)
	}
	if !strings.Contains(got, "# the base") {
		t.Errorf("comments lost:\n%s", got)
	}
	if _, err := Apply(job, Trial{{"task.name", "x"}}); err == nil || !strings.Contains(err.Error(), "task.name: task (line 2) is not a mapping") {
		t.Errorf("a field under a scalar: %v", err)
	}
	if _, err := Apply("- a list\n", Trial{{"lr", 1}}); err == nil {
		t.Error("a job spec that is a list applied")
	}
}

// Bad sweep files name the field; prune: {} takes Optuna's defaults.
func TestParseErrors(t *testing.T) {
	if s, err := Parse("job: j.yaml\ngrid: {lr: [1]}\nprune: {}"); err != nil || *s.Prune != (Prune{StartupTrials: 5}) {
		t.Errorf("prune: {}: %+v, %v", s.Prune, err)
	}
	for text, want := range map[string]string{
		"grid: {lr: [1]}":                                                                "job: missing",
		"job: j.yaml":                                                                    "grid or random",
		"job: j.yaml\ngrid: {lr: []}":                                                    "grid.lr: no values",
		"job: j.yaml\ngrid: {lr: [1]}\nparallel: -1":                                     "parallel: -1",
		"job: j.yaml\ngrid: {lr: [1]}\ntrials: 3":                                        "field trials not found",
		"job: j.yaml\ngrid: {lr: 0.1}":                                                   "lr: ",
		"job: j.yaml\ngrid: {cluster.: [1]}":                                             `grid: "cluster." is not a field path`,
		"job: j.yaml\nrandom: {trials: 0, params: {lr: {uniform: [0, 1]}}}":              "random.trials: 0",
		"job: j.yaml\nrandom: {trials: 2}":                                               "random.params: no fields",
		"job: j.yaml\nrandom: {trials: 2, params: {lr: {}}}":                             "random.params.lr: want exactly one of",
		"job: j.yaml\nrandom: {trials: 2, params: {lr: {uniform: [1, 0]}}}":              "random.params.lr.uniform: want [low, high]",
		"job: j.yaml\nrandom: {trials: 2, params: {lr: {log_uniform: [0, 1]}}}":          "random.params.lr.log_uniform: low 0: must be positive",
		"job: j.yaml\nrandom: {trials: 2, params: {lr: {choice: []}}}":                   "random.params.lr.choice: no values",
		"job: j.yaml\ngrid: {lr: [1]}\nrandom: {trials: 2, params: {lr: {choice: [1]}}}": "random.params.lr: set twice",
		"job: j.yaml\ngrid: {lr: [1]}\nprune: {startup_trials: -1}":                      "prune.startup_trials: -1",
		"job: j.yaml\ngrid: {lr: [1]}\nprune: {warmup_steps: -5}":                        "prune.warmup_steps: -5",
	} {
		if _, err := Parse(text); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", text, err, want)
		}
	}
}

// The median rule: a trial stops where its best so far is worse than the median of the
// succeeded trials at the same step, once enough of them evaluated there.
func TestPruneJudge(t *testing.T) {
	higher := func(a, b float64) bool { return a > b }
	lower := func(a, b float64) bool { return a < b }
	done := [][]Point{{{10, 0.5}, {20, 0.7}}, {{10, 0.6}, {20, 0.8}}, {{10, 0.7}, {20, 0.9}}, {{10, 0.4}}, {{15, 0.9}}}
	p := Prune{StartupTrials: 3}
	for _, c := range []struct {
		curve  []Point
		better func(a, b float64) bool
		p      Prune
		median float64
		n      int
		stop   bool
	}{
		{[]Point{{10, 0.52}}, higher, p, 0.55, 4, true},                    // median of 0.4 0.5 0.6 0.7
		{[]Point{{10, 0.56}}, higher, p, 0.55, 4, false},                   // above it
		{[]Point{{10, 0.55}}, higher, p, 0.55, 4, false},                   // equal: not worse
		{[]Point{{10, 0.6}, {20, 0.75}}, higher, p, 0.8, 3, true},          // 0.7 0.8 0.9
		{[]Point{{10, 0.9}, {20, 0.6}}, higher, p, 0.8, 3, false},          // its best so far, 0.9, counts
		{[]Point{{10, 0.1}}, higher, Prune{StartupTrials: 5}, 0, 4, false}, // too few succeeded trials at step 10
		{[]Point{{10, 0.1}}, higher, Prune{StartupTrials: 3, WarmupSteps: 11}, 0, 4, false},
		{[]Point{{15, 0.1}}, higher, Prune{StartupTrials: 1}, 0.9, 1, true}, // steps match exactly
		{[]Point{{12, 0.1}}, higher, Prune{StartupTrials: 1}, 0, 0, false},  // no one evaluated at 12
		{[]Point{{10, 0.58}}, lower, p, 0.55, 4, true},                      // a loss: lower is better
		{[]Point{{10, 0.58}, {20, 0.5}}, lower, p, 0.8, 3, false},
		{nil, higher, p, 0, 0, false},
	} {
		v := c.p.Judge(c.curve, done, c.better)
		if math.Abs(v.Median-c.median) > 1e-12 || v.Trials != c.n || v.Stop != c.stop {
			t.Errorf("%v with %+v: %+v; want median %v of %d, stop %v", c.curve, c.p, v, c.median, c.n, c.stop)
		}
	}
	if v := p.Judge([]Point{{10, 0.3}, {20, 0.45}, {30, 0.4}}, done, higher); v.Best != 0.45 {
		t.Errorf("best so far %v, want 0.45", v.Best)
	}
}

// Differs reads each setting back from a spec, nested fields and numbers included.
func TestTrialDiffers(t *testing.T) {
	spec := "lr: 0.0003\ncluster:\n  nodes: 2\nmodel: tiny\n"
	for _, c := range []struct {
		trial Trial
		want  string
	}{
		{Trial{{"lr", 0.0003}, {"cluster.nodes", 2}, {"model", "tiny"}}, ""},
		{Trial{{"lr", 0.001}}, "lr: 0.0003"},
		{Trial{{"cluster.nodes", 1}}, "cluster.nodes: 2"},
		{Trial{{"warmup_ratio", 0.1}}, "warmup_ratio: <nil>"},
		{Trial{{"model.size", 1}}, "model.size: <nil>"},
	} {
		if got, err := c.trial.Differs(spec); err != nil || got != c.want {
			t.Errorf("%v: %q, %v; want %q", c.trial, got, err, c.want)
		}
	}
}
