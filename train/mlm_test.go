package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/shard"
)

// Masking chooses about mlm_probability of the non-special tokens, never a special
// one; of the chosen 80% become the mask token, 10% a random id, 10% stay; labels are the
// chosen tokens' ids and -100 elsewhere. The same seed and record give the same masks,
// wherever the file is; another seed (another step), record or file other ones.
func TestMaskTokensStatistics(t *testing.T) {
	const n, maskID, vocab = 200, 103, 1000
	words := make([]int32, n)
	for i := range words {
		words[i] = int32(i)
	}
	words[0], words[n-1] = -1, -1 // [CLS], [SEP]
	var chosen, masked, random, kept, total int
	draw := func(seed int64, pos shard.Pos) ([]int64, []int64) {
		ids, labels := make([]int64, n), make([]int64, n)
		for i := range ids {
			ids[i] = int64(2000 + i) // outside [0, vocab): a random id is told from a kept one
		}
		maskTokens(ids, labels, words, recordRand(seed, pos), DefaultMLMProbability, maskID, vocab)
		return ids, labels
	}
	for rec := range 500 {
		ids, labels := draw(7, shard.Pos{File: "a.txt", Offset: int64(100 * rec), Index: rec})
		for j := range n {
			if words[j] < 0 {
				if labels[j] != model.IgnoreIndex || ids[j] != int64(2000+j) {
					t.Fatalf("special token %d masked", j)
				}
				continue
			}
			total++
			if labels[j] == model.IgnoreIndex {
				if ids[j] != int64(2000+j) {
					t.Fatalf("unlabelled token %d changed to %d", j, ids[j])
				}
				continue
			}
			if labels[j] != int64(2000+j) {
				t.Fatalf("token %d labelled %d, not its id", j, labels[j])
			}
			chosen++
			switch {
			case ids[j] == maskID:
				masked++
			case ids[j] == int64(2000+j):
				kept++
			case ids[j] >= 0 && ids[j] < vocab:
				random++
			default:
				t.Fatalf("token %d became %d", j, ids[j])
			}
		}
	}
	share := func(a, b int) float64 { return float64(a) / float64(b) }
	t.Logf("chosen %.4f; masked %.3f random %.3f kept %.3f", share(chosen, total), share(masked, chosen), share(random, chosen), share(kept, chosen))
	if math.Abs(share(chosen, total)-0.15) > 0.005 || math.Abs(share(masked, chosen)-0.8) > 0.01 ||
		math.Abs(share(random, chosen)-0.1) > 0.01 || math.Abs(share(kept, chosen)-0.1) > 0.01 {
		t.Errorf("chosen %d of %d; masked %d, random %d, kept %d: not 15%% and 80/10/10", chosen, total, masked, random, kept)
	}
	pos := shard.Pos{File: "a.txt", Offset: 40, Index: 3}
	a1, l1 := draw(7, pos)
	a2, l2 := draw(7, pos)
	if !slices.Equal(a1, a2) || !slices.Equal(l1, l2) {
		t.Error("the same seed and record masked differently")
	}
	b, _ := draw(8, pos)
	c, _ := draw(7, shard.Pos{File: "a.txt", Offset: 80, Index: 4})
	d, _ := draw(7, shard.Pos{File: "b.txt", Offset: 40, Index: 3})
	if slices.Equal(a1, b) || slices.Equal(a1, c) || slices.Equal(a1, d) {
		t.Error("another seed, record or file masked the same tokens")
	}
	if e, _ := draw(7, shard.Pos{File: "/elsewhere/a.txt", Offset: 40, Index: 3}); !slices.Equal(a1, e) {
		t.Error("the same file in another directory masked other tokens")
	}
}

// capitals writes n "the capital of X is Y ." lines as jsonl: the capital is the one
// token a model can learn from the rest.
func capitals(t *testing.T, path string, n int) {
	t.Helper()
	pairs := [][2]string{{"france", "paris"}, {"italy", "rome"}, {"spain", "madrid"}, {"japan", "tokyo"},
		{"egypt", "cairo"}, {"peru", "lima"}, {"china", "beijing"}, {"russia", "moscow"}}
	var b strings.Builder
	for i := range n {
		p := pairs[i%len(pairs)]
		fmt.Fprintf(&b, "{\"text\": \"the capital of %s is %s .\"}\n", p[0], p[1])
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// mlmSpec is a tiny mlm run on capitals.
func mlmSpec(t *testing.T, dir string) Spec {
	train, eval := filepath.Join(dir, "train.jsonl"), filepath.Join(dir, "eval.jsonl")
	capitals(t, train, 160)
	capitals(t, eval, 32)
	s := Defaults()
	s.Task, s.Train, s.Eval, s.Model = string(model.MLM), train, eval, "tiny"
	s.MaxLength, s.Threads, s.BatchSize, s.Epochs, s.LR, s.Output = 16, 2, 16, 8, 3e-3, filepath.Join(dir, "run")
	s.MLMProbability = 0.3
	return s
}

// A tiny model trained with mlm on repetitive text lowers the masked tokens' perplexity
// far below its start, keeps the best checkpoint by the lowest perplexity, and the saved
// checkpoint loads as mlm (BertForMaskedLM, ElectraForMaskedLM, ModernBertForMaskedLM,
// DebertaV2ForMaskedLM, NomicBertForPreTraining), scores as the run did and fills masks.
func TestMLMTrainingLowersPerplexity(t *testing.T) {
	for _, preset := range []string{"tiny", "electra-tiny", "modernbert-tiny", "deberta-v2-tiny", "nomic_bert-tiny"} {
		t.Run(preset, func(t *testing.T) { mlmLowersPerplexity(t, preset) })
	}
}

func mlmLowersPerplexity(t *testing.T, preset string) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	dir := t.TempDir()
	s := mlmSpec(t, dir)
	s.Model = preset
	if preset != "tiny" { // 8 epochs left ModernBERT's perplexity near 4, NomicBERT's top guess "is" at times
		s.Epochs *= 2
	}
	tr, err := Prepare(s, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Spec.Metric != "perplexity" {
		t.Errorf("metric %q, want perplexity", tr.Spec.Metric)
	}
	before, err := tr.Evaluate()
	if err != nil {
		t.Fatal(err)
	}
	res, err := tr.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("perplexity %.1f -> %.2f, accuracy %.3f -> %.3f", before.Metrics["perplexity"], res.Best.Metrics["perplexity"], before.Metrics["accuracy"], res.Best.Metrics["accuracy"])
	if before.Metrics["perplexity"] < 1000 || res.Best.Metrics["perplexity"] > 10 || res.Best.Metrics["accuracy"] < 0.5 {
		t.Fatalf("perplexity %.1f -> %.2f, accuracy %.3f: did not learn the texts", before.Metrics["perplexity"], res.Best.Metrics["perplexity"], res.Best.Metrics["accuracy"])
	}
	e := Defaults()
	e.Model, e.Eval, e.MaxLength, e.Threads = filepath.Join(s.Output, "best"), s.Eval, 16, 2
	e.MLMProbability = s.MLMProbability // the same masks
	loaded, err := ForEval(e, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Spec.Task != string(model.MLM) {
		t.Fatalf("the saved model loads as %s", loaded.Spec.Task)
	}
	again, err := loaded.Evaluate()
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(again.Metrics["perplexity"]-res.Best.Metrics["perplexity"]) > 1e-6*res.Best.Metrics["perplexity"] {
		t.Errorf("the saved model's perplexity %v, the run's best %v", again.Metrics["perplexity"], res.Best.Metrics["perplexity"])
	}

	// fill-mask: what the short run learned first (a capital after "is"; this run is too
	// short to tie each to its country), the filled text; a text without a mask refused
	filled, err := loaded.FillMask([]string{"the capital of italy is [MASK] .", "the [MASK] of japan is tokyo ."}, 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", filled)
	capitals := "paris rome madrid tokyo cairo lima beijing moscow"
	for i, f := range filled {
		if len(f.Masks) != 1 || len(f.Masks[0]) != 3 || f.Masks[0][0].Score < f.Masks[0][1].Score || f.Masks[0][0].Score > 1 {
			t.Fatalf("text %d: %+v: want one mask's top 3, most probable first", i, f)
		}
	}
	if top := filled[0].Masks[0]; !slices.Contains(strings.Fields(capitals), top[0].TokenStr) || top[0].Sequence != "the capital of italy is "+top[0].TokenStr+" ." {
		t.Errorf("text 1: %+v: want a capital first, filled in", top)
	}
	if top := filled[1].Masks[0][0]; top.TokenStr != "capital" || top.Sequence != "the capital of japan is tokyo ." {
		t.Errorf("text 2: %+v: want capital first, filled in", top)
	}
	if _, err := loaded.FillMask([]string{"the capital of italy is rome ."}, 3); !errors.Is(err, ErrNoMask) {
		t.Errorf("a text without a mask: %v", err)
	}
}
