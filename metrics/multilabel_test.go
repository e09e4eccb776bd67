package metrics

import (
	"strings"
	"testing"
)

func TestMultiLabelHandComputed(t *testing.T) {
	labels := []string{"x", "y", "z"}
	T, F := true, false
	gold := [][]bool{{T, F, T}, {F, T, F}, {T, T, F}, {F, F, F}}
	pred := [][]bool{{T, F, F}, {F, T, T}, {T, F, F}, {F, F, F}}
	r, err := MultiLabel(gold, pred, labels)
	if err != nil {
		t.Fatal(err)
	}
	// x: tp 2, pred 2, gold 2 -> 1, 1, 1
	// y: tp 1, pred 1, gold 2 -> P 1, R 1/2, F1 2/3
	// z: tp 0, pred 1, gold 1 -> 0, 0, 0
	nearScores(t, "x", r.PerClass[0].Scores, 1, 1, 1, 2)
	nearScores(t, "y", r.PerClass[1].Scores, 1, 0.5, 2.0/3, 2)
	nearScores(t, "z", r.PerClass[2].Scores, 0, 0, 0, 1)
	// micro: tp 3, pred 4, gold 5 -> P 3/4, R 3/5, F1 6/9
	nearScores(t, "micro", r.Micro, 0.75, 0.6, 2.0/3, 5)
	// macro: P 2/3, R 1.5/3, F1 (1+2/3)/3
	nearScores(t, "macro", r.Macro, 2.0/3, 0.5, 5.0/9, 5)
	// weighted by 2,2,1: P (2+2)/5, R (2+1)/5, F1 (2+4/3)/5
	nearScores(t, "weighted", r.Weighted, 0.8, 0.6, 2.0/3, 5)
	// samples: (P, R, F1) per example = (1, 1/2, 2/3), (1/2, 1, 2/3),
	// (1, 1/2, 2/3), and (0, 0, 0) for the empty/empty example (zero_division=0).
	nearScores(t, "samples", r.Samples, 2.5/4, 2.0/4, 2.0/4, 5)
	// Only the empty/empty example is an exact set match.
	near(t, "subset accuracy", r.Accuracy, 0.25)
	// One wrong flag in each of the first three examples: 3 of 12.
	near(t, "hamming loss", r.HammingLoss, 0.25)

	want := `              precision    recall  f1-score   support

           x       1.00      1.00      1.00         2
           y       1.00      0.50      0.67         2
           z       0.00      0.00      0.00         1

   micro avg       0.75      0.60      0.67         5
   macro avg       0.67      0.50      0.56         5
weighted avg       0.80      0.60      0.67         5
 samples avg       0.62      0.50      0.50         5
`
	if got := r.Table(2); got != want {
		t.Errorf("Table(2) =\n%s\nwant\n%s", got, want)
	}

	// Merging per-shard counts gives the same report.
	a, b := NewLabelCounts(labels), NewLabelCounts(labels)
	for i := range gold {
		dst := a
		if i%2 == 1 {
			dst = b
		}
		if err := dst.Add(gold[i], pred[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Merge(b); err != nil {
		t.Fatal(err)
	}
	if got := a.Report().Table(6); got != r.Table(6) {
		t.Errorf("merged report\n%s\ndiffers from\n%s", got, r.Table(6))
	}
}

func TestMultiLabelRejectsWrongWidth(t *testing.T) {
	_, err := MultiLabel([][]bool{{true, false}, {true}}, [][]bool{{true, false}, {true, false}}, []string{"a", "b"})
	if err == nil || !strings.Contains(err.Error(), "example 1") {
		t.Fatalf("error %v, want one naming example 1", err)
	}
	if err := NewLabelCounts([]string{"a"}).Merge(NewLabelCounts([]string{"b"})); err == nil {
		t.Error("merge over different labels succeeded")
	}
}
