package train

import (
	"fmt"
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

// Truncate cuts each vector to its first dims dimensions (Matryoshka truncation, as
// sentence-transformers' truncate_dim and OpenAI's dimensions) and, when normalize is
// set, scales it to unit length again: the same as normalizing the cut raw vector. It
// refuses a width wider than the vectors', naming field.
func Truncate(es []Embedding, dims int, normalize bool, field string) error {
	for i := range es {
		v := es[i].Embedding
		if dims < 1 || dims > len(v) {
			return fmt.Errorf("%s: %d is not in [1, %d], the model's width", field, dims, len(v))
		}
		if dims < len(v) {
			v = v[:dims:dims]
			if normalize {
				Normalize(v)
			}
			es[i].Embedding = v
		}
	}
	return nil
}

// embedTask trains an embedding model on (text, text_pair) pairs (squad data: questions
// and their contexts, as dense passage retrieval does): each text's pair is its
// positive and the batch's other pairs its negatives (model.Embed's loss), with the
// data's hard negatives (data.negative) as more negatives when it has them.
// Evaluation also scores the vectors cut to each of dims (matryoshka_dims).
type embedTask struct{ dims []int }

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

func (t embedTask) scorer([]string) scorer { return &embedScorer{dims: t.dims} }

// gramRows anchors are scored at a time: 1024 rows of similarities with 100k candidates
// take 400 MB.
const gramRows = 1024

// embedScorer scores retrieval over the whole evaluation set, as sentence-transformers'
// InformationRetrievalEvaluator does: each anchor ranks every example's positive (and
// hard negative) by cosine similarity, its own positive the one relevant. With dims it
// scores the vectors cut to each of those widths too, as sentence-transformers'
// Matryoshka evaluations do.
type embedScorer struct {
	exs                           []*Example
	dims                          []int
	h                             int       // dimensions
	anchors, positives, negatives []float32 // the vectors as the model gives them, row-major, positives in the anchors' order
}

func (s *embedScorer) add(exs []*Example, b *model.Batch, logits []float32) error {
	h, n := len(logits)/b.B, len(exs)
	if b.B != 2*n && b.B != 3*n {
		return fmt.Errorf("embed: %d vectors for %d examples", b.B, n)
	}
	s.h = h
	s.anchors = append(s.anchors, logits[:n*h]...)
	s.positives = append(s.positives, logits[n*h:2*n*h]...)
	s.negatives = append(s.negatives, logits[2*n*h:]...)
	s.exs = append(s.exs, exs...)
	return nil
}

// result is accuracy@1 and @5 (the positive among the k most similar candidates) and
// MRR@10 of the whole vectors, and of each narrower Matryoshka width d as
// accuracy_at_1_dim<d>...; an anchor whose best candidate (by the whole vectors) is
// not its positive is a mistake. A tie with the positive counts for it.
func (s *embedScorer) result() (EvalResult, error) {
	var r EvalResult
	r.Metrics = s.retrieval(s.h, &r.Mistakes)
	for _, d := range s.dims {
		if d >= s.h {
			continue
		}
		for k, v := range s.retrieval(d, nil) {
			r.Metrics[fmt.Sprintf("%s_dim%d", k, d)] = v
		}
	}
	return r, nil
}

// retrieval scores the vectors cut to their first d dimensions (then of unit length),
// appending the mistakes to mistakes when it is not nil.
func (s *embedScorer) retrieval(d int, mistakes *[]report.Mistake) map[string]float64 {
	n := len(s.exs)
	anchors := unitRows(s.anchors, s.h, d)
	all := append(unitRows(s.positives, s.h, d), unitRows(s.negatives, s.h, d)...)
	var at1, at5, mrr float64
	m := len(all) / max(d, 1)
	var block []float32 // the similarities of gramRows anchors with every candidate
	for i := range n {
		if i%gramRows == 0 {
			block = model.Gram(anchors[i*d:min(i+gramRows, n)*d], all, d)
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
		} else if mistakes != nil {
			e, pred := s.exs[i], ""
			if best < n {
				pred = s.exs[best].PositiveText
			} else {
				pred = s.exs[best-n].NegativeText
			}
			*mistakes = append(*mistakes, report.Mistake{Text: e.Text, Gold: e.PositiveText, Pred: pred,
				Confidence: float64(sims[best]), Source: fmt.Sprintf("%s:%d", e.Pos.File, e.Pos.Line)})
		}
		if rank <= 5 {
			at5++
		}
		if rank <= 10 {
			mrr += 1 / float64(rank)
		}
	}
	f := float64(max(n, 1))
	return map[string]float64{"accuracy_at_1": at1 / f, "accuracy_at_5": at5 / f, "mrr_at_10": mrr / f}
}

// unitRows is the rows of width h in vecs cut to their first d values, each scaled to
// unit length.
func unitRows(vecs []float32, h, d int) []float32 {
	out := make([]float32, 0, len(vecs)/max(h, 1)*d)
	for i := 0; i+h <= len(vecs); i += h {
		out = append(out, vecs[i:i+d]...)
		Normalize(out[len(out)-d:])
	}
	return out
}
