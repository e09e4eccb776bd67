package train

import "math"

// Schedule is the learning rate per optimizer step, as transformers' schedulers with
// warmup: linear rise over Warmup steps from 0 to Peak, then linear decay to 0 at Total
// (linear), a half cosine (cosine), or Peak throughout (constant).
type Schedule struct {
	Kind          string
	Peak          float64
	Warmup, Total int
}

// LR is the rate for step (0-based: the first optimizer step is 0).
func (s Schedule) LR(step int) float64 {
	if step < s.Warmup {
		return s.Peak * float64(step) / float64(max(1, s.Warmup))
	}
	progress := float64(step-s.Warmup) / float64(max(1, s.Total-s.Warmup))
	switch s.Kind {
	case "constant":
		return s.Peak
	case "cosine":
		return s.Peak * math.Max(0, 0.5*(1+math.Cos(math.Pi*progress)))
	}
	return s.Peak * math.Max(0, 1-progress)
}
