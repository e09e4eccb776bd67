package train

import (
	"sort"

	"github.com/bertnode/bertnode/metrics"
	"github.com/bertnode/bertnode/report"
)

// EvalResult is one evaluation of the eval set.
type EvalResult struct {
	Step      int
	Loss      float64
	Metrics   map[string]float64 // accuracy, f1_macro, f1_micro, f1_weighted, f1_<label>...
	Report    metrics.Report
	Confusion *metrics.Confusion // single-label classification only
	Mistakes  []report.Mistake   // classify: wrong labels; ner: sentences with a wrong entity; qa: not an exact match
	// Predictions are qa's answers by question id (empty: no answer), as the official
	// SQuAD scripts read them.
	Predictions map[string]string
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
	sc := t.task.scorer(t.Labels.Names())
	var lossSum float64
	exs := make([]*Example, 0, t.Spec.BatchSize)
	for i := 0; i < len(t.Eval); i += t.Spec.BatchSize {
		exs = exs[:0]
		for j := i; j < min(i+t.Spec.BatchSize, len(t.Eval)); j++ {
			exs = append(exs, &t.Eval[j])
		}
		b, err := t.batch(exs, evalMaskSeed)
		if err != nil {
			return EvalResult{}, err
		}
		logits, loss, err := t.Model.Infer(b)
		if err != nil {
			return EvalResult{}, err
		}
		lossSum += loss * float64(len(exs))
		if err := sc.add(exs, b, logits); err != nil {
			return EvalResult{}, err
		}
	}
	res, err := sc.result()
	res.Loss = lossSum / float64(max(1, len(t.Eval)))
	return res, err
}
