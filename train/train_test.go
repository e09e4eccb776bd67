package train

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/bertnode/bertnode/internal/ompenv"
	"github.com/bertnode/bertnode/shard"
)

func TestMain(m *testing.M) {
	ompenv.Ensure()
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

// A tiny random-init BERT must learn SMS spam: spam-F1 >= 0.90 on the held-out fifth.
func TestTinyBERTLearnsSMSSpam(t *testing.T) {
	runtime.LockOSThread()
	s := smsSpec(t)
	s.Epochs = 1.5
	tr, err := Prepare(s, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err := tr.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
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
	for field, mod := range map[string]func(*Spec){
		"task":       func(s *Spec) { s.Task = "translate" },
		"train":      func(s *Spec) { s.Train = "" },
		"max_length": func(s *Spec) { s.MaxLength = 100000 },
		"padding":    func(s *Spec) { s.Padding = "left" },
		"schedule":   func(s *Spec) { s.Schedule = "step" },
		"eval_split": func(s *Spec) { s.EvalSplit = 1.5 },
	} {
		s := smsSpec(t)
		mod(&s)
		err := s.Validate()
		if err == nil || !strings.Contains(err.Error(), field+":") {
			t.Errorf("%s: got %v", field, err)
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
}
