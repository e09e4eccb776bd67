package model

import (
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Backward runs a training forward pass on b and accumulates the gradient of
// scale*loss into Params.Grad (scale is 1/accumulation steps). It returns the unscaled
// loss. Nothing else is kept: every tensor of the step is freed before it returns.
func (m *Model) Backward(b *Batch, scale float64) (float64, error) {
	l, err := m.BackwardParts(b, scale)
	return l.Total, err
}

// Losses are a training pass's loss and, when it distils (Batch.Teacher), the parts
// the total blends (Output.Soft and Hard); both 0 otherwise.
type Losses struct{ Total, Soft, Hard float64 }

// BackwardParts is Backward, returning the loss's parts too.
func (m *Model) BackwardParts(b *Batch, scale float64) (Losses, error) {
	out, err := m.Forward(b, true, false)
	if err != nil {
		return Losses{}, err
	}
	defer out.Logits.MustDrop()
	defer out.Loss.MustDrop()
	l := out.Loss
	if scale != 1 {
		l = out.Loss.MustMulScalar(ts.FloatScalar(scale), false)
		defer l.MustDrop()
	}
	l.MustBackward()
	if r := out.recompute; r != nil { // the head's done: now the layers', one at a time
		if err := r.backward(); err != nil {
			return Losses{}, err
		}
	}
	// Read after backward is under way: on a GPU, reading the loss waits for the device,
	// and reading it before would keep backward's launches waiting for the forward's work.
	parts := Losses{Total: out.Loss.Float64Values()[0]}
	if out.Soft != nil {
		parts.Soft, parts.Hard = out.Soft.Float64Values(true)[0], out.Hard.Float64Values(true)[0]
	}
	return parts, nil
}

// Infer runs b in evaluation mode without autograd and returns the logits on the host,
// row-major in Output.Logits' shape, and the loss when b has labels (else NaN).
func (m *Model) Infer(b *Batch) (logits []float32, loss float64, err error) {
	noGrad(func() {
		var out *Output
		out, err = m.Forward(b, false, false)
		if err != nil {
			return
		}
		loss = nan
		if out.Loss != nil {
			loss = out.Loss.Float64Values(true)[0]
		}
		logits = hostFloats(out.Logits)
		out.Logits.MustDrop()
		if out.Soft != nil {
			out.Soft.MustDrop()
			out.Hard.MustDrop()
		}
	})
	return logits, loss, err
}

func hostFloats(t *ts.Tensor) []float32 {
	c := t.MustTo(gotch.CPU, false).MustContiguous(true)
	defer c.MustDrop()
	out := make([]float32, c.Numel())
	readFloats(c, out)
	return out
}
