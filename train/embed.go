package train

import (
	"fmt"
	"slices"
	"strings"

	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/report"
	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/tokenize"
)

// Embedding is an embedding model's vector for one text.
type Embedding struct {
	Text      string    `json:"text"`
	Embedding []float32 `json:"embedding"`
	Tokens    int       `json:"-"` // the text's tokens the model read, specials included
}

// Embed is each text's vector from an embedding model (task embed), scaled to unit
// length when normalize is set.
func (t *Trainer) Embed(texts []string, normalize bool) ([]Embedding, error) {
	if t.Spec.Task != string(model.Embed) {
		return nil, fmt.Errorf("embed: the checkpoint's task is %s; give --pooling to read its encoder as an embedding model", t.Spec.Task)
	}
	exs, err := t.encodeTexts(texts, nil)
	if err != nil {
		return nil, err
	}
	out := make([]Embedding, 0, len(texts))
	err = t.infer(exs, func(e *Example, row []float32) error {
		v := make([]float32, len(row))
		copy(v, row)
		if normalize {
			Normalize(v)
		}
		out = append(out, Embedding{Text: e.Text, Embedding: v, Tokens: e.Enc.Len()})
		return nil
	})
	return out, err
}

// Normalize is model.Normalize, for the callers of this package's embeddings.
var Normalize = model.Normalize

// embedTask trains an embedding model on (text, text_pair) pairs (squad data: questions
// and their contexts, as dense passage retrieval does): each text's pair is its
// positive and the batch's other pairs its negatives (model.Embed's loss), with the
// data's hard negatives (data.negative) as more negatives when it has them.
type embedTask struct{}

func (embedTask) encode(tok *tokenize.Tokenizer, recs []shard.Record, _ *shard.LabelSet, maxLen int) ([]Example, error) {
	out := make([]Example, 0, len(recs))
	for i := range recs {
		rec := &recs[i]
		text, pair := rec.Text, rec.TextPair
		if rec.Question != "" {
			text, pair = rec.Question, rec.Context
		}
		if strings.TrimSpace(pair) == "" {
			return nil, fmt.Errorf("%s:%d: text_pair: empty: an embedding model trains on (text, text_pair) pairs, the pair the text's positive", rec.Pos.File, rec.Pos.Line)
		}
		a, err := tok.Encode(text, maxLen)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", rec.Pos.File, rec.Pos.Line, err)
		}
		p, err := tok.Encode(pair, maxLen)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: text_pair: %w", rec.Pos.File, rec.Pos.Line, err)
		}
		ex := Example{Enc: a, Positive: &p, Text: text, PositiveText: pair, Pos: rec.Pos}
		if rec.Negative != "" {
			neg, err := tok.Encode(rec.Negative, maxLen)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: negative: %w", rec.Pos.File, rec.Pos.Line, err)
			}
			ex.Negative, ex.NegativeText = &neg, rec.Negative
		}
		out = append(out, ex)
	}
	return out, nil
}

// label makes each anchor's positive the candidate of the same index (Trainer.batch
// puts the positives after the anchors, in order).
func (embedTask) label(b *model.Batch, exs []*Example) {
	b.Labels = make([]int64, len(exs))
	for i := range b.Labels {
		b.Labels[i] = int64(i)
	}
}

func (embedTask) scorer([]string) scorer { return &embedScorer{} }

// gramRows anchors are scored at a time: 1024 rows of similarities with 100k candidates
// take 400 MB.
const gramRows = 1024

// embedScorer scores retrieval over the whole evaluation set, as sentence-transformers'
// InformationRetrievalEvaluator does: each anchor ranks every example's positive (and
// hard negative) by cosine similarity, its own positive the one relevant.
type embedScorer struct {
	exs                           []*Example
	h                             int       // dimensions
	anchors, positives, negatives []float32 // unit vectors, row-major, positives in the anchors' order
}

func (s *embedScorer) add(exs []*Example, b *model.Batch, logits []float32) error {
	h, n := len(logits)/b.B, len(exs)
	if b.B != 2*n && b.B != 3*n {
		return fmt.Errorf("embed: %d vectors for %d examples", b.B, n)
	}
	s.h = h
	for i := range b.B {
		dst := &s.negatives
		switch {
		case i < n:
			dst = &s.anchors
		case i < 2*n:
			dst = &s.positives
		}
		*dst = append(*dst, logits[i*h:(i+1)*h]...)
		Normalize((*dst)[len(*dst)-h:])
	}
	s.exs = append(s.exs, exs...)
	return nil
}

// result is accuracy@1 and @5 (the positive among the k most similar candidates) and
// MRR@10; an anchor whose best candidate is not its positive is a mistake. A tie with
// the positive counts for it.
func (s *embedScorer) result() (EvalResult, error) {
	n := len(s.exs)
	var at1, at5, mrr float64
	var r EvalResult
	all := append(slices.Clip(s.positives), s.negatives...)
	m := len(all) / max(s.h, 1)
	var block []float32 // the similarities of gramRows anchors with every candidate
	for i := range n {
		if i%gramRows == 0 {
			block = model.Gram(s.anchors[i*s.h:min(i+gramRows, n)*s.h], all, s.h)
		}
		sims := block[i%gramRows*m : (i%gramRows+1)*m]
		rank, best := 1, i
		for j, v := range sims {
			if j != i && v > sims[i] {
				rank++
			}
			if v > sims[best] {
				best = j
			}
		}
		if rank == 1 {
			at1++
		} else {
			e, pred := s.exs[i], ""
			if best < n {
				pred = s.exs[best].PositiveText
			} else {
				pred = s.exs[best-n].NegativeText
			}
			r.Mistakes = append(r.Mistakes, report.Mistake{Text: e.Text, Gold: e.PositiveText, Pred: pred,
				Confidence: float64(sims[best]), Source: fmt.Sprintf("%s:%d", e.Pos.File, e.Pos.Line)})
		}
		if rank <= 5 {
			at5++
		}
		if rank <= 10 {
			mrr += 1 / float64(rank)
		}
	}
	d := float64(max(n, 1))
	r.Metrics = map[string]float64{"accuracy_at_1": at1 / d, "accuracy_at_5": at5 / d, "mrr_at_10": mrr / d}
	return r, nil
}
