package metrics

import (
	"fmt"
	"slices"
	"strings"
)

// Confusion accumulates a confusion matrix for single-label classification:
// rows are gold labels, columns predictions. It is plain data (JSON-friendly),
// so a node can ship it to the coordinator for Merge.
type Confusion struct {
	Labels []string `json:"labels"`
	// Counts is row-major: Counts[gold*len(Labels)+pred].
	Counts []int64 `json:"counts"`
}

// NewConfusion returns an empty matrix over labels; label i is class id i.
func NewConfusion(labels []string) *Confusion {
	return &Confusion{Labels: slices.Clone(labels), Counts: make([]int64, len(labels)*len(labels))}
}

// Add counts one example.
func (c *Confusion) Add(gold, pred int) error {
	n := len(c.Labels)
	if uint(gold) >= uint(n) {
		return fmt.Errorf("metrics: gold class %d out of range [0,%d)", gold, n)
	}
	if uint(pred) >= uint(n) {
		return fmt.Errorf("metrics: predicted class %d out of range [0,%d)", pred, n)
	}
	c.Counts[gold*n+pred]++
	return nil
}

// AddBatch counts a batch; on error nothing of the batch is counted.
func (c *Confusion) AddBatch(gold, pred []int) error {
	if len(gold) != len(pred) {
		return fmt.Errorf("metrics: %d gold labels but %d predictions", len(gold), len(pred))
	}
	n := uint(len(c.Labels))
	for i := range gold {
		if uint(gold[i]) >= n || uint(pred[i]) >= n {
			return fmt.Errorf("metrics: example %d: gold %d / prediction %d out of range [0,%d)", i, gold[i], pred[i], n)
		}
	}
	for i := range gold {
		c.Counts[gold[i]*int(n)+pred[i]]++
	}
	return nil
}

// Merge adds the counts of o, which must have the same labels.
func (c *Confusion) Merge(o *Confusion) error {
	if !slices.Equal(c.Labels, o.Labels) {
		return fmt.Errorf("metrics: merging confusion matrices over different labels %q and %q", c.Labels, o.Labels)
	}
	if len(o.Counts) != len(c.Counts) {
		return fmt.Errorf("metrics: merging a confusion matrix with %d counts, want %d", len(o.Counts), len(c.Counts))
	}
	for i, v := range o.Counts {
		c.Counts[i] += v
	}
	return nil
}

// At returns how many examples of gold class g were predicted as p.
func (c *Confusion) At(g, p int) int64 { return c.Counts[g*len(c.Labels)+p] }

// Matrix returns the counts as rows of gold classes.
func (c *Confusion) Matrix() [][]int64 {
	n := len(c.Labels)
	m := make([][]int64, n)
	for g := range m {
		m[g] = slices.Clone(c.Counts[g*n : (g+1)*n])
	}
	return m
}

// Report computes sklearn's classification_report. As sklearn does without an
// explicit labels argument, classes that occur neither in the gold labels nor
// in the predictions are left out of PerClass and of the macro and weighted
// averages; micro P = R = F1 = accuracy.
func (c *Confusion) Report() Report {
	n := len(c.Labels)
	all := make([]counts, n)
	var total, correct int64
	for g := range n {
		for p := range n {
			v := c.Counts[g*n+p]
			all[g].gold += v
			all[p].pred += v
			total += v
			if g == p {
				all[g].tp += v
				correct += v
			}
		}
	}
	r := Report{Accuracy: ratio(correct, total), microIsAccuracy: true}
	for i, k := range all {
		if k.gold > 0 || k.pred > 0 {
			r.PerClass = append(r.PerClass, ClassScores{Label: c.Labels[i], Scores: k.scores()})
		}
	}
	r.Micro, r.Macro, r.Weighted = averages(r.PerClass, all)
	return r
}

// Table renders the matrix as text: one row per gold class, one column per
// predicted class.
func (c *Confusion) Table() string {
	const corner = "gold \\ pred"
	n := len(c.Labels)
	rowW := len([]rune(corner))
	colW := make([]int, n)
	for i, l := range c.Labels {
		rowW = max(rowW, len([]rune(l)))
		colW[i] = len([]rune(l))
		for g := range n {
			colW[i] = max(colW[i], len(fmt.Sprint(c.Counts[g*n+i])))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%*s", rowW, corner)
	for i, l := range c.Labels {
		fmt.Fprintf(&b, "  %*s", colW[i], l)
	}
	b.WriteByte('\n')
	for g, l := range c.Labels {
		fmt.Fprintf(&b, "%*s", rowW, l)
		for p := range n {
			fmt.Fprintf(&b, "  %*d", colW[p], c.Counts[g*n+p])
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// Classification scores gold against predicted class ids in one call.
func Classification(gold, pred []int, labels []string) (Report, *Confusion, error) {
	c := NewConfusion(labels)
	if err := c.AddBatch(gold, pred); err != nil {
		return Report{}, nil, err
	}
	return c.Report(), c, nil
}
