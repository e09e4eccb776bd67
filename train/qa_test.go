package train

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/shard"
)

// scoreWindows runs the windows exs through a fresh scorer of task in batches of batch,
// padded to the batch's longest window as the collator does. fill sets one window's
// logits: row is its [L, 2] interleaved start and end logits, zero to begin with.
func scoreWindows(t *testing.T, task *qaTask, exs []Example, batch int, fill func(e *Example, row []float32)) EvalResult {
	t.Helper()
	sc := task.scorer(nil)
	for i := 0; i < len(exs); i += batch {
		var ptrs []*Example
		for j := i; j < min(i+batch, len(exs)); j++ {
			ptrs = append(ptrs, &exs[j])
		}
		b := &model.Batch{B: len(ptrs)}
		for _, e := range ptrs {
			b.L = max(b.L, e.Enc.Len())
		}
		logits := make([]float32, b.B*b.L*2)
		for r, e := range ptrs {
			fill(e, logits[r*b.L*2:(r+1)*b.L*2])
		}
		if err := sc.add(ptrs, b, logits); err != nil {
			t.Fatal(err)
		}
	}
	res, err := sc.result()
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// handQA is a question over ctx whose answer is the text ans (empty: unanswerable).
func handQA(id, ctx, ans string) shard.Record {
	r := shard.Record{ID: id, Question: "which ?", Context: ctx, Impossible: ans == "", Pos: shard.Pos{File: "hand.json", Line: 1}}
	if ans != "" {
		i := strings.Index(ctx, ans)
		r.Answers = []shard.Answer{{Text: ans, Start: utf8.RuneCountInString(ctx[:i])}}
	}
	return r
}

// numbers is "from from+1 ... to-1": one token per number.
func numbers(from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		if i > from {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.Itoa(i))
	}
	return b.String()
}

// span scores the context tokens holding the runes of text in ctx with start and end
// logits, if the window holds them all; it says whether it does.
func span(e *Example, row []float32, text string, start, end float32) bool {
	i := strings.Index(e.Question.Context, text)
	from := utf8.RuneCountInString(e.Question.Context[:i])
	s, en, ok := e.Window.TokenSpan(from, from+utf8.RuneCountInString(text))
	if ok {
		row[2*s], row[2*en+1] = start, end
	}
	return ok
}

func TestQAPostProcessing(t *testing.T) {
	tok := testTokenizer(t)
	// 40 context tokens and the question's 2 in windows of 24 tokens: 19 context tokens
	// each, 8 shared with the next window (doc stride 24/3). Windows start at context
	// tokens 0, 11 and 22.
	ctx := numbers(10, 50)
	encode := func(t *testing.T, maxLen int, recs ...shard.Record) (*qaTask, []Example) {
		task := &qaTask{}
		exs, err := task.encode(tok, recs, nil, maxLen)
		if err != nil {
			t.Fatal(err)
		}
		return task, exs
	}
	windowsWith := func(exs []Example, text string) []int {
		var in []int
		for i := range exs {
			if span(&exs[i], make([]float32, 2*exs[i].Enc.Len()), text, 0, 0) {
				in = append(in, i)
			}
		}
		return in
	}
	t.Run("answer in the second window", func(t *testing.T) {
		task, exs := encode(t, 24, handQA("q", ctx, "30 31"))
		if len(exs) != 3 || !slices.Equal(windowsWith(exs, "30 31"), []int{1}) {
			t.Fatalf("setup: %d windows, answer in %v", len(exs), windowsWith(exs, "30 31"))
		}
		res := scoreWindows(t, task, exs, 2, func(e *Example, row []float32) {
			span(e, row, "30 31", 5, 5)
			span(e, row, "12", 3, 3) // a worse span in the first window only
		})
		if res.Predictions["q"] != "30 31" || res.Metrics["exact_match"] != 100 {
			t.Errorf("predicted %q, metrics %v", res.Predictions["q"], res.Metrics)
		}
	})
	t.Run("the best span over all windows wins", func(t *testing.T) {
		task, exs := encode(t, 24, handQA("q", ctx, "30 31"))
		res := scoreWindows(t, task, exs, 1, func(e *Example, row []float32) {
			span(e, row, "30 31", 5, 5)
			span(e, row, "45 46", 6, 6) // in the third window only
		})
		if res.Predictions["q"] != "45 46" || res.Metrics["exact_match"] != 0 || len(res.Mistakes) != 1 {
			t.Fatalf("predicted %q, metrics %v, mistakes %+v", res.Predictions["q"], res.Metrics, res.Mistakes)
		}
		if m := res.Mistakes[0]; m.Gold != "30 31" || m.Pred != "45 46" || m.Confidence <= 0 || m.Confidence >= 1 {
			t.Errorf("mistake %+v", m)
		}
	})
	t.Run("overlapping windows", func(t *testing.T) {
		task, exs := encode(t, 24, handQA("q", ctx, "32 33 34"))
		if in := windowsWith(exs, "32 33 34"); !slices.Equal(in, []int{1, 2}) {
			t.Fatalf("setup: answer in windows %v, want the overlap of 1 and 2", in)
		}
		// The second window scores the answer low and a decoy higher; the third scores
		// the answer highest, and its tokens map back to the same text.
		res := scoreWindows(t, task, exs, 3, func(e *Example, row []float32) {
			if e.Window == exs[1].Window {
				span(e, row, "32 33 34", 2, 2)
				span(e, row, "25", 3, 3)
			} else {
				span(e, row, "32 33 34", 4, 4)
			}
		})
		if res.Predictions["q"] != "32 33 34" {
			t.Errorf("predicted %q", res.Predictions["q"])
		}
	})
	t.Run("invalid spans are skipped", func(t *testing.T) {
		task, exs := encode(t, 64, handQA("q", ctx, "20"))
		if len(exs) != 1 {
			t.Fatalf("setup: %d windows", len(exs))
		}
		res := scoreWindows(t, task, exs, 1, func(e *Example, row []float32) {
			for i := range row {
				row[i] = -10
			}
			c := e.Window.ContextStart
			row[2*(c+5)] = 9    // the best start
			row[2*(c+2)+1] = 9  // an end before it
			row[2*(c+36)+1] = 9 // an end 32 tokens from it, more than 30
			row[2*(c+20)+1] = 1 // the best valid end
		})
		if res.Predictions["q"] != numbers(15, 31) {
			t.Errorf("predicted %q, want %q", res.Predictions["q"], numbers(15, 31))
		}
	})
	t.Run("v1 never answers nothing", func(t *testing.T) {
		task, exs := encode(t, 24, handQA("q", ctx, "30 31"))
		res := scoreWindows(t, task, exs, 3, func(e *Example, row []float32) {
			row[0], row[1] = 9, 9
			span(e, row, "30 31", 1, 1)
		})
		if res.Predictions["q"] != "30 31" || len(res.Metrics) != 2 {
			t.Errorf("predicted %q, metrics %v", res.Predictions["q"], res.Metrics)
		}
	})
	t.Run("v2 null answer", func(t *testing.T) {
		task, exs := encode(t, 24,
			handQA("none", numbers(10, 20), ""),
			handQA("span", ctx, "30 31"),
			handQA("null wins", ctx, "40"))
		if !task.v2 {
			t.Fatal("an impossible question did not make the task SQuAD v2")
		}
		res := scoreWindows(t, task, exs, 4, func(e *Example, row []float32) {
			switch e.Question.ID {
			case "none":
				row[0], row[1] = 6, 6
				span(e, row, "15", 4, 4)
			case "span":
				// The null score is the lowest over the windows: 2, below the span's 6.
				row[0], row[1] = 9, 9
				if span(e, row, "30 31", 3, 3) {
					row[0], row[1] = 1, 1
				}
			case "null wins":
				row[0], row[1] = 7, 7
				span(e, row, "40", 2, 2)
			}
		})
		want := map[string]string{"none": "", "span": "30 31", "null wins": ""}
		for id, w := range want {
			if got, ok := res.Predictions[id]; !ok || got != w {
				t.Errorf("%s: predicted %q, want %q", id, got, w)
			}
		}
		third := 100.0 / 3
		for k, w := range map[string]float64{"exact_match": 2 * third, "has_ans_exact_match": 50, "no_ans_exact_match": 100, "no_ans_f1": 100} {
			if got := res.Metrics[k]; math.Abs(got-w) > 1e-9 {
				t.Errorf("%s = %v, want %v", k, got, w)
			}
		}
		if len(res.Mistakes) != 1 || res.Mistakes[0].Pred != "" || res.Mistakes[0].Gold != "40" {
			t.Errorf("mistakes %+v", res.Mistakes)
		}
	})
}

// The check of the span mapping: the gold answers of the whole SQuAD v1.1 dev
// set, mapped to token spans by the sliding windows and back to text by the
// post-processing, score EM >= 99. Each window's logits peak at its labelled start and
// end tokens (windows without the answer stay flat), at run_qa.py's window of 384 and at
// 128, where a third of the questions span several windows.
func TestQAGoldSpansRoundTripSQuADDev(t *testing.T) {
	path := sharedFile(t, "squad_v1.1/dev-v1.1.json")
	tok := testTokenizer(t)
	recs, _, err := ReadAll(shard.Spec{Format: shard.SQuAD}, path)
	if err != nil {
		t.Fatal(err)
	}
	for _, maxLen := range []int{384, 128} {
		task := &qaTask{}
		exs, err := task.encode(tok, recs, nil, maxLen)
		if err != nil {
			t.Fatal(err)
		}
		res := scoreWindows(t, task, exs, 32, func(e *Example, row []float32) {
			if w := e.Window; w.StartPosition != 0 {
				row[2*w.StartPosition], row[2*w.EndPosition+1] = 10, 10
			}
		})
		em, f1 := res.Metrics["exact_match"], res.Metrics["f1"]
		t.Logf("max length %d: %d questions in %d windows: EM %.4f F1 %.4f, %d not exact", maxLen, len(recs), len(exs), em, f1, len(res.Mistakes))
		for _, m := range res.Mistakes[:min(3, len(res.Mistakes))] {
			t.Logf("  %s: gold %q, predicted %q", m.Source, m.Gold, m.Pred)
		}
		if len(res.Predictions) != len(recs) {
			t.Errorf("%d predictions for %d questions", len(res.Predictions), len(recs))
		}
		if em < 99 {
			t.Errorf("max length %d: EM %.4f < 99", maxLen, em)
		}
	}
}

// writeSQuAD writes the first paragraphs of src holding at least n questions, after
// skipping those holding skip, as a SQuAD file; it returns the number of questions.
func writeSQuAD(t *testing.T, src, dst string, skip, n int) int {
	t.Helper()
	var doc struct {
		Data []struct {
			Paragraphs []json.RawMessage `json:"paragraphs"`
		} `json:"data"`
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var out []json.RawMessage
	seen, kept := 0, 0
	for _, a := range doc.Data {
		for _, p := range a.Paragraphs {
			var qs struct {
				QAs []json.RawMessage `json:"qas"`
			}
			if err := json.Unmarshal(p, &qs); err != nil {
				t.Fatal(err)
			}
			if seen >= skip && kept < n {
				out = append(out, p)
				kept += len(qs.QAs)
			}
			seen += len(qs.QAs)
		}
	}
	b, err = json.Marshal(map[string]any{"version": "1.1", "data": []any{map[string]any{"title": "subset", "paragraphs": out}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return kept
}

// A tiny random-init BERT trained for a few dozen steps on a few hundred SQuAD questions
// runs end to end: the held-out loss falls, every question gets a prediction, EM and F1
// are reported.
func TestTinyBERTQAEndToEnd(t *testing.T) {
	runtime.LockOSThread()
	dev := sharedFile(t, "squad_v1.1/dev-v1.1.json")
	dir := t.TempDir()
	s := Defaults()
	s.Task = "qa"
	s.Train, s.Eval = filepath.Join(dir, "train.json"), filepath.Join(dir, "eval.json")
	nTrain := writeSQuAD(t, dev, s.Train, 0, 300)
	nEval := writeSQuAD(t, dev, s.Eval, 5000, 100)
	s.Tokenizer = "../data/vocab/bert-base-uncased.vocab.txt"
	s.MaxLength = 128
	s.BatchSize = 16
	s.MaxSteps = 30
	s.LR = 1e-3
	s.Threads = 2
	s.Metric = "f1"
	s.Output = filepath.Join(dir, "run")
	tr, err := Prepare(s, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	before, err := tr.Evaluate()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err := tr.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	after := res.Final
	t.Logf("%d train questions, %d eval (%d windows); %d steps in %s: eval loss %.4f -> %.4f, EM %.2f F1 %.2f",
		nTrain, nEval, len(tr.Eval), res.Steps, time.Since(start).Round(time.Second),
		before.Loss, after.Loss, after.Metrics["exact_match"], after.Metrics["f1"])
	if !(after.Loss < before.Loss-0.5) {
		t.Errorf("eval loss %.4f -> %.4f: not falling", before.Loss, after.Loss)
	}
	if len(after.Predictions) != nEval {
		t.Errorf("%d predictions for %d questions", len(after.Predictions), nEval)
	}
	for _, k := range []string{"exact_match", "f1"} {
		if v, ok := after.Metrics[k]; !ok || v < 0 || v > 100 {
			t.Errorf("%s = %v (present %v)", k, v, ok)
		}
	}
	if _, err := os.Stat(filepath.Join(s.Output, "best", "model.safetensors")); err != nil {
		t.Error(err)
	}
}

// BenchmarkQAScorer is the post-processing of one evaluation batch: 32 windows of 384
// tokens over one long context, random logits.
func BenchmarkQAScorer(b *testing.B) {
	tok, err := loadTokenizer("../data/vocab/bert-base-uncased.vocab.txt", true)
	if err != nil {
		b.Fatal(err)
	}
	task := &qaTask{}
	exs, err := task.encode(tok, []shard.Record{handQA("q", numbers(1000, 9000), "4000")}, nil, 384)
	if err != nil {
		b.Fatal(err)
	}
	exs = exs[:min(32, len(exs))]
	ptrs := make([]*Example, len(exs))
	batch := &model.Batch{B: len(exs), L: 384}
	for i := range exs {
		ptrs[i] = &exs[i]
	}
	logits := make([]float32, batch.B*batch.L*2)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range logits {
		logits[i] = float32(rng.NormFloat64())
	}
	sc := task.scorer(nil)
	b.ReportAllocs()
	for b.Loop() {
		if err := sc.add(ptrs, batch, logits); err != nil {
			b.Fatal(err)
		}
	}
}
