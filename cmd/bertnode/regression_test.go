package main

import (
	"fmt"
	"math"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/train"
)

// train --task regression on sentence pairs with scores; eval prints the regression
// metrics; predict prints each pair's score, whose MSE against the gold scores is
// eval's, and a single text's score from an argument.
func TestRegressionTrainEvalPredict(t *testing.T) {
	runtime.LockOSThread()
	dir := t.TempDir()
	lines := []string{}
	words := []string{"good", "nice", "table", "river", "stone", "great"}
	gold := []float64{}
	for i := range 48 {
		a, b := words[i%6]+" "+words[(i/6)%6], words[(i+2)%6]+" day"
		score := float64(strings.Count(a+" "+b, "good") + strings.Count(a+" "+b, "great"))
		lines = append(lines, fmt.Sprintf(`{"s1": %q, "s2": %q, "score": %v}`, a, b, score))
		gold = append(gold, score)
	}
	data := writeLines(t, dir, "pairs.jsonl", lines...)
	flags := []string{"--text-column", "s1", "--text-pair-column", "s2", "--label-column", "score", "--max-length", "16", "--threads", "2"}
	out := filepath.Join(dir, "run")
	mustRun(t, append([]string{"train", "--task", "regression", "--train", data, "--eval", data, "--model", "tiny", "--tokenizer", vocabFile,
		"--max-steps", "6", "--batch-size", "8", "--lr", "1e-3", "--output", out}, flags...)...)

	stdout := mustRun(t, append([]string{"eval", "--model", filepath.Join(out, "final"), "--data", data}, flags...)...)
	contains(t, "eval", stdout, "48 examples, regression model", "  mse ", "  pearson ", "  spearman ", "  rmse ", "  mae ")
	_, after, _ := strings.Cut(stdout, "  mse ")
	mse, err := strconv.ParseFloat(strings.Fields(after)[0], 64)
	if err != nil {
		t.Fatal(err)
	}

	preds := jsonLines[train.Score](t, mustRun(t, append([]string{"predict", "--model", filepath.Join(out, "final"), "--file", data}, flags...)...))
	if len(preds) != len(gold) {
		t.Fatalf("%d predictions for %d pairs", len(preds), len(gold))
	}
	var sum float64
	for i, p := range preds {
		if p.Score == nil || p.TextPair == "" || !strings.Contains(lines[i], strconv.Quote(p.TextPair)) {
			t.Fatalf("prediction %d: %+v", i, p)
		}
		d := *p.Score - gold[i]
		sum += d * d
	}
	if got := sum / float64(len(gold)); math.Abs(got-mse) > 1e-4+1e-4*mse {
		t.Errorf("predicted scores' mse %v, eval printed %v", got, mse)
	}
	one := jsonLines[train.Score](t, mustRun(t, "predict", "--model", filepath.Join(out, "final"), "--max-length", "16", "good day"))
	if len(one) != 1 || one[0].Text != "good day" || one[0].Score == nil || one[0].TextPair != "" {
		t.Errorf("one text: %+v", one)
	}
}
