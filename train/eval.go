package train

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/bertnode/bertnode/metrics"
	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/report"
)

// EvalResult is one evaluation of the eval set.
type EvalResult struct {
	Step      int
	Loss      float64
	Metrics   map[string]float64 // accuracy, f1_macro, f1_micro, f1_weighted, f1_<label>...
	Report    metrics.Report
	Confusion *metrics.Confusion // single-label only
	Mistakes  []report.Mistake   // single-label only
}

// Names lists the metrics by name.
func (e EvalResult) Names() []string {
	var n []string
	for k := range e.Metrics {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// Values is the JSON line logged for the evaluation.
func (e EvalResult) Values(step int) map[string]any {
	v := map[string]any{"step": step, "eval_loss": e.Loss}
	for k, x := range e.Metrics {
		v["eval_"+k] = x
	}
	return v
}

// Evaluate runs the eval set through the model and scores it.
func (t *Trainer) Evaluate() (EvalResult, error) {
	labels := t.Labels.Names()
	multi := t.Spec.Task == string(model.MultiLabel)
	conf := metrics.NewConfusion(labels)
	counts := metrics.NewLabelCounts(labels)
	res := EvalResult{Metrics: map[string]float64{}}
	var lossSum float64
	n := len(labels)
	exs := make([]*Example, 0, t.Spec.BatchSize)
	gold, pred := make([]bool, n), make([]bool, n)
	for i := 0; i < len(t.Eval); i += t.Spec.BatchSize {
		exs = exs[:0]
		for j := i; j < min(i+t.Spec.BatchSize, len(t.Eval)); j++ {
			exs = append(exs, &t.Eval[j])
		}
		b, err := t.batch(exs)
		if err != nil {
			return res, err
		}
		logits, loss, err := t.Model.Infer(b)
		if err != nil {
			return res, err
		}
		lossSum += loss * float64(len(exs))
		for r, e := range exs {
			row := logits[r*n : (r+1)*n]
			if multi {
				for k := range row {
					gold[k], pred[k] = e.Target[k] == 1, row[k] > 0 // sigmoid > 0.5
				}
				if err := counts.Add(gold, pred); err != nil {
					return res, err
				}
				continue
			}
			p, conf1 := argmaxSoftmax(row)
			if err := conf.Add(e.Label, p); err != nil {
				return res, err
			}
			if p != e.Label {
				res.Mistakes = append(res.Mistakes, report.Mistake{Text: e.Text, Gold: labels[e.Label], Pred: labels[p],
					Confidence: conf1, Source: fmt.Sprintf("%s:%d", e.Pos.File, e.Pos.Line)})
			}
		}
	}
	res.Loss = lossSum / float64(len(t.Eval))
	if multi {
		r := counts.Report()
		res.Report = r.Report
		res.Metrics["subset_accuracy"] = r.Accuracy
		res.Metrics["hamming_loss"] = r.HammingLoss
	} else {
		res.Report = conf.Report()
		res.Confusion = conf
		res.Metrics["accuracy"] = res.Report.Accuracy
	}
	res.Metrics["f1_micro"] = res.Report.Micro.F1
	res.Metrics["f1_macro"] = res.Report.Macro.F1
	res.Metrics["f1_weighted"] = res.Report.Weighted.F1
	for _, c := range res.Report.PerClass {
		res.Metrics["f1_"+strings.ReplaceAll(c.Label, " ", "_")] = c.F1
	}
	return res, nil
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
