package report

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
)

// Mistake is one misclassified example for error analysis.
type Mistake struct {
	Text       string  `json:"text"`
	Gold       string  `json:"gold"`
	Pred       string  `json:"pred"`
	Confidence float64 `json:"confidence"`       // the model's probability of Pred
	Source     string  `json:"source,omitempty"` // where the record came from, e.g. file:line
}

// WriteMistakes writes one JSON object per line, most confident mistakes
// first (ties keep their input order), since those point at label noise and
// systematic errors.
func WriteMistakes(w io.Writer, ms []Mistake) error {
	for i, m := range ms {
		if math.IsNaN(m.Confidence) || math.IsInf(m.Confidence, 0) {
			return fmt.Errorf("report: mistake %d (%.40q): confidence is %v", i, m.Text, m.Confidence)
		}
	}
	sorted := slices.Clone(ms)
	slices.SortStableFunc(sorted, func(a, b Mistake) int { return cmp.Compare(b.Confidence, a.Confidence) })
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, m := range sorted {
		if err := enc.Encode(m); err != nil {
			return err
		}
	}
	return nil
}
