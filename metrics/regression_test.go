package metrics

import (
	"math"
	"slices"
	"testing"
)

// The examples of scipy's documentation: pearsonr's gives -0.828503883588428,
// spearmanr's (a tie among the second's values) 0.8207826816681233, rankdata's
// [1, 2.5, 4, 2.5].
func TestCorrelationsMatchScipy(t *testing.T) {
	near(t, "pearson", Pearson([]float64{1, 2, 3, 4, 5, 6, 7}, []float64{10, 9, 2.5, 6, 4, 3, 2}), -0.828503883588428)
	r, err := Regression([]float64{1, 2, 3, 4, 5}, []float64{5, 6, 7, 8, 7})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "spearman", r.Spearman, 0.8207826816681233)
	if got := Ranks([]float64{0, 2, 3, 2}); !slices.Equal(got, []float64{1, 2.5, 4, 2.5}) {
		t.Errorf("ranks %v, want [1 2.5 4 2.5]", got)
	}
	if got := Ranks([]float64{3, 1, 3, 3, 0}); !slices.Equal(got, []float64{4, 2, 4, 4, 1}) {
		t.Errorf("ranks %v, want [4 2 4 4 1]", got)
	}
}

// Errors by hand: differences 0.5, -0.5, 0.5, -0.5, 0.5.
func TestRegressionErrors(t *testing.T) {
	r, err := Regression([]float64{0, 1.5, 2.5, 2.5, 4}, []float64{0.5, 1, 3, 2, 4.5})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "mse", r.MSE, 0.25)
	near(t, "rmse", r.RMSE, 0.5)
	near(t, "mae", r.MAE, 0.5)
	if r.Count != 5 {
		t.Errorf("count %d", r.Count)
	}
	// A monotone but not linear prediction: Spearman 1, Pearson below it.
	r, _ = Regression([]float64{1, 2, 3, 4}, []float64{1, 4, 9, 16})
	near(t, "spearman", r.Spearman, 1)
	if !(r.Pearson > 0.9 && r.Pearson < 1) {
		t.Errorf("pearson %v, want in (0.9, 1)", r.Pearson)
	}
	r, _ = Regression([]float64{1, 2, 3}, []float64{3, 2, 1})
	near(t, "reversed pearson", r.Pearson, -1)
	near(t, "reversed spearman", r.Spearman, -1)
}

// A constant side has no correlation: 0, not scipy's NaN.
func TestRegressionConstant(t *testing.T) {
	r, err := Regression([]float64{1, 2, 3}, []float64{2, 2, 2})
	if err != nil {
		t.Fatal(err)
	}
	if r.Pearson != 0 || r.Spearman != 0 || math.IsNaN(r.MSE) {
		t.Errorf("%+v", r)
	}
	if _, err := Regression([]float64{1}, nil); err == nil {
		t.Error("no error for lengths 1 and 0")
	}
}

func TestImproves(t *testing.T) {
	for name, lower := range map[string]bool{"mse": true, "rmse": true, "mae": true, "hamming_loss": true, "loss": true, "pearson": false, "spearman": false, "f1_macro": false} {
		if Improves(name, 1, 2) != lower || Improves(name, 2, 1) == lower || Improves(name, 1, 1) {
			t.Errorf("Improves(%q, ...): lower is better should be %v", name, lower)
		}
	}
}
