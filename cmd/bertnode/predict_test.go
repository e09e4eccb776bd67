package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/tokenize"
	"github.com/bertnode/bertnode/train"
)

// parsePredictions decodes predict's output, one JSON object per line.
func parsePredictions(t *testing.T, out string) []train.Prediction {
	t.Helper()
	var preds []train.Prediction
	for i, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var p train.Prediction
		if err := json.Unmarshal([]byte(line), &p); err != nil {
			t.Fatalf("output line %d %q: %v", i+1, line, err)
		}
		preds = append(preds, p)
	}
	return preds
}

// Texts from arguments, a file and stdin give the same JSON lines: the most probable
// class and a softmax over the classes. A text that eval lists as a mistake gets the
// same prediction and confidence from predict.
func TestPredictPrintsProbabilities(t *testing.T) {
	m := trainedSMS(t)
	mistake := m.want.Mistakes[0]
	texts := []string{mistake.Text, "Hey, are we still on for lunch today?", "URGENT! You have won a 1 week FREE membership in our £100,000 Prize Jackpot! Txt CLAIM to 81010"}
	base := []string{"predict", "--model", m.dir, "--max-length", "64", "--threads", "2"}
	out := mustRun(t, append(base, texts...)...)
	preds := parsePredictions(t, out)
	if len(preds) != len(texts) {
		t.Fatalf("%d predictions for %d texts:\n%s", len(preds), len(texts), out)
	}
	for i, p := range preds {
		var sum float64
		for _, v := range p.Probs {
			sum += v
		}
		best := slices.MaxFunc([]string{"ham", "spam"}, func(a, b string) int { return cmp.Compare(p.Probs[a], p.Probs[b]) })
		if p.Text != texts[i] || len(p.Probs) != 2 || math.Abs(sum-1) > 1e-9 || p.Label != best || !slices.Equal(p.Labels, []string{best}) {
			t.Errorf("text %d: %+v (probabilities sum to %v)", i, p, sum)
		}
	}
	if p := preds[0]; p.Label != mistake.Pred || math.Abs(p.Probs[p.Label]-mistake.Confidence) > 1e-6 {
		t.Errorf("predict says %s with %v; eval's mistake %s with %v", p.Label, p.Probs[p.Label], mistake.Pred, mistake.Confidence)
	}

	in := strings.Join(texts[:1], "\n") + "\n\n" + strings.Join(texts[1:], "\r\n") // blank lines and CRLF
	file := writeLines(t, t.TempDir(), "texts.txt", in)
	for name, got := range map[string]func() (string, string, error){
		"stdin": func() (string, string, error) { return bertnode(t, in, base...) },
		"file":  func() (string, string, error) { return bertnode(t, "", append(base, "--file", file)...) },
	} {
		o, _, err := got()
		if err != nil || o != out {
			t.Errorf("%s: %v\n%s\nwant\n%s", name, err, o, out)
		}
	}
}

// --attention writes the head view of the first text over its word pieces.
func TestPredictAttentionHeadView(t *testing.T) {
	m := trainedSMS(t)
	html := filepath.Join(t.TempDir(), "attn.html")
	text := "Claim your FREE ringtone now!"
	_, stderr, err := bertnode(t, "", "predict", "--model", m.dir, "--attention", html, text, "second text")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenize.Load(m.dir)
	if err != nil {
		t.Fatal(err)
	}
	tokens := append(append([]string{"[CLS]"}, tok.Tokens(text)...), "[SEP]")
	if !slices.Contains(tokens, "##tone") {
		t.Fatalf("tokens %q: want a word piece", tokens)
	}
	want, _ := json.Marshal(tokens)
	b, err := os.ReadFile(html)
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	if !strings.Contains(page, `{"tokens":`+string(want)+`,"attn":[[[[`) || !strings.Contains(page, "</html>") {
		t.Errorf("head view lacks the tokens %s:\n%.300s", want, page)
	}
	if !strings.Contains(stderr, fmt.Sprintf("2 layers x 2 heads over %d tokens", len(tokens))) {
		t.Errorf("stderr %q", stderr)
	}
}

// A multilabel checkpoint predicts every class whose sigmoid reaches --threshold.
func TestPredictMultiLabelThreshold(t *testing.T) {
	runtime.LockOSThread()
	dir := t.TempDir()
	data := writeLines(t, dir, "tags.jsonl",
		`{"text": "cheap flights to paris", "label": ["travel", "deals"]}`,
		`{"text": "the match ended in a draw", "label": ["sport"]}`)
	s := train.Defaults()
	s.Task, s.Train, s.Eval, s.Data, s.Model, s.Tokenizer = "multilabel", data, data, shard.Spec{}, "tiny", vocabFile
	tr, err := train.Prepare(s, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(dir, "ckpt")
	if err := tr.Save(ckpt); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		threshold string
		n         int
	}{{"0", 3}, {"1", 0}} {
		out := mustRun(t, "predict", "--model", ckpt, "--threshold", c.threshold, "cheap hotels", "a draw")
		for _, p := range parsePredictions(t, out) {
			if len(p.Labels) != c.n || p.Label != "" || len(p.Probs) != 3 {
				t.Errorf("threshold %s: %+v", c.threshold, p)
			}
		}
		if c.n == 0 && !strings.Contains(out, `"labels":[]`) {
			t.Errorf("threshold 1: no labels should print as an empty list:\n%s", out)
		}
	}
	wantErr(t, "", []string{"--threshold", "1.5"}, "predict", "--model", ckpt, "--threshold", "1.5", "x")
}

func TestPredictErrorsNameThePlace(t *testing.T) {
	m := trainedSMS(t)
	dir := t.TempDir()
	latin1 := filepath.Join(dir, "latin1.txt")
	os.WriteFile(latin1, []byte("fine\ncaf\xe9\n"), 0o644)
	wantErr(t, "", []string{"standard input", "no texts"}, "predict", "--model", m.dir)
	wantErr(t, " \n\n", []string{"standard input", "no texts"}, "predict", "--model", m.dir)
	wantErr(t, "", []string{"latin1.txt:2", "UTF-8"}, "predict", "--model", m.dir, "--file", latin1)
	wantErr(t, "", []string{"missing.txt"}, "predict", "--model", m.dir, "--file", filepath.Join(dir, "missing.txt"))
	wantErr(t, "", []string{"--file", "not both"}, "predict", "--model", m.dir, "--file", latin1, "text")
	wantErr(t, "", []string{"--threshold", "multilabel", "classify"}, "predict", "--model", m.dir, "--threshold", "0.3", "text")
	wantErr(t, "", []string{"model directory", "nope"}, "predict", "--model", filepath.Join(dir, "nope"), "text")
	wantErr(t, "", []string{"--model"}, "predict", "text")
}
