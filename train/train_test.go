package train

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/internal/nativeenv"
	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/shard"
)

func TestMain(m *testing.M) {
	nativeenv.Ensure()
	os.Exit(m.Run())
}

// smsSpec is the demo's job: a random-init tiny BERT on the SMS spam data in the repo.
func smsSpec(t *testing.T) Spec {
	s := Defaults()
	s.Train = "../data/sms_spam/SMSSpamCollection"
	s.Data = shard.Spec{Format: "labeltext", Delimiter: "\t"}
	s.EvalSplit = 0.2
	s.Model = "tiny"
	s.Tokenizer = "../data/vocab/bert-base-uncased.vocab.txt"
	s.MaxLength = 64
	s.LR = 1e-3
	s.Threads = 2
	s.Metric = "f1_spam"
	s.Output = t.TempDir()
	return s
}

// trainSpec prepares s and trains it to the end.
func trainSpec(t *testing.T, s Spec) (*Trainer, *Result) {
	t.Helper()
	tr, err := Prepare(s, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	res, err := tr.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return tr, res
}

// A tiny random-init BERT must learn SMS spam: spam-F1 >= 0.90 on the held-out fifth.
func TestTinyBERTLearnsSMSSpam(t *testing.T) {
	runtime.LockOSThread()
	s := smsSpec(t)
	s.Epochs = 1.5
	start := time.Now()
	_, res := trainSpec(t, s)
	f1 := res.Best.Metrics["f1_spam"]
	t.Logf("spam F1 %.4f (accuracy %.4f) after %d steps in %s", f1, res.Best.Metrics["accuracy"], res.Steps, time.Since(start).Round(time.Second))
	if f1 < 0.90 {
		t.Fatalf("spam F1 %.4f < 0.90", f1)
	}
	for _, f := range []string{"metrics.jsonl", "curves.png", "confusion.png", "best/config.json", "best/model.safetensors", "best/vocab.txt", "final/model.safetensors"} {
		if _, err := os.Stat(filepath.Join(s.Output, f)); err != nil {
			t.Errorf("output: %v", err)
		}
	}
}

func TestSpecErrorsNameTheField(t *testing.T) {
	nan := math.NaN()
	for _, c := range []struct {
		field string
		mod   func(*Spec)
	}{
		{"task", func(s *Spec) { s.Task = "translate" }},
		{"train", func(s *Spec) { s.Train = "" }},
		{"max_length", func(s *Spec) { s.MaxLength = 100000 }},
		{"padding", func(s *Spec) { s.Padding = "left" }},
		{"schedule", func(s *Spec) { s.Schedule = "step" }},
		{"eval_split", func(s *Spec) { s.EvalSplit = 1.5 }},
		{"optimizer", func(s *Spec) { s.Optimizer = "adam" }},
		{"momentum", func(s *Spec) { s.Optimizer, s.Momentum = "sgd", 1 }},
		{"nesterov", func(s *Spec) { s.Nesterov = true }}, // adamw
		{"report_to", func(s *Spec) { s.ReportTo = []string{"wandb"} }},
		// NaN fails every comparison, so each float's check must be written to catch it.
		{"eval_split", func(s *Spec) { s.EvalSplit = nan }},
		{"epochs", func(s *Spec) { s.Epochs = nan }},
		{"epochs", func(s *Spec) { s.Epochs = math.Inf(1) }},
		{"lr", func(s *Spec) { s.LR = nan }},
		{"lr", func(s *Spec) { s.LR = math.Inf(1) }},
		{"warmup_ratio", func(s *Spec) { s.WarmupRatio = nan }},
		{"warmup_steps", func(s *Spec) { s.WarmupSteps = -1 }},
		{"cluster.codec", func(s *Spec) { s.Autocast, s.Cluster.Codec = "fp16", "powersgd" }},
		{"adam_beta1", func(s *Spec) { s.AdamBeta1 = 1 }},
		{"adam_beta1", func(s *Spec) { s.AdamBeta1 = nan }},
		{"adam_beta1", func(s *Spec) { s.Optimizer, s.AdamBeta1 = "sgd", 0.8 }},
		{"adam_beta2", func(s *Spec) { s.AdamBeta2 = -0.5 }},
		{"adam_beta2", func(s *Spec) { s.AdamBeta2 = nan }},
		{"adam_epsilon", func(s *Spec) { s.AdamEpsilon = nan }},
		{"adam_epsilon", func(s *Spec) { s.AdamEpsilon = -1e-8 }},
		{"weight_decay", func(s *Spec) { s.WeightDecay = nan }},
		{"clip_norm", func(s *Spec) { s.ClipNorm = nan }},
		{"clip_norm", func(s *Spec) { s.ClipNorm = -1 }},
		{"momentum", func(s *Spec) { s.Momentum = nan }},
		{"layer_lr_decay", func(s *Spec) { s.LayerLRDecay = nan }},
		{"layer_lr_decay", func(s *Spec) { s.LayerLRDecay = 1.5 }},
		{"layer_lr_decay", func(s *Spec) { s.LayerLRDecay = -0.1 }},
		{"layer_lr_decay", func(s *Spec) { s.Optimizer, s.LayerLRDecay = "sgd", 0.9 }},
		{"truncation", func(s *Spec) { s.Truncation = "middle" }},
		{"truncation", func(s *Spec) { s.Task, s.Truncation, s.Data = "qa", "tail", shard.Spec{} }},
		{"head_tokens", func(s *Spec) { s.HeadTokens = 8 }}, // without head_tail
		{"head_tokens", func(s *Spec) { s.Truncation, s.HeadTokens = "head_tail", 60 }},
		{"head_tokens", func(s *Spec) { s.Truncation, s.HeadTokens = "head_tail", -1 }},
		{"label_smoothing", func(s *Spec) { s.LabelSmoothing = 1 }},
		{"label_smoothing", func(s *Spec) { s.LabelSmoothing = nan }},
		{"label_smoothing", func(s *Spec) { s.Task, s.LabelSmoothing = "multilabel", 0.1 }},
		{"label_smoothing", func(s *Spec) { s.Task, s.LabelSmoothing = "regression", 0.1 }},
		{"distill.teacher", func(s *Spec) { s.Distill.Alpha = 0.3 }}, // distillation options without a teacher
		{"distill.temperature", func(s *Spec) { s.Distill = Distill{Teacher: "t", Temperature: 0, Alpha: 0.5} }},
		{"distill.temperature", func(s *Spec) { s.Distill = Distill{Teacher: "t", Temperature: nan, Alpha: 0.5} }},
		{"distill.alpha", func(s *Spec) { s.Distill = Distill{Teacher: "t", Temperature: 2, Alpha: 1.5} }},
		{"distill.alpha", func(s *Spec) { s.Distill = Distill{Teacher: "t", Temperature: 2, Alpha: nan} }},
		{"distill", func(s *Spec) { s.Task, s.Data, s.Distill.Teacher = "embed", shard.Spec{}, "t" }},
		{"matryoshka_dims", func(s *Spec) { s.MatryoshkaDims = []int{64} }}, // classify
		{"matryoshka_dims", func(s *Spec) { s.Task, s.Data, s.MatryoshkaDims = "embed", shard.Spec{}, []int{64, -8} }},
		{"matryoshka_dims", func(s *Spec) { s.Task, s.Data, s.MatryoshkaDims = "embed", shard.Spec{}, []int{64, 64} }},
		{"matryoshka_weights", func(s *Spec) { s.Task, s.Data, s.MatryoshkaWeights = "embed", shard.Spec{}, []float64{1} }},
		{"matryoshka_weights", func(s *Spec) {
			s.Task, s.Data, s.MatryoshkaDims, s.MatryoshkaWeights = "embed", shard.Spec{}, []int{64, 32}, []float64{1, nan}
		}},
		// The cluster's limits (api.ParseSpec), so that a spec train runs, the cluster runs.
		{"batch_size", func(s *Spec) { s.BatchSize = api.MaxBatch + 1 }},
		{"grad_accum", func(s *Spec) { s.GradAccum = api.MaxBatch + 1 }},
	} {
		s := smsSpec(t)
		c.mod(&s)
		err := s.Validate()
		if err == nil || !strings.Contains(err.Error(), c.field+":") {
			t.Errorf("%s: got %v", c.field, err)
		}
	}
}

// layer_lr_decay reaches the optimizer: AdamW's first step moves every weight with a
// non-zero gradient by about lr (g/|g|), so the largest move in each part of the model
// is lr times its scale: the head's lr, each layer's decay times the one above, the
// embeddings' decay^(layers+1).
func TestLayerLRDecayTrainsLowerLayersSlower(t *testing.T) {
	s := smsSpec(t)
	s.MaxSteps, s.LayerLRDecay, s.WeightDecay, s.WarmupRatio, s.Schedule = 1, 0.5, 0, 0, "constant"
	tr, err := Prepare(s, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ps := tr.Model.Params
	before := slices.Clone(ps.FlatSlice())
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	after := ps.FlatSlice()
	moved := func(prefix string) float64 {
		var most float64
		for _, p := range ps.List() {
			if strings.HasPrefix(p.Name, prefix) {
				for i := p.Offset; i < p.Offset+p.Numel; i++ {
					most = max(most, math.Abs(float64(after[i]-before[i])))
				}
			}
		}
		return most
	}
	L := tr.Model.Config.NumHiddenLayers
	parts := map[string]float64{"classifier.": 1, "bert.embeddings.": math.Pow(0.5, float64(L+1))}
	for i := range L {
		parts[fmt.Sprintf("bert.encoder.layer.%d.", i)] = math.Pow(0.5, float64(L-i))
	}
	for prefix, scale := range parts {
		if got := moved(prefix); math.Abs(got-s.LR*scale) > 1e-3*s.LR*scale {
			t.Errorf("%s moved at most %.4g, want lr x %v = %.4g", prefix, got, scale, s.LR*scale)
		}
	}
}

func TestLoadSpecRejectsUnknownFields(t *testing.T) {
	p := filepath.Join(t.TempDir(), "job.yaml")
	os.WriteFile(p, []byte("task: classify\ntrain: x.tsv\nlearning_rate: 0.1\n"), 0o644)
	if _, err := LoadSpec(p); err == nil || !strings.Contains(err.Error(), "learning_rate") {
		t.Fatalf("got %v", err)
	}
}

func TestScheduleMatchesTransformers(t *testing.T) {
	s := Schedule{Kind: "linear", Peak: 1, Warmup: 2, Total: 10}
	// get_linear_schedule_with_warmup: step/warmup, then (total-step)/(total-warmup).
	want := []float64{0, 0.5, 1, 0.875, 0.75}
	for i, w := range want {
		if got := s.LR(i); got != w {
			t.Errorf("step %d: %v, want %v", i, got, w)
		}
	}
	if got := (Schedule{Kind: "cosine", Peak: 1, Warmup: 0, Total: 4}).LR(2); got < 0.4999 || got > 0.5001 {
		t.Errorf("cosine half way: %v", got)
	}
	// warmup_steps overrides warmup_ratio, as in TrainingArguments.
	s2 := Spec{Schedule: "linear", LR: 1, WarmupRatio: 0.1}
	if got := s2.LRSchedule(100); got != (Schedule{Kind: "linear", Peak: 1, Warmup: 10, Total: 100}) {
		t.Errorf("warmup_ratio 0.1 of 100 steps: %+v", got)
	}
	s2.WarmupSteps = 3
	if got := s2.LRSchedule(100); got.Warmup != 3 {
		t.Errorf("warmup_steps 3: %+v", got)
	}
}

// runUntil prepares s and runs it, interrupting it (as Ctrl-C does) after step stopAt
// when stopAt > 0.
func runUntil(t *testing.T, s Spec, stopAt int) (*Result, error) {
	t.Helper()
	tr, err := Prepare(s, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if stopAt > 0 {
		tr.OnStep = func(step int) {
			if step == stopAt {
				cancel()
			}
		}
	}
	return tr.Run(ctx)
}

// A run stopped part way and resumed from its checkpoint ends bit-identical to an
// uninterrupted run, with every optimizer: same batches, dropout masks, optimizer state
// (AdamW's and LAMB's moments, SGD's momentum) and schedule.
func TestResumeIsExact(t *testing.T) {
	runtime.LockOSThread()
	run := func(s Spec, stopAt int) (*Result, error) { return runUntil(t, s, stopAt) }
	texts := filepath.Join(t.TempDir(), "texts.txt") // the SMS texts alone, one a line, for mlm
	b, err := os.ReadFile("../data/sms_spam/SMSSpamCollection")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n")[:600] {
		_, text, _ := strings.Cut(l, "\t")
		lines = append(lines, text)
	}
	os.WriteFile(texts, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	teacher := saveUntrained(t, smsSpec(t))
	mlm := func(s *Spec) {
		s.Task, s.Train, s.Data, s.Metric, s.MaxLength, s.EvalSplit, s.BatchSize = "mlm", texts, shard.Spec{Format: shard.Lines}, "", 16, 0.05, 8
	}
	for _, c := range []struct {
		name string
		mod  func(*Spec)
	}{
		{"adamw", func(s *Spec) {}},
		{"sgd", func(s *Spec) { s.Optimizer, s.LR, s.Nesterov = "sgd", 0.05, true }},
		{"lamb", func(s *Spec) { s.Optimizer = "lamb" }},
		// A LoRA run's checkpoint is its adapter: the base model reloads from the spec.
		{"lora", func(s *Spec) { s.LoRA, s.LR = model.LoRA{R: 4, Alpha: 8, Dropout: 0.1, Merge: true}, 5e-3 }},
		// mlm's masks follow the step: the resumed run must draw the same ones.
		{"mlm", mlm},
		// the families whose masked-LM heads take their biases from the config, and DeBERTa's
		{"mlm-modernbert", func(s *Spec) { mlm(s); s.Model = "modernbert-tiny" }},
		{"mlm-deberta-v2", func(s *Spec) { mlm(s); s.Model = "deberta-v2-tiny" }},
		{"mlm-nomic_bert", func(s *Spec) { mlm(s); s.Model = "nomic_bert-tiny" }},
		// The teacher's logits are computed again for each step: the same after a resume.
		{"distill", func(s *Spec) { s.Distill.Teacher, s.LabelSmoothing = teacher, 0.1 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			runtime.LockOSThread()
			base := smsSpec(t)
			base.MaxSteps, base.EvalEvery, base.BatchSize = 24, 8, 16
			c.mod(&base)
			whole := base
			whole.Output = t.TempDir()
			if _, err := run(whole, 0); err != nil {
				t.Fatal(err)
			}
			parts := base
			parts.Output = t.TempDir()
			if _, err := run(parts, 11); err == nil {
				t.Fatal("an interrupted run returned no error")
			}
			if _, err := os.Stat(filepath.Join(parts.Output, "checkpoint-11", stateFile)); err != nil {
				t.Fatalf("no checkpoint at the interruption: %v", err)
			}
			parts.Resume = "auto"
			res, err := run(parts, 0)
			if err != nil {
				t.Fatal(err)
			}
			if res.Steps != 24 {
				t.Fatalf("resumed run ended at step %d", res.Steps)
			}
			a, _ := os.ReadFile(filepath.Join(whole.Output, "final", "model.safetensors"))
			b, _ := os.ReadFile(filepath.Join(parts.Output, "final", "model.safetensors"))
			if len(a) == 0 || !bytes.Equal(a, b) {
				t.Fatal("the resumed run's final weights differ from the uninterrupted run's")
			}
			// State in a layout this build does not know is refused, naming it.
			stf := filepath.Join(parts.Output, "checkpoint-11", stateFile)
			js, err := os.ReadFile(stf)
			if err != nil || !bytes.Contains(js, []byte(`"param_layout": "`+model.Layout+`"`)) {
				t.Fatalf("%s does not record the layout: %v\n%s", stf, err, js)
			}
			if err := os.WriteFile(stf, bytes.Replace(js, []byte(model.Layout), []byte("sorted-by-size"), 1), 0o644); err != nil {
				t.Fatal(err)
			}
			parts.Resume = filepath.Join(parts.Output, "checkpoint-11")
			if _, err := run(parts, 0); err == nil || !strings.Contains(err.Error(), `layout "sorted-by-size"`) {
				t.Fatalf("resume from another layout: %v", err)
			}
			// The same resume without the optimizer's state must fail: the test can fail.
			st := filepath.Join(parts.Output, "checkpoint-11", optimizerFile)
			if err := os.Remove(st); err != nil {
				t.Fatal(err)
			}
			parts.Resume = filepath.Join(parts.Output, "checkpoint-11")
			if _, err := run(parts, 0); err == nil || !strings.Contains(err.Error(), optimizerFile) {
				t.Fatalf("resume without optimizer state: %v", err)
			}
			changed := base
			changed.Output, changed.Resume, changed.LR = parts.Output, "auto", 2e-3
			if _, err := run(changed, 0); err == nil || !strings.Contains(err.Error(), "different job spec") {
				t.Fatalf("resume with another learning rate: %v", err)
			}
		})
	}
}

// TREC-6 (ISO-8859-1): a tiny random-init BERT reaches accuracy >= 0.70 on the test set.
func TestTinyBERTLearnsTREC(t *testing.T) {
	runtime.LockOSThread()
	dir := filepath.Join(sharedData, "trec")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("TREC data not found at %s (../shared/data beside the repo)", dir)
	}
	s := Defaults()
	s.Train, s.Eval = filepath.Join(dir, "train.txt"), filepath.Join(dir, "test.txt")
	s.Data = shard.Spec{Format: "labeltext", Encoding: "latin-1"}
	s.Model, s.MaxLength, s.LR, s.Epochs, s.Threads = "tiny", 48, 1e-3, 2, 2
	s.Metric, s.Output = "accuracy", t.TempDir()
	_, res := trainSpec(t, s)
	acc := res.Best.Metrics["accuracy"]
	t.Logf("TREC accuracy %.4f after %d steps", acc, res.Steps)
	if acc < 0.70 {
		t.Fatalf("TREC accuracy %.4f < 0.70", acc)
	}
}

// Gradient checkpointing changes memory, not the steps: a run that resumes with it on
// ends with the bytes of the run without it (tiny BERT, dropout on), and a checkpoint
// resumes across the setting, as across threads or devices.
func TestGradientCheckpointingTrainsTheSameSteps(t *testing.T) {
	runtime.LockOSThread()
	base := smsSpec(t)
	base.MaxSteps, base.BatchSize, base.SaveEvery = 16, 16, -1
	whole := base
	if _, err := runUntil(t, whole, 0); err != nil {
		t.Fatal(err)
	}
	parts := base
	parts.Output = t.TempDir()
	if _, err := runUntil(t, parts, 7); err == nil {
		t.Fatal("an interrupted run returned no error")
	}
	parts.Resume, parts.GradientCheckpointing = "auto", true
	if _, err := runUntil(t, parts, 0); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(filepath.Join(whole.Output, "final", "model.safetensors"))
	b, _ := os.ReadFile(filepath.Join(parts.Output, "final", "model.safetensors"))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Fatal("the run with gradient checkpointing ends with other weights than the run without")
	}
}

// adam_beta1, adam_beta2 and adam_epsilon reach the optimizer the trainer makes; unset,
// it keeps its own defaults.
func TestSpecSetsTheOptimizersBetasAndEpsilon(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, c := range []struct {
		optimizer          string
		b1, b2, eps        float64
		want1, want2, eps2 float64
	}{
		{"adamw", 0, 0, 0, 0.9, 0.999, 1e-8},
		{"adamw", 0.85, 0.98, 1e-6, 0.85, 0.98, 1e-6},
		{"lamb", 0, 0, 0, 0.9, 0.999, 1e-6},
		{"lamb", 0.85, 0.98, 1e-8, 0.85, 0.98, 1e-8},
	} {
		s := smsSpec(t)
		s.Optimizer, s.AdamBeta1, s.AdamBeta2, s.AdamEpsilon = c.optimizer, c.b1, c.b2, c.eps
		tr, err := Prepare(s, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		var got [3]float64
		switch o := tr.opt.(type) {
		case *model.AdamW:
			got = [3]float64{o.Beta1, o.Beta2, o.Eps}
		case *model.LAMB:
			got = [3]float64{o.Beta1, o.Beta2, o.Eps}
		}
		if want := [3]float64{c.want1, c.want2, c.eps2}; got != want {
			t.Errorf("%s with adam_beta1 %v, adam_beta2 %v, adam_epsilon %v: the optimizer has %v, want %v", c.optimizer, c.b1, c.b2, c.eps, got, want)
		}
	}
}
