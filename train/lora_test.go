package train

import (
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/model"
)

// A tiny BERT's adapters and head learn the SMS data: the evaluation loss falls to under
// half and spam F1 leaves the class prior's 0; the merged final checkpoint is a plain
// one. The base is random and frozen, so F1 stays below full fine-tuning's (0.70 here,
// measured, after one epoch; full fine-tuning: TestTinyBERTLearnsSMSSpam, > 0.9).
func TestLoRALearnsSMS(t *testing.T) {
	runtime.LockOSThread()
	s := smsSpec(t)
	s.Epochs, s.LR = 1, 5e-3
	s.LoRA = model.LoRA{R: 8, Alpha: 16, Dropout: 0.1, Merge: true}
	_, before := evalLossBefore(t, s)
	tr, res := trainSpec(t, s)
	total, trainable := tr.Model.Params.Count()
	t.Logf("%d of %d parameters trainable; spam F1 %.4f, eval loss %.4f (untrained %.4f) after %d steps",
		trainable, total, res.Best.Metrics["f1_spam"], res.Final.Loss, before, res.Steps)
	if trainable*50 > total {
		t.Fatalf("%d of %d parameters trainable", trainable, total)
	}
	if f1 := res.Best.Metrics["f1_spam"]; f1 < 0.5 {
		t.Fatalf("spam F1 %.4f < 0.5", f1)
	}
	if after := res.Final.Loss; !(after < 0.5*before) {
		t.Fatalf("evaluation loss %.4f untrained, %.4f trained", before, after)
	}
	for f, want := range map[string]bool{"final/model.safetensors": true, "final/" + model.AdapterConfigFile: false} {
		if _, err := os.Stat(filepath.Join(s.Output, f)); (err == nil) != want {
			t.Errorf("%s: exists %v", f, err == nil)
		}
	}
}

// Trained from a saved base model, the run writes PEFT adapter directories, which
// ForEval loads onto the base and evaluates as the trainer did, within float rounding
// (merged weights); a resumed run ends bit-identical.
func TestLoRAAdapterEvaluatesAsTrained(t *testing.T) {
	runtime.LockOSThread()
	_, baseDir := savedModel(t)
	s := smsSpec(t)
	s.Model = baseDir
	s.Train = headLines(t, s.Train, 300, t.TempDir())
	s.Eval, s.EvalSplit = s.Train, 0
	s.BatchSize, s.MaxSteps, s.LR = 16, 10, 1e-2
	s.LoRA = model.LoRA{R: 4, Alpha: 8, Dropout: 0.1}
	tr, _ := trainSpec(t, s)
	final := filepath.Join(s.Output, "final")
	for f, want := range map[string]bool{model.AdapterConfigFile: true, model.AdapterFile: true, "vocab.txt": true,
		model.ConfigFile: true, model.SafetensorsFile: false} {
		if _, err := os.Stat(filepath.Join(final, f)); (err == nil) != want {
			t.Errorf("final/%s: exists %v", f, err == nil)
		}
	}
	want, err := tr.Evaluate()
	if err != nil {
		t.Fatal(err)
	}
	ev, err := ForEval(evalSpec(tr, final), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ev.Evaluate()
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(got.Loss-want.Loss) > 1e-5*want.Loss {
		t.Errorf("loss %v, trainer's %v", got.Loss, want.Loss)
	}
	if g, w := got.Metrics["accuracy"], want.Metrics["accuracy"]; math.Abs(g-w) > 1.5/float64(len(tr.Eval)) {
		t.Errorf("accuracy %v, trainer's %v", g, w)
	}
	// The base model comes from the adapter's config; --base-model overrides it.
	es := evalSpec(tr, final)
	es.BaseModel = filepath.Join(t.TempDir(), "nowhere")
	if _, err := ForEval(es, io.Discard); err == nil || !strings.Contains(err.Error(), "nowhere") {
		t.Errorf("a missing base model: %v", err)
	}
}

// LoRA's spec fields are checked, naming the field.
func TestLoRASpecErrors(t *testing.T) {
	for _, c := range []struct {
		field string
		lora  model.LoRA
	}{
		{"lora.r", model.LoRA{Alpha: 8, Merge: true}},
		{"lora.alpha", model.LoRA{R: 8, Merge: true}},
		{"lora.merge", model.LoRA{R: 8, Alpha: 8}}, // a preset base cannot be reloaded
	} {
		s := smsSpec(t)
		s.LoRA = c.lora
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "job spec: "+c.field+":") {
			t.Errorf("%s: got %v", c.field, err)
		}
	}
	s := smsSpec(t)
	s.LoRA = model.LoRA{R: 8, Alpha: 8, Merge: true, TargetModules: []string{"attention.self.qkv"}}
	if _, err := Prepare(s, io.Discard); err == nil || !strings.Contains(err.Error(), "lora.target_modules") ||
		!strings.Contains(err.Error(), "query") {
		t.Errorf("unknown target: %v", err)
	}
}
