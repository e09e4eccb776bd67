package main

import (
	"encoding/json"
	"errors"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/report"
	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/train"
)

// eval of the saved model prints the report and confusion matrix that training's
// evaluation printed, with the same numbers, and writes metrics.json, confusion.png and
// mistakes.jsonl that agree with them and with the data file.
func TestEvalReproducesTrainingEvaluation(t *testing.T) {
	m := trainedSMS(t)
	out := filepath.Join(t.TempDir(), "eval")
	stdout := mustRun(t, "eval", "--model", m.dir, "--data", m.evalFile, "--format", "labeltext",
		"--max-length", "64", "--batch-size", "32", "--threads", "2", "--output", out)
	for _, want := range []string{m.want.Report.Table(4), m.want.Confusion.Table(), "400 examples, classify model"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("eval printed\n%s\nwithout\n%s", stdout, want)
		}
	}

	mf := readEvalFile(t, out)
	if mf.Examples != 400 || mf.Task != "classify" || mf.Loss != m.want.Loss {
		t.Errorf("metrics.json: %d examples, task %s, loss %v; want 400, classify, %v", mf.Examples, mf.Task, mf.Loss, m.want.Loss)
	}
	if len(mf.Metrics) != len(m.want.Metrics) {
		t.Errorf("metrics.json has %v, training %v", mf.Metrics, m.want.Metrics)
	}
	for k, v := range m.want.Metrics {
		if mf.Metrics[k] != v {
			t.Errorf("metrics.json %s = %v, training's evaluation %v", k, mf.Metrics[k], v)
		}
	}
	wrong := int64(0)
	for g, row := range m.want.Confusion.Matrix() {
		for p, v := range row {
			if mf.Confusion == nil || mf.Confusion.Matrix[g][p] != v {
				t.Fatalf("metrics.json confusion %+v, training's %v", mf.Confusion, m.want.Confusion.Matrix())
			}
			if g != p {
				wrong += v
			}
		}
	}
	if wrong == 0 {
		t.Fatal("the fixture model makes no mistakes: the error analysis below checks nothing")
	}

	f, err := os.Open(filepath.Join(out, "confusion.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if cfg, err := png.DecodeConfig(f); err != nil || cfg.Width != 600 || cfg.Height != 600 {
		t.Errorf("confusion.png: %+v, %v", cfg, err)
	}

	data := readLines(t, m.evalFile)
	mistakes := readLines(t, filepath.Join(out, "mistakes.jsonl"))
	if int64(len(mistakes)) != wrong {
		t.Errorf("%d mistakes in mistakes.jsonl, %d off the confusion matrix's diagonal", len(mistakes), wrong)
	}
	prev := 2.0
	for i, line := range mistakes {
		var mk report.Mistake
		if err := json.Unmarshal([]byte(line), &mk); err != nil {
			t.Fatalf("mistakes.jsonl:%d: %v", i+1, err)
		}
		file, num, _ := strings.Cut(mk.Source, ":")
		n, err := strconv.Atoi(num)
		if file != m.evalFile || err != nil || n < 1 || n > len(data) {
			t.Fatalf("mistakes.jsonl:%d: source %q", i+1, mk.Source)
		}
		if data[n-1] != mk.Gold+"\t"+mk.Text || mk.Gold == mk.Pred || mk.Confidence < 0.5 || mk.Confidence > prev {
			t.Errorf("mistakes.jsonl:%d: %+v; the data's line %d is %q (and confidences must fall from %v)", i+1, mk, n, data[n-1], prev)
		}
		prev = mk.Confidence
	}
}

// readEvalFile reads the metrics.json eval --output wrote into dir.
func readEvalFile(t *testing.T, dir string) evalFile {
	t.Helper()
	var mf evalFile
	b, err := os.ReadFile(filepath.Join(dir, "metrics.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &mf); err != nil {
		t.Fatal(err)
	}
	return mf
}

func TestEvalErrorsNameThePlace(t *testing.T) {
	m := trainedSMS(t)
	dir := t.TempDir()
	badLabel := writeLines(t, dir, "bad.txt", "ham\thello there", "eggs\tsome text")
	empty := writeLines(t, dir, "empty.txt")
	os.WriteFile(empty, nil, 0o644)
	noColumn := writeLines(t, dir, "reviews.csv", "review,stars", "great,5")
	args := func(extra ...string) []string {
		return append([]string{"eval", "--model", m.dir, "--format", "labeltext", "--max-length", "64"}, extra...)
	}
	wantErr(t, "", []string{"model directory", "nope", "no such file"}, "eval", "--model", filepath.Join(dir, "nope"), "--data", badLabel)
	wantErr(t, "", []string{"--model"}, "eval", "--data", badLabel)
	wantErr(t, "", []string{"--data"}, args()...)
	wantErr(t, "", []string{"bad.txt:2", "label", `"eggs"`, "known"}, args("--data", badLabel)...)
	wantErr(t, "", []string{"empty.txt", "empty"}, args("--data", empty)...)
	wantErr(t, "", []string{"reviews.csv", "text"}, "eval", "--model", m.dir, "--data", noColumn, "--label-column", "stars")
	wantErr(t, "", []string{"max_length", "513"}, args("--data", badLabel, "--max-length", "513")...)
}

// ner and qa checkpoints go through their tasks' scorers: seqeval's entity report, and
// SQuAD's metrics with the answers by question id in predictions.json.
func TestEvalTokenAndSpanTasks(t *testing.T) {
	runtime.LockOSThread()
	dir := t.TempDir()
	conll := writeLines(t, dir, "ner.conll", "EU B-ORG", "rejects O", "German B-MISC", "", "Peter B-PER", "Blackburn I-PER", "in O", "Brussels B-LOC")
	squad := writeLines(t, dir, "qa.json", `{"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": "The Eiffel Tower is in Paris and was built in 1889.", "qas": [`+
		`{"id": "q1", "question": "Where is the tower?", "answers": [{"text": "Paris", "answer_start": 23}]},`+
		`{"id": "q2", "question": "When was it built?", "answers": [{"text": "1889", "answer_start": 46}]}]}]}]}`)
	for _, c := range []struct {
		task, file string
		format     shard.Format
		printed    []string
		files      []string
	}{
		{"ner", conll, shard.CoNLL, []string{"LOC", "PER", "micro avg", "f1 "}, []string{"metrics.json", "mistakes.jsonl"}},
		{"qa", squad, shard.SQuAD, []string{"exact_match", "f1 "}, []string{"metrics.json", "mistakes.jsonl", "predictions.json"}},
	} {
		s := train.Defaults()
		s.Task, s.Train, s.Eval, s.Data, s.Tokenizer = c.task, c.file, c.file, shard.Spec{Format: c.format}, vocabFile
		s.MaxLength = 64
		tr, err := train.Prepare(s, io.Discard)
		if err != nil {
			t.Fatalf("%s: %v", c.task, err)
		}
		ckpt := filepath.Join(dir, c.task+"-model")
		if err := tr.Save(ckpt); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, c.task+"-eval")
		stdout := mustRun(t, "eval", "--model", ckpt, "--data", c.file, "--max-length", "64", "--output", out)
		for _, w := range append(c.printed, c.task+" model") {
			if !strings.Contains(stdout, w) {
				t.Errorf("%s: eval printed\n%s\nwithout %q", c.task, stdout, w)
			}
		}
		for _, f := range c.files {
			if _, err := os.Stat(filepath.Join(out, f)); err != nil {
				t.Errorf("%s: %v", c.task, err)
			}
		}
		if _, err := os.Stat(filepath.Join(out, "confusion.png")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: confusion.png: %v", c.task, err)
		}
	}
	var answers map[string]string
	b, _ := os.ReadFile(filepath.Join(dir, "qa-eval", "predictions.json"))
	if err := json.Unmarshal(b, &answers); err != nil || len(answers) != 2 || answers["q1"] == "" && answers["q2"] == "" {
		t.Errorf("predictions.json %s: %v", b, err)
	}
}
