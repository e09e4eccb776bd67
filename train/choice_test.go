package train

import (
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/shard"
)

// choiceData writes n multiple-choice records: a word of one list, and four words of
// another, the right one the word at the same place in its list.
func choiceData(t *testing.T, path string, n int, seed uint64) []ChoiceQuestion {
	t.Helper()
	words := vocabWords(t, 3000, 40)
	from, to := words[:20], words[20:]
	r := rand.New(rand.NewPCG(seed, 2))
	var out strings.Builder
	var qs []ChoiceQuestion
	for range n {
		i := r.IntN(len(from))
		choices := []string{to[i]}
		for _, j := range r.Perm(len(to)) {
			if j != i && len(choices) < 4 {
				choices = append(choices, to[j])
			}
		}
		label := r.IntN(4)
		choices[0], choices[label] = choices[label], choices[0]
		line, _ := json.Marshal(map[string]any{"text": "the word " + from[i], "choices": choices, "label": label})
		out.Write(append(line, '\n'))
		qs = append(qs, ChoiceQuestion{Text: "the word " + from[i], Choices: choices})
	}
	if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return qs
}

// A tiny random-init BERT learns multiple choice well above chance (0.27 -> 0.86 seen); the
// saved ForMultipleChoice checkpoint loads as a choice model whose predictions score as
// the run's evaluation did.
func TestChoiceTrainingLearns(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	dir := t.TempDir()
	train, eval := filepath.Join(dir, "train.jsonl"), filepath.Join(dir, "eval.jsonl")
	choiceData(t, train, 600, 1)
	qs := choiceData(t, eval, 100, 2)
	s := Defaults()
	s.Task, s.Train, s.Eval, s.Model = string(model.Choice), train, eval, "tiny"
	s.Tokenizer, s.MaxLength, s.Threads = "../data/vocab/bert-base-uncased.vocab.txt", 16, 2
	s.BatchSize, s.Epochs, s.LR, s.Output = 16, 6, 1e-3, filepath.Join(dir, "run")
	tr, err := Prepare(s, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	before, err := tr.Evaluate()
	if err != nil {
		t.Fatal(err)
	}
	res, err := tr.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("accuracy %.3f -> %.3f", before.Metrics["accuracy"], res.Best.Metrics["accuracy"])
	if before.Metrics["accuracy"] > 0.5 || res.Best.Metrics["accuracy"] < 0.75 {
		t.Fatalf("accuracy %.3f -> %.3f: did not learn to choose", before.Metrics["accuracy"], res.Best.Metrics["accuracy"])
	}
	e := Defaults()
	e.Model, e.MaxLength, e.Threads = filepath.Join(s.Output, "best"), 16, 2
	loaded, err := ForEval(e, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Spec.Task != string(model.Choice) {
		t.Fatalf("the saved model loads as %s", loaded.Spec.Task)
	}
	answers, err := loaded.PredictChoices(qs)
	if err != nil {
		t.Fatal(err)
	}
	var exs []Example
	recs, _, err := ReadAll(shard.Spec{}.ForTask("choice"), eval)
	if err != nil {
		t.Fatal(err)
	}
	if exs, err = (choiceTask{}).encode(loaded.Tok, recs, nil, 16); err != nil {
		t.Fatal(err)
	}
	right := 0
	for i, a := range answers {
		if a.Index == exs[i].Label && a.Choice == qs[i].Choices[a.Index] {
			right++
		}
	}
	if got := float64(right) / float64(len(qs)); got != res.Best.Metrics["accuracy"] {
		t.Errorf("predictions of the saved model score %v, the run's best evaluation %v", got, res.Best.Metrics["accuracy"])
	}
}

// Records that cannot be multiple choice are refused at their line.
func TestChoiceDataErrors(t *testing.T) {
	for _, c := range []struct{ lines, want string }{
		{`{"text": "a", "choices": ["x", "y"], "label": 0}` + "\n" + `{"text": "b", "choices": ["x", "y", "z"], "label": 0}`, "c.jsonl:2: choices: 3, where the first record has 2"},
		{`{"text": "a", "choices": ["x", "y"], "label": 2}`, `c.jsonl:1: label: "2" is not a choice's index in [0, 2)`},
		{`{"text": "a", "choices": ["x"], "label": 0}`, "1 choices: want two or more"},
		{`{"text": "a", "choices": ["x", 3], "label": 0}`, "choices"},
	} {
		path := filepath.Join(t.TempDir(), "c.jsonl")
		os.WriteFile(path, []byte(c.lines+"\n"), 0o644)
		recs, _, err := ReadAll(shard.Spec{}.ForTask("choice"), path)
		if err == nil {
			_, err = (choiceTask{}).encode(testTokenizer(t), recs, nil, 16)
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.lines, err, c.want)
		}
	}
}
