package train

import (
	"fmt"
	"math"

	"github.com/bertnode/bertnode/metrics"
	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/report"
	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/tokenize"
)

// classifyTask is single-label sequence classification.
type classifyTask struct{}

// multiLabelTask is multi-label sequence classification: a 0/1 target per class.
type multiLabelTask struct{}

func (classifyTask) encode(tok *tokenize.Tokenizer, recs []shard.Record, labels *shard.LabelSet, maxLen int) ([]Example, error) {
	return encodeSequences(tok, recs, labels, maxLen, false)
}

func (multiLabelTask) encode(tok *tokenize.Tokenizer, recs []shard.Record, labels *shard.LabelSet, maxLen int) ([]Example, error) {
	return encodeSequences(tok, recs, labels, maxLen, true)
}

func encodeSequences(tok *tokenize.Tokenizer, recs []shard.Record, labels *shard.LabelSet, maxLen int, multi bool) ([]Example, error) {
	out := make([]Example, 0, len(recs))
	var ids []int
	for i := range recs {
		rec := &recs[i]
		enc, err := encodeText(tok, rec.Text, rec.TextPair, maxLen)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", rec.Pos.File, rec.Pos.Line, err)
		}
		if ids, err = labels.IDs(ids[:0], rec); err != nil {
			return nil, err
		}
		ex := Example{Enc: enc, Text: rec.Text, Pos: rec.Pos}
		if multi {
			ex.Target = make([]float32, labels.Len())
			for _, id := range ids {
				ex.Target[id] = 1
			}
		} else {
			if len(ids) != 1 {
				return nil, fmt.Errorf("%s:%d: label: %d labels on a single-label task (use task multilabel)", rec.Pos.File, rec.Pos.Line, len(ids))
			}
			ex.Label = ids[0]
		}
		out = append(out, ex)
	}
	return out, nil
}

func (classifyTask) label(b *model.Batch, exs []*Example) {
	b.Labels = make([]int64, 0, len(exs))
	for _, e := range exs {
		b.Labels = append(b.Labels, int64(e.Label))
	}
}

func (multiLabelTask) label(b *model.Batch, exs []*Example) {
	b.Targets = make([]float32, 0, len(exs)*len(exs[0].Target))
	for _, e := range exs {
		b.Targets = append(b.Targets, e.Target...)
	}
}

func (classifyTask) scorer(labels []string) scorer {
	return &classifyScorer{labels: labels, conf: metrics.NewConfusion(labels)}
}

func (multiLabelTask) scorer(labels []string) scorer {
	return &multiLabelScorer{n: len(labels), counts: metrics.NewLabelCounts(labels)}
}

type classifyScorer struct {
	labels   []string
	conf     *metrics.Confusion
	mistakes []report.Mistake
}

func (s *classifyScorer) add(exs []*Example, _ *model.Batch, logits []float32) error {
	n := len(s.labels)
	for r, e := range exs {
		p, prob := argmaxSoftmax(logits[r*n : (r+1)*n])
		if err := s.conf.Add(e.Label, p); err != nil {
			return err
		}
		if p != e.Label {
			s.mistakes = append(s.mistakes, report.Mistake{Text: e.Text, Gold: s.labels[e.Label], Pred: s.labels[p],
				Confidence: prob, Source: fmt.Sprintf("%s:%d", e.Pos.File, e.Pos.Line)})
		}
	}
	return nil
}

func (s *classifyScorer) result() (EvalResult, error) {
	r := EvalResult{Report: s.conf.Report(), Confusion: s.conf, Mistakes: s.mistakes}
	r.Metrics = r.Report.Named()
	r.Metrics["accuracy"] = r.Report.Accuracy
	return r, nil
}

type multiLabelScorer struct {
	n          int
	counts     *metrics.LabelCounts
	gold, pred []bool
}

func (s *multiLabelScorer) add(exs []*Example, _ *model.Batch, logits []float32) error {
	for r, e := range exs {
		s.gold, s.pred = s.gold[:0], s.pred[:0]
		for k, v := range logits[r*s.n : (r+1)*s.n] {
			s.gold = append(s.gold, e.Target[k] == 1)
			s.pred = append(s.pred, v > 0) // sigmoid(v) > 0.5
		}
		if err := s.counts.Add(s.gold, s.pred); err != nil {
			return err
		}
	}
	return nil
}

func (s *multiLabelScorer) result() (EvalResult, error) {
	mr := s.counts.Report()
	r := EvalResult{Report: mr.Report}
	r.Metrics = r.Report.Named()
	r.Metrics["subset_accuracy"] = mr.Accuracy
	r.Metrics["hamming_loss"] = mr.HammingLoss
	return r, nil
}

// argmaxSoftmax returns the arg max of logits and its softmax probability.
func argmaxSoftmax(logits []float32) (int, float64) {
	best := 0
	for i, v := range logits {
		if v > logits[best] {
			best = i
		}
	}
	var z float64
	for _, v := range logits {
		z += math.Exp(float64(v - logits[best]))
	}
	return best, 1 / z
}
