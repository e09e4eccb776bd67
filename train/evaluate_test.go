package train

import (
	"bufio"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/hf"
	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/shard"
)

// headLines writes the first n lines of src to a file in dir.
func headLines(t *testing.T, src string, n int, dir string) string {
	t.Helper()
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b strings.Builder
	sc := bufio.NewScanner(f)
	for i := 0; i < n && sc.Scan(); i++ {
		b.WriteString(sc.Text() + "\n")
	}
	path := filepath.Join(dir, filepath.Base(src)+".head")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// savedModel prepares (without training) a tiny model on 300 SMS messages, saves it
// into a checkpoint directory and returns the trainer and the directory.
func savedModel(t *testing.T) (*Trainer, string) {
	t.Helper()
	s := smsSpec(t)
	s.Train = headLines(t, s.Train, 300, t.TempDir())
	s.Eval, s.EvalSplit = s.Train, 0
	s.BatchSize = 16
	tr, err := Prepare(s, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "ckpt")
	if err := tr.Save(dir); err != nil {
		t.Fatal(err)
	}
	return tr, dir
}

// evalSpec is what `bertnode eval` passes for a checkpoint and data file.
func evalSpec(tr *Trainer, dir string) Spec {
	s := Defaults()
	s.Model, s.Eval, s.Data = dir, tr.Spec.Eval, tr.Spec.Data
	s.MaxLength, s.BatchSize, s.Threads = tr.Spec.MaxLength, tr.Spec.BatchSize, tr.Spec.Threads
	return s
}

// A saved checkpoint evaluates exactly as the trainer that saved it, and Predict agrees
// with the scorer example by example.
func TestForEvalReproducesTrainerEvaluate(t *testing.T) {
	runtime.LockOSThread()
	tr, dir := savedModel(t)
	want, err := tr.Evaluate()
	if err != nil {
		t.Fatal(err)
	}
	ev, err := ForEval(evalSpec(tr, dir), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Spec.Task != "classify" || len(ev.Eval) != len(tr.Eval) {
		t.Fatalf("task %q, %d examples; want classify, %d", ev.Spec.Task, len(ev.Eval), len(tr.Eval))
	}
	got, err := ev.Evaluate()
	if err != nil {
		t.Fatal(err)
	}
	if got.Loss != want.Loss {
		t.Errorf("loss %v, trainer's %v", got.Loss, want.Loss)
	}
	for k, v := range want.Metrics {
		if got.Metrics[k] != v {
			t.Errorf("%s: %v, trainer's %v", k, got.Metrics[k], v)
		}
	}
	if g, w := got.Confusion.Table(), want.Confusion.Table(); g != w {
		t.Errorf("confusion\n%s\ntrainer's\n%s", g, w)
	}

	texts := make([]string, len(ev.Eval))
	for i, e := range ev.Eval {
		texts[i] = e.Text
	}
	preds, err := ev.Predict(texts, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	mistakes := map[string]float64{}
	for _, m := range got.Mistakes {
		mistakes[m.Text+"\x00"+m.Pred] = m.Confidence
	}
	names, right := ev.Labels.Names(), 0
	for i, p := range preds {
		var sum float64
		for _, v := range p.Probs {
			sum += v
		}
		if math.Abs(sum-1) > 1e-9 || p.Text != texts[i] || len(p.Labels) != 1 || p.Labels[0] != p.Label {
			t.Fatalf("prediction %d: %+v", i, p)
		}
		if p.Label == names[ev.Eval[i].Label] {
			right++
		} else if c, ok := mistakes[p.Text+"\x00"+p.Label]; !ok || math.Abs(c-p.Probs[p.Label]) > 1e-6 {
			t.Fatalf("prediction %d: %s with %v; the scorer's mistake: %v (found %v)", i, p.Label, p.Probs[p.Label], c, ok)
		}
	}
	if acc := float64(right) / float64(len(preds)); acc != got.Metrics["accuracy"] {
		t.Errorf("Predict's accuracy %v, Evaluate's %v", acc, got.Metrics["accuracy"])
	}
}

// The task of a checkpoint comes from its config: problem_type marks multi-label
// classification, whose predictions are independent sigmoids cut at the threshold.
func TestForEvalMultiLabelCheckpoint(t *testing.T) {
	runtime.LockOSThread()
	dir := t.TempDir()
	data := filepath.Join(dir, "tags.jsonl")
	lines := []string{
		`{"text": "cheap flights to paris", "label": ["travel", "deals"]}`,
		`{"text": "the match ended in a draw", "label": ["sport"]}`,
		`{"text": "discount tickets for the final", "label": ["sport", "deals"]}`,
		`{"text": "hotels near the beach", "label": ["travel"]}`,
	}
	os.WriteFile(data, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	s := smsSpec(t)
	s.Task, s.Train, s.Eval, s.EvalSplit, s.Data = "multilabel", data, data, 0, shard.Spec{}
	tr, err := Prepare(s, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(dir, "ckpt")
	if err := tr.Save(ckpt); err != nil {
		t.Fatal(err)
	}
	ev, err := ForEval(evalSpec(tr, ckpt), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Spec.Task != "multilabel" {
		t.Fatalf("task %q, want multilabel", ev.Spec.Task)
	}
	res, err := ev.Evaluate()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := res.Metrics["subset_accuracy"]; !ok || len(res.Report.PerClass) != 3 {
		t.Errorf("multi-label result: %v, %d classes", res.Names(), len(res.Report.PerClass))
	}
	for _, th := range []float64{0, 0.5, 1} {
		preds, err := ev.Predict([]string{"cheap hotels", "a draw"}, th)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range preds {
			var want []string
			for _, name := range ev.Labels.Names() {
				if v := p.Probs[name]; !(v > 0 && v < 1) {
					t.Fatalf("%s: probability %v", name, v)
				} else if v >= th {
					want = append(want, name)
				}
			}
			if strings.Join(p.Labels, ",") != strings.Join(want, ",") || p.Label != "" || th == 0 && len(p.Labels) != 3 {
				t.Errorf("threshold %v: %+v", th, p)
			}
		}
	}
}

func TestForEvalErrorsNameThePlace(t *testing.T) {
	runtime.LockOSThread()
	tr, dir := savedModel(t)
	tmp := t.TempDir()
	badLabel := filepath.Join(tmp, "eval.txt")
	os.WriteFile(badLabel, []byte("ham\thello\nspam\twin cash\neggs\tsome text\n"), 0o644)
	pretraining := filepath.Join(tmp, "mlm")
	os.MkdirAll(pretraining, 0o755)
	cfg, err := hf.ReadConfig(filepath.Join(dir, model.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	noWeights := filepath.Join(tmp, "noweights")
	os.MkdirAll(noWeights, 0o755)
	if err := hf.WriteConfig(filepath.Join(noWeights, model.ConfigFile), cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Architectures = []string{"BertForPreTraining"}
	if err := hf.WriteConfig(filepath.Join(pretraining, model.ConfigFile), cfg); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		mod  func(*Spec)
		want []string
	}{
		"missing dir":   {func(s *Spec) { s.Model = filepath.Join(tmp, "nope") }, []string{"model directory", "nope", "no such file"}},
		"file as dir":   {func(s *Spec) { s.Model = badLabel }, []string{"eval.txt is a file"}},
		"unknown label": {func(s *Spec) { s.Eval = badLabel }, []string{"eval.txt:3", "label", `"eggs"`}},
		"empty data":    {func(s *Spec) { s.Eval = filepath.Join(tmp, "empty.txt"); os.WriteFile(s.Eval, nil, 0o644) }, []string{"empty.txt", "empty file"}},
		"pretraining":   {func(s *Spec) { s.Model = pretraining }, []string{"config.json", "architectures", "BertForPreTraining"}},
		"no weights":    {func(s *Spec) { s.Model = noWeights; s.Tokenizer = smsSpec(t).Tokenizer }, []string{"noweights", "no model.safetensors"}},
		"no tokenizer":  {func(s *Spec) { s.Model = noWeights }, []string{"noweights", "no tokenizer.json, vocab.txt"}},
		"max length":    {func(s *Spec) { s.MaxLength = 1024 }, []string{"max_length", "1024", "512"}},
	} {
		s := evalSpec(tr, dir)
		c.mod(&s)
		_, err := ForEval(s, io.Discard)
		for _, w := range c.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: got %v, want it to name %q", name, err, w)
			}
		}
	}
}

// On CUDA a checkpoint scores and attends as on the CPU.
func TestCUDAForEvalMatchesCPU(t *testing.T) {
	runtime.LockOSThread()
	if _, err := model.ParseDevice("cuda"); err != nil {
		t.Skip(err) // CI has no GPU; scripts/gpu-check.sh runs this on one
	}
	tr, dir := savedModel(t)
	s := evalSpec(tr, dir)
	s.TF32 = false // full float32 on the GPU, to compare within 1e-4
	results := map[string]EvalResult{}
	attention := map[string][][][][]float32{}
	for _, dev := range []string{"cpu", "cuda"} {
		s.Device = dev
		ev, err := ForEval(s, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if results[dev], err = ev.Evaluate(); err != nil {
			t.Fatal(err)
		}
		if _, attention[dev], err = ev.Attention("Free entry to win a prize"); err != nil {
			t.Fatal(err)
		}
	}
	c, g := results["cpu"], results["cuda"]
	if math.Abs(c.Loss-g.Loss) > 1e-4 || math.Abs(c.Metrics["accuracy"]-g.Metrics["accuracy"]) > 1.5/float64(len(tr.Eval)) {
		t.Errorf("cuda: loss %v accuracy %v; cpu: %v, %v", g.Loss, g.Metrics["accuracy"], c.Loss, c.Metrics["accuracy"])
	}
	for l, layer := range attention["cpu"] {
		for h, head := range layer {
			for i, row := range head {
				for j, v := range row {
					if d := math.Abs(float64(v - attention["cuda"][l][h][i][j])); d > 1e-4 {
						t.Fatalf("attention [%d][%d][%d][%d]: cpu %v cuda %v", l, h, i, j, v, attention["cuda"][l][h][i][j])
					}
				}
			}
		}
	}
}

// NER and QA checkpoints evaluate through their own scorers as their trainers did: the
// task comes from the architecture that Save recorded.
func TestForEvalTokenAndSpanTasks(t *testing.T) {
	runtime.LockOSThread()
	dir := t.TempDir()
	conll := filepath.Join(dir, "ner.conll")
	os.WriteFile(conll, []byte("EU B-ORG\nrejects O\nGerman B-MISC\ncall O\n\nPeter B-PER\nBlackburn I-PER\nin O\nBrussels B-LOC\n"), 0o644)
	squad := filepath.Join(dir, "qa.json")
	os.WriteFile(squad, []byte(`{"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": "The Eiffel Tower is in Paris and was built in 1889.",
		"qas": [{"id": "q1", "question": "Where is the tower?", "answers": [{"text": "Paris", "answer_start": 23}]},
		        {"id": "q2", "question": "When was it built?", "answers": [{"text": "1889", "answer_start": 46}]}]}]}]}`), 0o644)
	for _, c := range []struct {
		task, file string
		data       shard.Spec
	}{{"ner", conll, shard.Spec{Format: shard.CoNLL}}, {"qa", squad, shard.Spec{Format: shard.SQuAD}}} {
		s := smsSpec(t)
		s.Task, s.Train, s.Eval, s.EvalSplit, s.Data = c.task, c.file, c.file, 0, c.data
		tr, err := Prepare(s, io.Discard)
		if err != nil {
			t.Fatalf("%s: %v", c.task, err)
		}
		want, err := tr.Evaluate()
		if err != nil {
			t.Fatal(err)
		}
		ckpt := filepath.Join(dir, c.task)
		if err := tr.Save(ckpt); err != nil {
			t.Fatal(err)
		}
		ev, err := ForEval(evalSpec(tr, ckpt), io.Discard)
		if err != nil {
			t.Fatalf("%s: %v", c.task, err)
		}
		got, err := ev.Evaluate()
		if err != nil {
			t.Fatal(err)
		}
		if ev.Spec.Task != c.task || len(got.Metrics) == 0 || got.Loss != want.Loss {
			t.Errorf("%s: task %q, loss %v (trainer's %v), metrics %v", c.task, ev.Spec.Task, got.Loss, want.Loss, got.Metrics)
		}
		for k, v := range want.Metrics {
			if got.Metrics[k] != v {
				t.Errorf("%s: %s = %v, trainer's %v", c.task, k, got.Metrics[k], v)
			}
		}
	}
}
