package train

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/bertnode/bertnode/hf"
	"github.com/bertnode/bertnode/model"
)

// loggedLosses are the training losses metrics.jsonl recorded, one a step.
func loggedLosses(t *testing.T, dir string) []float64 {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []float64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		if l, ok := rec["loss"].(float64); ok && rec["lr"] != nil {
			out = append(out, l)
		}
	}
	return out
}

func mean(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// smallVocabModel saves a random-init preset, its vocabulary cut to the first n tokens
// of BERT's uncased one (which still spell SMS English as word pieces), into a checkpoint
// directory with that vocab.txt: the preset's layers at a fraction of its embedding.
func smallVocabModel(t *testing.T, preset string, n int) string {
	t.Helper()
	cfg, err := hf.Preset(preset)
	if err != nil {
		t.Fatal(err)
	}
	cfg.VocabSize = n
	dir := t.TempDir()
	headLines(t, "../data/vocab/bert-base-uncased.vocab.txt", n, dir)
	if err := os.Rename(filepath.Join(dir, "bert-base-uncased.vocab.txt.head"), filepath.Join(dir, "vocab.txt")); err != nil {
		t.Fatal(err)
	}
	model.ManualSeed(1)
	m, err := model.New(cfg, model.Options{Task: model.Classify, NumLabels: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Save(dir, nil, model.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Each family's tiny preset is a model train takes, and trains on SMS spam: over 200
// steps its loss falls to under half of where it started, and the final checkpoint loads
// for evaluation as that family and scores exactly what the trainer scored. (The
// training runs on the preset with a 6000-token vocabulary, which keeps it short.)
func TestFamiliesLearnSMSSpam(t *testing.T) {
	for _, c := range []struct{ preset, modelType string }{
		{"distilbert-tiny", "distilbert"}, {"roberta-tiny", "roberta"}, {"albert-tiny", "albert"}, {"electra-tiny", "electra"},
		{"modernbert-tiny", "modernbert"}, {"deberta-v2-tiny", "deberta-v2"}, {"mpnet-tiny", "mpnet"},
		{"nomic_bert-tiny", "nomic_bert"},
	} {
		t.Run(c.preset, func(t *testing.T) {
			runtime.LockOSThread()
			s := smsSpec(t)
			s.Model = c.preset
			s.Eval, s.EvalSplit = headLines(t, s.Train, 200, t.TempDir()), 0
			s.MaxSteps, s.BatchSize, s.MaxLength = 200, 16, 48
			tr, err := Prepare(s, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if tr.Model.Config.ModelType != c.modelType {
				t.Fatalf("preset %s built a %s", c.preset, tr.Model.Config.ModelType)
			}

			s.Model = smallVocabModel(t, c.preset, 6000)
			s.Tokenizer = ""
			tr, res := trainSpec(t, s)
			losses := loggedLosses(t, s.Output)
			if len(losses) != 200 {
				t.Fatalf("%d losses logged, want one a step", len(losses))
			}
			first, last := mean(losses[9:30]), mean(losses[159:])
			t.Logf("loss %.3f at steps 10-30, %.3f at steps 160-200; spam F1 %.3f", first, last, res.Final.Metrics["f1_spam"])
			if !(last < first/2) {
				t.Fatalf("%d losses logged; from %.3f to %.3f", len(losses), first, last)
			}

			ev, err := ForEval(evalSpec(tr, filepath.Join(s.Output, "final")), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if ev.Model.Config.ModelType != c.modelType || ev.Spec.Task != "classify" {
				t.Fatalf("checkpoint loaded as %s %s", ev.Model.Config.ModelType, ev.Spec.Task)
			}
			got, err := ev.Evaluate()
			if err != nil {
				t.Fatal(err)
			}
			if got.Loss != res.Final.Loss || got.Metrics["f1_spam"] != res.Final.Metrics["f1_spam"] {
				t.Fatalf("checkpoint: loss %v, spam F1 %v; the trainer's %v, %v", got.Loss, got.Metrics["f1_spam"], res.Final.Loss, res.Final.Metrics["f1_spam"])
			}
		})
	}
}
