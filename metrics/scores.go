// Package metrics computes evaluation metrics from plain label slices:
// classification (sklearn semantics), multi-label (sklearn), entity-level NER
// (seqeval semantics), extractive QA (the official SQuAD scripts) and
// regression.
//
// Every classification metric is built from counts held in an accumulator
// (Confusion, LabelCounts, EntityCounts, QACounts) that takes one batch at a
// time and can Merge another accumulator's counts, so nodes evaluating disjoint
// shards can combine their results exactly. Division by zero yields 0, as
// sklearn's and seqeval's zero_division=0. Regression's errors and
// correlations (scipy semantics) are computed from all the values at once:
// ranks do not merge.
package metrics

import (
	"fmt"
	"strings"
)

// Scores are precision, recall and F1 of one class or one average, with the
// number of gold instances (support) they cover.
type Scores struct {
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
	Support   int64   `json:"support"`
}

// ClassScores are the Scores of one label.
type ClassScores struct {
	Label string `json:"label"`
	Scores
}

// Report holds per-class scores and their averages. Micro averages pool the
// counts of all classes; macro averages the per-class scores; weighted
// averages them weighted by support.
type Report struct {
	// Accuracy is the fraction of exactly right predictions: of examples for
	// classification, of tokens for NER.
	Accuracy float64       `json:"accuracy"`
	PerClass []ClassScores `json:"per_class"`
	Micro    Scores        `json:"micro"`
	Macro    Scores        `json:"macro"`
	Weighted Scores        `json:"weighted"`

	// microIsAccuracy makes Table print sklearn's "accuracy" row instead of
	// "micro avg", as sklearn does for single-label classification.
	microIsAccuracy bool
}

// Class returns the scores of one label, for example the positive class of a
// binary task ("spam"). ok is false when the label occurred neither in the gold
// labels nor in the predictions.
func (r Report) Class(label string) (s ClassScores, ok bool) {
	for _, c := range r.PerClass {
		if c.Label == label {
			return c, true
		}
	}
	return ClassScores{}, false
}

// Table renders the report like sklearn's classification_report (seqeval's for
// NER), with digits decimals.
func (r Report) Table(digits int) string {
	var t table
	t.digits = digits
	for _, c := range r.PerClass {
		t.row(c.Label, c.Scores)
	}
	t.blank()
	if r.microIsAccuracy {
		t.accuracy(r.Accuracy, r.Micro.Support)
	} else {
		t.row("micro avg", r.Micro)
	}
	t.row("macro avg", r.Macro)
	t.row("weighted avg", r.Weighted)
	return t.String()
}

// counts are the sufficient statistics of one class.
type counts struct {
	tp, pred, gold int64
}

func ratio(num, den int64) float64 {
	if den == 0 {
		return 0
	}
	return float64(num) / float64(den)
}

// scores follows sklearn >= 1.3: F1 = 2tp / (gold + pred), the same value as
// 2PR/(P+R) but defined through counts, 0 when both are empty.
func (c counts) scores() Scores {
	return Scores{
		Precision: ratio(c.tp, c.pred),
		Recall:    ratio(c.tp, c.gold),
		F1:        ratio(2*c.tp, c.gold+c.pred),
		Support:   c.gold,
	}
}

// averages computes micro, macro and weighted averages over classes.
func averages(per []ClassScores, all []counts) (micro, macro, weighted Scores) {
	var sum counts
	for _, c := range all {
		sum.tp += c.tp
		sum.pred += c.pred
		sum.gold += c.gold
	}
	micro = sum.scores()
	if len(per) == 0 {
		return micro, Scores{}, Scores{}
	}
	for _, c := range per {
		macro.Precision += c.Precision
		macro.Recall += c.Recall
		macro.F1 += c.F1
		if sum.gold > 0 {
			w := float64(c.Support) / float64(sum.gold)
			weighted.Precision += w * c.Precision
			weighted.Recall += w * c.Recall
			weighted.F1 += w * c.F1
		}
	}
	n := float64(len(per))
	macro.Precision /= n
	macro.Recall /= n
	macro.F1 /= n
	macro.Support = sum.gold
	weighted.Support = sum.gold
	return micro, macro, weighted
}

// table lays out rows in sklearn's classification_report format.
type table struct {
	digits int
	rows   []tableRow
}

type tableRow struct {
	name     string
	s        Scores
	accuracy bool // only F1 column holds a value: the accuracy
}

func (t *table) row(name string, s Scores) { t.rows = append(t.rows, tableRow{name: name, s: s}) }

func (t *table) accuracy(acc float64, support int64) {
	t.rows = append(t.rows, tableRow{name: "accuracy", s: Scores{F1: acc, Support: support}, accuracy: true})
}

func (t *table) blank() { t.rows = append(t.rows, tableRow{}) }

func (t *table) String() string {
	width := max(len("weighted avg"), t.digits)
	for _, r := range t.rows {
		width = max(width, len([]rune(r.name)))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%*s  %9s %9s %9s %9s\n\n", width, "", "precision", "recall", "f1-score", "support")
	d := t.digits
	for _, r := range t.rows {
		switch {
		case r.name == "":
			b.WriteString("\n")
		case r.accuracy:
			fmt.Fprintf(&b, "%*s  %9s %9s %9.*f %9d\n", width, r.name, "", "", d, r.s.F1, r.s.Support)
		default:
			fmt.Fprintf(&b, "%*s  %9.*f %9.*f %9.*f %9d\n", width, r.name,
				d, r.s.Precision, d, r.s.Recall, d, r.s.F1, r.s.Support)
		}
	}
	return b.String()
}

// Named gives the averages' and each class's F1 the names jobs log and select on:
// f1_micro, f1_macro, f1_weighted and f1_<label> (spaces in labels become _).
func (r Report) Named() map[string]float64 {
	m := map[string]float64{"f1_micro": r.Micro.F1, "f1_macro": r.Macro.F1, "f1_weighted": r.Weighted.F1}
	for _, c := range r.PerClass {
		m["f1_"+strings.ReplaceAll(c.Label, " ", "_")] = c.F1
	}
	return m
}
