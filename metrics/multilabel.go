package metrics

import (
	"fmt"
	"slices"
)

// LabelCounts accumulates multi-label classification counts (each example has
// a set of labels, given as a bool per label). Plain data, mergeable.
type LabelCounts struct {
	Labels []string `json:"labels"`
	TP     []int64  `json:"tp"`
	Pred   []int64  `json:"pred"`
	Gold   []int64  `json:"gold"`

	Examples   int64 `json:"examples"`
	ExactSets  int64 `json:"exact_sets"` // examples whose predicted set equals the gold set
	Mismatches int64 `json:"mismatches"` // (example, label) pairs predicted wrong

	// Sums over examples of per-example precision, recall and F1 (sklearn's
	// average='samples').
	SampleP  float64 `json:"sample_precision_sum"`
	SampleR  float64 `json:"sample_recall_sum"`
	SampleF1 float64 `json:"sample_f1_sum"`
}

// MultiLabelReport adds sklearn's multi-label measures to a Report. Its
// Accuracy is subset accuracy, micro pools all (example, label) pairs, macro
// averages over every label (sklearn keeps all indicator columns).
type MultiLabelReport struct {
	Report
	Samples     Scores  `json:"samples"`
	HammingLoss float64 `json:"hamming_loss"`
}

// NewLabelCounts returns empty counts over labels.
func NewLabelCounts(labels []string) *LabelCounts {
	n := len(labels)
	return &LabelCounts{Labels: slices.Clone(labels), TP: make([]int64, n), Pred: make([]int64, n), Gold: make([]int64, n)}
}

// Add counts one example.
func (c *LabelCounts) Add(gold, pred []bool) error {
	n := len(c.Labels)
	if len(gold) != n || len(pred) != n {
		return fmt.Errorf("metrics: example has %d gold and %d predicted flags, want %d (one per label)", len(gold), len(pred), n)
	}
	var tp, np, ng int64
	for i := range n {
		g, p := gold[i], pred[i]
		if g {
			c.Gold[i]++
			ng++
		}
		if p {
			c.Pred[i]++
			np++
		}
		if g && p {
			c.TP[i]++
			tp++
		}
	}
	mism := np + ng - 2*tp
	c.Examples++
	c.Mismatches += mism
	if mism == 0 {
		c.ExactSets++
	}
	c.SampleP += ratio(tp, np)
	c.SampleR += ratio(tp, ng)
	c.SampleF1 += ratio(2*tp, ng+np)
	return nil
}

// Merge adds the counts of o, which must have the same labels.
func (c *LabelCounts) Merge(o *LabelCounts) error {
	if !slices.Equal(c.Labels, o.Labels) || len(o.TP) != len(c.TP) || len(o.Pred) != len(c.Pred) || len(o.Gold) != len(c.Gold) {
		return fmt.Errorf("metrics: merging multi-label counts over different labels %q and %q", c.Labels, o.Labels)
	}
	for i := range c.TP {
		c.TP[i] += o.TP[i]
		c.Pred[i] += o.Pred[i]
		c.Gold[i] += o.Gold[i]
	}
	c.Examples += o.Examples
	c.ExactSets += o.ExactSets
	c.Mismatches += o.Mismatches
	c.SampleP += o.SampleP
	c.SampleR += o.SampleR
	c.SampleF1 += o.SampleF1
	return nil
}

// Report computes the scores.
func (c *LabelCounts) Report() MultiLabelReport {
	all := make([]counts, len(c.Labels))
	r := MultiLabelReport{}
	for i, l := range c.Labels {
		all[i] = counts{tp: c.TP[i], pred: c.Pred[i], gold: c.Gold[i]}
		r.PerClass = append(r.PerClass, ClassScores{Label: l, Scores: all[i].scores()})
	}
	r.Micro, r.Macro, r.Weighted = averages(r.PerClass, all)
	r.Accuracy = ratio(c.ExactSets, c.Examples)
	r.HammingLoss = ratio(c.Mismatches, c.Examples*int64(len(c.Labels)))
	if c.Examples > 0 {
		n := float64(c.Examples)
		r.Samples = Scores{Precision: c.SampleP / n, Recall: c.SampleR / n, F1: c.SampleF1 / n, Support: r.Micro.Support}
	}
	return r
}

// Table renders the report like sklearn's classification_report for
// multi-label input, samples average included.
func (r MultiLabelReport) Table(digits int) string {
	t := table{digits: digits}
	for _, c := range r.PerClass {
		t.row(c.Label, c.Scores)
	}
	t.blank()
	t.row("micro avg", r.Micro)
	t.row("macro avg", r.Macro)
	t.row("weighted avg", r.Weighted)
	t.row("samples avg", r.Samples)
	return t.String()
}

// MultiLabel scores gold against predicted label sets in one call.
func MultiLabel(gold, pred [][]bool, labels []string) (MultiLabelReport, error) {
	if len(gold) != len(pred) {
		return MultiLabelReport{}, fmt.Errorf("metrics: %d gold examples but %d predictions", len(gold), len(pred))
	}
	c := NewLabelCounts(labels)
	for i := range gold {
		if err := c.Add(gold[i], pred[i]); err != nil {
			return MultiLabelReport{}, fmt.Errorf("example %d: %w", i, err)
		}
	}
	return c.Report(), nil
}
