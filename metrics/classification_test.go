package metrics

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

func near(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-12 {
		t.Errorf("%s = %.15g, want %.15g", what, got, want)
	}
}

func nearScores(t *testing.T, what string, got Scores, p, r, f float64, support int64) {
	t.Helper()
	near(t, what+" precision", got.Precision, p)
	near(t, what+" recall", got.Recall, r)
	near(t, what+" f1", got.F1, f)
	if got.Support != support {
		t.Errorf("%s support = %d, want %d", what, got.Support, support)
	}
}

// The example of sklearn's classification_report documentation.
var (
	docGold   = []int{0, 1, 2, 2, 2}
	docPred   = []int{0, 0, 2, 2, 1}
	docLabels = []string{"class 0", "class 1", "class 2"}
)

func TestClassificationMatchesSklearnDocExample(t *testing.T) {
	r, c, err := Classification(docGold, docPred, docLabels)
	if err != nil {
		t.Fatal(err)
	}
	// class 0: tp 1, predicted 2, gold 1 -> P 1/2, R 1, F1 2*1/(1+2) = 2/3
	// class 1: tp 0 -> 0, 0, 0
	// class 2: tp 2, predicted 2, gold 3 -> P 1, R 2/3, F1 2*2/(3+2) = 4/5
	nearScores(t, "class 0", r.PerClass[0].Scores, 0.5, 1, 2.0/3, 1)
	nearScores(t, "class 1", r.PerClass[1].Scores, 0, 0, 0, 1)
	nearScores(t, "class 2", r.PerClass[2].Scores, 1, 2.0/3, 0.8, 3)
	near(t, "accuracy", r.Accuracy, 3.0/5)
	// micro pools all classes: 3 right of 5 predictions and 5 gold labels.
	nearScores(t, "micro", r.Micro, 0.6, 0.6, 0.6, 5)
	// macro: P (1/2+0+1)/3, R (1+0+2/3)/3, F1 (2/3+0+4/5)/3
	nearScores(t, "macro", r.Macro, 0.5, 5.0/9, 22.0/45, 5)
	// weighted by support 1,1,3: P (1/2+0+3)/5, R (1+0+2)/5, F1 (2/3+0+12/5)/5
	nearScores(t, "weighted", r.Weighted, 0.7, 0.6, 46.0/75, 5)

	// Verbatim from the sklearn documentation.
	want := `              precision    recall  f1-score   support

     class 0       0.50      1.00      0.67         1
     class 1       0.00      0.00      0.00         1
     class 2       1.00      0.67      0.80         3

    accuracy                           0.60         5
   macro avg       0.50      0.56      0.49         5
weighted avg       0.70      0.60      0.61         5
`
	if got := r.Table(2); got != want {
		t.Errorf("Table(2) =\n%s\nwant\n%s", got, want)
	}
	wantMatrix := "gold \\ pred  class 0  class 1  class 2\n" +
		"    class 0        1        0        0\n" +
		"    class 1        1        0        0\n" +
		"    class 2        0        1        2\n"
	if got := c.Table(); got != wantMatrix {
		t.Errorf("confusion Table() =\n%s\nwant\n%s", got, wantMatrix)
	}
}

func TestClassificationBinaryPositiveClass(t *testing.T) {
	labels := []string{"ham", "spam"}
	gold := []int{0, 0, 0, 0, 1, 1, 1}
	pred := []int{0, 0, 0, 1, 1, 1, 0}
	r, _, err := Classification(gold, pred, labels)
	if err != nil {
		t.Fatal(err)
	}
	spam, ok := r.Class("spam")
	if !ok {
		t.Fatal("no spam row")
	}
	// spam: tp 2, predicted 3, gold 3 -> P = R = F1 = 2/3
	nearScores(t, "spam", spam.Scores, 2.0/3, 2.0/3, 2.0/3, 3)
	// ham: tp 3, predicted 4, gold 4 -> 3/4
	ham, _ := r.Class("ham")
	nearScores(t, "ham", ham.Scores, 0.75, 0.75, 0.75, 4)
	near(t, "accuracy", r.Accuracy, 5.0/7)
}

// A class absent from gold and predictions is left out of the averages, as
// sklearn does when it infers the labels from the data.
func TestClassificationAbsentClassExcluded(t *testing.T) {
	r, c, err := Classification([]int{0, 1, 1}, []int{0, 1, 0}, []string{"a", "b", "never"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Class("never"); ok {
		t.Error("class that never occurs has a row")
	}
	if len(r.PerClass) != 2 {
		t.Fatalf("%d per-class rows, want 2", len(r.PerClass))
	}
	// a: tp 1, pred 2, gold 1 -> P 1/2 R 1 F1 2/3; b: tp 1, pred 1, gold 2 -> P 1 R 1/2 F1 2/3
	// macro over a and b only: P 3/4, R 3/4, F1 2/3
	nearScores(t, "macro", r.Macro, 0.75, 0.75, 2.0/3, 3)
	if c.At(1, 0) != 1 || c.At(1, 1) != 1 || c.At(2, 2) != 0 {
		t.Errorf("confusion counts wrong: %v", c.Matrix())
	}
}

func TestConfusionMergeEqualsWhole(t *testing.T) {
	whole := NewConfusion(docLabels)
	if err := whole.AddBatch(docGold, docPred); err != nil {
		t.Fatal(err)
	}
	a, b := NewConfusion(docLabels), NewConfusion(docLabels)
	a.AddBatch(docGold[:2], docPred[:2])
	for i := 2; i < len(docGold); i++ {
		if err := b.Add(docGold[i], docPred[i]); err != nil {
			t.Fatal(err)
		}
	}
	// The counts travel between nodes as JSON.
	blob, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	var remote Confusion
	if err := json.Unmarshal(blob, &remote); err != nil {
		t.Fatal(err)
	}
	if err := a.Merge(&remote); err != nil {
		t.Fatal(err)
	}
	if a.Table() != whole.Table() || a.Report().Table(4) != whole.Report().Table(4) {
		t.Errorf("merged\n%s\nwhole\n%s", a.Table(), whole.Table())
	}
	if err := a.Merge(NewConfusion([]string{"x", "y", "z"})); err == nil {
		t.Error("merging matrices over different labels succeeded")
	}
}

func TestConfusionRejectsBadInput(t *testing.T) {
	c := NewConfusion([]string{"a", "b"})
	for _, tc := range []struct {
		gold, pred []int
		want       string
	}{
		{[]int{0, 2}, []int{0, 0}, "example 1"},
		{[]int{0, -1}, []int{0, 0}, "example 1"},
		{[]int{0}, []int{0, 0}, "1 gold labels but 2 predictions"},
	} {
		err := c.AddBatch(tc.gold, tc.pred)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("AddBatch(%v, %v) error %v, want mention of %q", tc.gold, tc.pred, err, tc.want)
		}
	}
	if err := c.Add(0, 5); err == nil {
		t.Error("Add(0, 5) with 2 labels succeeded")
	}
	for _, v := range c.Counts {
		if v != 0 {
			t.Fatalf("a rejected batch was partly counted: %v", c.Counts)
		}
	}
}

func BenchmarkConfusionAddBatch(b *testing.B) {
	c := NewConfusion([]string{"0", "1", "2", "3", "4", "5"})
	gold, pred := make([]int, 256), make([]int, 256)
	for i := range gold {
		gold[i], pred[i] = i%6, (i*7)%6
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := c.AddBatch(gold, pred); err != nil {
			b.Fatal(err)
		}
	}
}
