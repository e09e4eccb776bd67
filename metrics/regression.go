package metrics

import (
	"fmt"
	"math"
	"slices"
)

// RegressionReport scores predicted numbers against gold ones: the errors, as sklearn's
// mean_squared_error and mean_absolute_error, and the correlations, as scipy's pearsonr
// and spearmanr (ties get their average rank). A correlation with a constant side,
// which scipy gives as NaN, is 0 here: no relation is measured, and the value stays a
// number that JSON and best-checkpoint comparisons can hold.
type RegressionReport struct {
	MSE      float64 `json:"mse"`
	RMSE     float64 `json:"rmse"`
	MAE      float64 `json:"mae"`
	Pearson  float64 `json:"pearson"`
	Spearman float64 `json:"spearman"`
	Count    int     `json:"count"`
}

// Regression scores pred against gold, pairwise.
func Regression(gold, pred []float64) (RegressionReport, error) {
	if len(gold) != len(pred) {
		return RegressionReport{}, fmt.Errorf("metrics: %d gold values, %d predictions", len(gold), len(pred))
	}
	r := RegressionReport{Count: len(gold)}
	if len(gold) == 0 {
		return r, nil
	}
	for i, g := range gold {
		d := pred[i] - g
		r.MSE += d * d
		r.MAE += math.Abs(d)
	}
	n := float64(len(gold))
	r.MSE /= n
	r.MAE /= n
	r.RMSE = math.Sqrt(r.MSE)
	r.Pearson = Pearson(gold, pred)
	r.Spearman = Pearson(Ranks(gold), Ranks(pred))
	return r, nil
}

// Pearson is the correlation coefficient of x and y (of equal length); 0 when either
// is constant.
func Pearson(x, y []float64) float64 {
	n := float64(len(x))
	var mx, my float64
	for i := range x {
		mx += x[i]
		my += y[i]
	}
	mx /= n
	my /= n
	var sxy, sxx, syy float64
	for i := range x {
		dx, dy := x[i]-mx, y[i]-my
		sxy += dx * dy
		sxx += dx * dx
		syy += dy * dy
	}
	if sxx == 0 || syy == 0 {
		return 0
	}
	// Rounding can take |r| a hair past 1; scipy clips it too.
	return max(-1, min(1, sxy/math.Sqrt(sxx*syy)))
}

// Ranks are x's 1-based ranks, equal values sharing the average of the ranks they
// span (scipy's rankdata, method "average").
func Ranks(x []float64) []float64 {
	idx := make([]int, len(x))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case x[a] < x[b]:
			return -1
		case x[a] > x[b]:
			return 1
		}
		return 0
	})
	r := make([]float64, len(x))
	for lo := 0; lo < len(idx); {
		hi := lo + 1
		for hi < len(idx) && x[idx[hi]] == x[idx[lo]] {
			hi++
		}
		avg := float64(lo+hi+1) / 2 // the mean of the ranks lo+1..hi
		for _, i := range idx[lo:hi] {
			r[i] = avg
		}
		lo = hi
	}
	return r
}

// Improves says whether v is better than best for the named metric: lower for the
// errors and losses (mse, rmse, mae, hamming_loss, loss, masked_loss, perplexity),
// higher for the scores.
func Improves(name string, v, best float64) bool {
	switch name {
	case "mse", "rmse", "mae", "hamming_loss", "loss", "masked_loss", "perplexity":
		return v < best
	}
	return v > best
}
