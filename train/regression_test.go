package train

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/bertnode/bertnode/hf"
	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/shard"
)

// stsPair is a synthetic sentence pair whose score is the number of positive words in
// both sentences, 0 to 4.
type stsPair struct {
	Text  string  `json:"text"`
	Pair  string  `json:"text_pair"`
	Score float64 `json:"label"`
}

// stsPairs are n such pairs drawn from seed.
func stsPairs(n int, seed uint64) []stsPair {
	positive := []string{"good", "great", "happy", "nice"}
	neutral := []string{"table", "chair", "blue", "car", "house", "river", "paper", "window", "green", "stone"}
	r := rand.New(rand.NewPCG(seed, 1))
	sentence := func(pos int) string {
		words := make([]string, 4)
		for i := range words {
			words[i] = neutral[r.IntN(len(neutral))]
		}
		for _, i := range r.Perm(len(words))[:pos] {
			words[i] = positive[r.IntN(len(positive))]
		}
		return strings.Join(words, " ")
	}
	out := make([]stsPair, n)
	for i := range out {
		a, c := r.IntN(3), r.IntN(3)
		out[i] = stsPair{sentence(a), sentence(c), float64(a + c)}
	}
	return out
}

// writeSTS writes stsPairs(n, seed) as JSON lines into dir and returns the file.
func writeSTS(t testing.TB, dir string, n int, seed uint64) string {
	t.Helper()
	var b strings.Builder
	for _, p := range stsPairs(n, seed) {
		line, _ := json.Marshal(p)
		b.Write(append(line, '\n'))
	}
	path := filepath.Join(dir, fmt.Sprintf("sts-%d.jsonl", seed))
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// stsSpec is a regression job on synthetic pairs: a random-init tiny BERT.
func stsSpec(t testing.TB) Spec {
	dir := t.TempDir()
	s := Defaults()
	s.Task = "regression"
	s.Train, s.Eval = writeSTS(t, dir, 600, 1), writeSTS(t, dir, 120, 2)
	s.Data.TextPair = "text_pair"
	s.Model = "tiny"
	s.Tokenizer = "../data/vocab/bert-base-uncased.vocab.txt"
	s.MaxLength, s.BatchSize, s.LR, s.Threads = 24, 16, 1e-3, 2
	s.Output = t.TempDir()
	return s
}

// A tiny BERT learns to count positive words across a sentence pair: Pearson > 0.9 on
// held-out pairs. The best checkpoint watched for mse is the evaluation with the lowest.
func TestTinyBERTLearnsRegression(t *testing.T) {
	runtime.LockOSThread()
	s := stsSpec(t)
	s.MaxSteps, s.EvalEvery, s.Metric = 150, 50, "mse"
	start := time.Now()
	tr, res := trainSpec(t, s)
	if tr.Labels.Len() != 1 || tr.Model.Opts.Task != model.Regression {
		t.Fatalf("%d outputs, task %s", tr.Labels.Len(), tr.Model.Opts.Task)
	}
	m := res.Best.Metrics
	t.Logf("pearson %.4f spearman %.4f mse %.4f after %d steps in %s", m["pearson"], m["spearman"], m["mse"], res.Steps, time.Since(start).Round(time.Second))
	if m["pearson"] < 0.9 {
		t.Fatalf("pearson %.4f < 0.9", m["pearson"])
	}
	lowest := math.Inf(1)
	for _, l := range metricsLines(t, s.Output) {
		if v, ok := l["eval_mse"].(float64); ok {
			lowest = min(lowest, v)
		}
	}
	if m["mse"] != lowest || res.Best.Step == 0 {
		t.Fatalf("best checkpoint's mse %v (step %d), the lowest evaluated %v", m["mse"], res.Best.Step, lowest)
	}
}

// A regression checkpoint records problem_type regression and one output named
// LABEL_0; it loads back as regression, also from a config without problem_type (a
// cross-encoder's), evaluates as the trainer did, and predicts the scorer's values.
func TestForEvalRegressionCheckpoint(t *testing.T) {
	runtime.LockOSThread()
	s := stsSpec(t)
	s.MaxSteps = 4
	tr, _ := trainSpec(t, s)
	want, err := tr.Evaluate()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "ckpt")
	if err := tr.Save(dir); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, model.ConfigFile)
	cfg, err := hf.ReadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ProblemType != "regression" || cfg.ID2Label[0] != "LABEL_0" || cfg.Label2ID["LABEL_0"] != 0 || cfg.NumLabels() != 1 ||
		len(cfg.Architectures) != 1 || cfg.Architectures[0] != "BertForSequenceClassification" {
		t.Fatalf("config: problem_type %q, id2label %v, label2id %v, architectures %v", cfg.ProblemType, cfg.ID2Label, cfg.Label2ID, cfg.Architectures)
	}
	for _, problem := range []string{"regression", ""} {
		cfg.ProblemType = problem
		if err := hf.WriteConfig(cfgPath, cfg); err != nil {
			t.Fatal(err)
		}
		es := evalSpec(tr, dir)
		es.Eval = s.Eval
		ev, err := ForEval(es, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Spec.Task != "regression" {
			t.Fatalf("problem_type %q: task %s", problem, ev.Spec.Task)
		}
		got, err := ev.Evaluate()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"mse", "rmse", "mae", "pearson", "spearman", "pearson_spearman"} {
			if got.Metrics[k] != want.Metrics[k] {
				t.Errorf("problem_type %q: %s %v, the trainer's %v", problem, k, got.Metrics[k], want.Metrics[k])
			}
		}
		// PredictScores on the eval pairs gives the values the scorer scored: their MSE.
		pairs := stsPairs(120, 2) // s.Eval's
		texts, seconds := make([]string, len(pairs)), make([]string, len(pairs))
		for i, p := range pairs {
			texts[i], seconds[i] = p.Text, p.Pair
		}
		scores, err := ev.PredictScores(texts, seconds)
		if err != nil {
			t.Fatal(err)
		}
		var mse float64
		for i, sc := range scores {
			if sc.Score == nil || sc.Scores != nil || sc.Text != texts[i] || sc.TextPair != seconds[i] {
				t.Fatalf("score %d: %+v", i, sc)
			}
			d := *sc.Score - pairs[i].Score
			mse += d * d
		}
		if mse /= float64(len(scores)); math.Abs(mse-got.Metrics["mse"]) > 1e-6*mse {
			t.Errorf("predicted scores' mse %v, Evaluate's %v", mse, got.Metrics["mse"])
		}
	}
	cfg.ProblemType = "single_label_classification"
	if ct, err := checkpointTask(cfg); err != nil || ct != "classify" {
		t.Errorf("one label marked single-label: %s, %v", ct, err)
	}
}

// A score that is not a number fails the job at its file, line and field; class
// weights are refused; the metric defaults to spearman.
func TestRegressionSpecAndDataErrors(t *testing.T) {
	s := stsSpec(t)
	data, err := os.ReadFile(s.Train)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	lines[2] = `{"text":"a good day","text_pair":"a nice car","label":"two"}` + "\n"
	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	if err := os.WriteFile(bad, []byte(strings.Join(lines, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		mod  func(*Spec)
		want string
	}{
		{func(s *Spec) { s.Train = bad }, `bad.jsonl:3 (byte `},
		{func(s *Spec) { s.Train = bad }, `field "label": want a number (a regression score), got "two"`},
		{func(s *Spec) { s.Eval = bad }, `bad.jsonl:3 (byte `},
		{func(s *Spec) { s.ClassWeights = []float32{2} }, "job spec: class_weights: regression has scores"},
		{func(s *Spec) { s.Data = shard.Spec{Format: "conll"} }, "format: conll holds tokens and tags"},
	} {
		sp := s
		c.mod(&sp)
		if _, err := Prepare(sp, io.Discard); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("got %v, want %q", err, c.want)
		}
	}
	if err := s.Validate(); err != nil || s.Metric != "spearman" || !s.Data.Scores {
		t.Fatalf("validated: %v, metric %q, scores %v", err, s.Metric, s.Data.Scores)
	}
}
