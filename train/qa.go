package train

import (
	"fmt"
	"math"
	"strings"

	"github.com/bertnode/bertnode/metrics"
	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/report"
	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/tokenize"
)

// Post-processing limits, as transformers' run_qa.py defaults.
const (
	qaNBest        = 20  // start and end candidates per window
	qaMaxAnswerLen = 30  // tokens
	qaMaxDocStride = 128 // context tokens shared by consecutive windows
)

// docStride is run_qa.py's 128 at its max_length of 384, and a third of shorter windows,
// so that a window always moves on.
func docStride(maxLen int) int { return min(qaMaxDocStride, maxLen/3) }

// qaTask is extractive question answering (SQuAD v1.1 and v2.0). Examples are windows
// of a context: a question whose context is longer than a window has several, each
// labelled with the answer's token span, or [CLS] when the answer is not wholly inside
// it. Evaluation gathers an example's windows back into one answer.
type qaTask struct {
	stride int // context tokens shared by consecutive windows; 0: docStride's default
	// v2 is set when the data holds unanswerable questions (SQuAD v2.0): the scorer
	// may then answer nothing, and scores with the v2.0 script.
	v2 bool
}

func (t *qaTask) encode(tok *tokenize.Tokenizer, recs []shard.Record, _ *shard.LabelSet, maxLen int) ([]Example, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	qs := make([]tokenize.QAExample, len(recs))
	for i := range recs {
		rec := &recs[i]
		if rec.Question == "" || rec.Context == "" {
			return nil, fmt.Errorf("%s:%d: record %q has no question or context (the qa task reads SQuAD JSON)", rec.Pos.File, rec.Pos.Line, rec.ID)
		}
		q := tokenize.QAExample{ID: rec.ID, Question: rec.Question, Context: rec.Context}
		for _, a := range rec.Answers {
			q.Answers = append(q.Answers, tokenize.Answer{Text: a.Text, Start: a.Start})
		}
		t.v2 = t.v2 || rec.Impossible
		qs[i] = q
	}
	stride := t.stride
	if stride == 0 {
		stride = docStride(maxLen)
	}
	feats, err := tok.EncodeQA(qs, maxLen, stride)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", recs[0].Pos.File, err)
	}
	out := make([]Example, len(feats))
	for i := range feats {
		f := &feats[i]
		out[i] = Example{Enc: f.Encoding, Window: f, Question: &qs[f.Example], Pos: recs[f.Example].Pos}
	}
	return out, nil
}

// label gives start positions, then end positions, as the model's QA head takes them.
func (*qaTask) label(b *model.Batch, exs []*Example) {
	b.Labels = make([]int64, 2*len(exs))
	for i, e := range exs {
		b.Labels[i] = int64(e.Window.StartPosition)
		b.Labels[len(exs)+i] = int64(e.Window.EndPosition)
	}
}

func (t *qaTask) scorer([]string) scorer {
	v := metrics.SQuAD11
	if t.v2 {
		v = metrics.SQuAD20
	}
	return &qaScorer{v2: t.v2, counts: metrics.NewQACounts(v)}
}

// qaScorer is run_qa.py's post-processing: for each window, the qaNBest best start and
// end tokens in its context make the candidate spans (end >= start, at most
// qaMaxAnswerLen tokens); an example's answer is the best-scoring span over all its
// windows, scored by start plus end logit. With v2 the answer is empty when the
// [CLS] score (the lowest over the windows) beats it.
type qaScorer struct {
	v2     bool
	counts *metrics.QACounts
	best   []qaBest // by example index
}

// qaBest is the best answer so far to one example.
type qaBest struct {
	ex         *Example            // one of its windows, for the question and its source
	win        *tokenize.QAFeature // of the best span; nil: no valid span yet
	start, end int
	score      float32
	prob       float64 // of the span within its window, for error analysis
	null       float32
	probNull   float64
}

func (s *qaScorer) add(exs []*Example, b *model.Batch, logits []float32) error {
	if len(logits) != b.B*b.L*2 {
		return fmt.Errorf("qa: %d logits for a batch of %d x %d tokens x 2", len(logits), b.B, b.L)
	}
	for r, e := range exs {
		w := e.Window
		if w.Example >= len(s.best) {
			s.best = append(s.best, make([]qaBest, w.Example+1-len(s.best))...)
		}
		bst := &s.best[w.Example]
		first := bst.ex == nil
		bst.ex = e
		row := logits[r*b.L*2 : (r*b.L+w.Len())*2] // the window's tokens, not its padding
		null := row[0] + row[1]
		if first || null < bst.null {
			bst.null = null
			bst.probNull = math.Exp(float64(null) - logSumExp(row, 0) - logSumExp(row, 1))
		}
		starts := topContext(row, 0, w.ContextStart, w.ContextEnd)
		ends := topContext(row, 1, w.ContextStart, w.ContextEnd)
		improved := false
		for _, st := range starts.idx[:starts.n] {
			for _, en := range ends.idx[:ends.n] {
				if en < st || en-st+1 > qaMaxAnswerLen {
					continue
				}
				if sc := row[2*st] + row[2*en+1]; bst.win == nil || sc > bst.score {
					bst.win, bst.start, bst.end, bst.score = w, int(st), int(en), sc
					improved = true
				}
			}
		}
		if improved {
			bst.prob = math.Exp(float64(bst.score) - logSumExp(row, 0) - logSumExp(row, 1))
		}
	}
	return nil
}

// topK holds the indexes of the highest logits, best first.
type topK struct {
	idx [qaNBest]int32
	val [qaNBest]float32
	n   int
}

// topContext finds the qaNBest highest start (col 0) or end (col 1) logits among the
// context tokens [from, to) of an interleaved [L, 2] row, without allocating.
func topContext(row []float32, col, from, to int) topK {
	var t topK
	for i := from; i < to; i++ {
		v := row[2*i+col]
		if t.n == qaNBest && v <= t.val[t.n-1] {
			continue
		}
		j := min(t.n, qaNBest-1)
		for j > 0 && t.val[j-1] < v {
			t.idx[j], t.val[j] = t.idx[j-1], t.val[j-1]
			j--
		}
		t.idx[j], t.val[j] = int32(i), v
		t.n = min(t.n+1, qaNBest)
	}
	return t
}

// logSumExp of column col of an interleaved [L, 2] row.
func logSumExp(row []float32, col int) float64 {
	m := math.Inf(-1)
	for i := col; i < len(row); i += 2 {
		m = math.Max(m, float64(row[i]))
	}
	var z float64
	for i := col; i < len(row); i += 2 {
		z += math.Exp(float64(row[i]) - m)
	}
	return m + math.Log(z)
}

// answer is the best span's text, its first rune in the context and its probability;
// or no answer (start -1) with the [CLS] probability when there is no valid span or,
// with v2, when the [CLS] score beats the best span's.
func (b *qaBest) answer(v2 bool) (text string, start int, prob float64, err error) {
	if b.win == nil || v2 && b.score < b.null {
		return "", -1, b.probNull, nil
	}
	text, ok := b.win.AnswerText(b.ex.Question.Context, b.start, b.end)
	if !ok {
		return "", -1, 0, fmt.Errorf("qa: example %q: span %d..%d is outside its window's context", b.ex.Question.ID, b.start, b.end)
	}
	return text, int(b.win.Offsets[b.start].Start), b.prob, nil
}

func (s *qaScorer) result() (EvalResult, error) {
	r := EvalResult{Predictions: make(map[string]string, len(s.best))}
	for i := range s.best {
		bst := &s.best[i]
		if bst.ex == nil {
			continue // no window of this example was scored
		}
		q := bst.ex.Question
		pred, _, prob, err := bst.answer(s.v2)
		if err != nil {
			return r, err
		}
		golds := make([]string, len(q.Answers))
		for j, a := range q.Answers {
			golds[j] = a.Text
		}
		r.Predictions[q.ID] = pred
		before := s.counts.HasAns.Exact + s.counts.NoAns.Exact
		s.counts.Add(pred, golds)
		if s.counts.HasAns.Exact+s.counts.NoAns.Exact == before {
			r.Mistakes = append(r.Mistakes, report.Mistake{Text: q.Question, Gold: strings.Join(golds, " | "),
				Pred: pred, Confidence: prob, Source: fmt.Sprintf("%s:%d %s", bst.ex.Pos.File, bst.ex.Pos.Line, q.ID)})
		}
	}
	q := s.counts.Result()
	r.Metrics = map[string]float64{"exact_match": q.Exact, "f1": q.F1}
	if s.v2 {
		r.Metrics["has_ans_exact_match"], r.Metrics["has_ans_f1"] = q.HasAnsExact, q.HasAnsF1
		r.Metrics["no_ans_exact_match"], r.Metrics["no_ans_f1"] = q.NoAnsExact, q.NoAnsF1
	}
	return r, nil
}
