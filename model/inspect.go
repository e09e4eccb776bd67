package model

import (
	"fmt"

	"github.com/sugarme/gotch"
)

// Attentions runs one sequence (b.B == 1, padding on the right) in evaluation mode
// without autograd and returns every layer's attention probabilities on the host,
// indexed [layer][head][from][to] over the sequence's real tokens: padding is dropped,
// so each row sums to 1. The rows of a layer are views into one buffer per layer.
func (m *Model) Attentions(b *Batch) ([][][][]float32, error) {
	if b.B != 1 {
		return nil, fmt.Errorf("model: attentions are for one sequence, the batch has %d", b.B)
	}
	n := 0
	for i, v := range b.AttentionMask {
		if v == 1 && n < i {
			return nil, fmt.Errorf("model: attentions need padding on the right; token %d follows padding", i)
		}
		n += int(v)
	}
	var (
		out [][][][]float32
		err error
	)
	noGrad(func() {
		var o *Output
		if o, err = m.Forward(b, false, true); err != nil {
			return
		}
		o.Logits.MustDrop()
		L := b.L
		for _, a := range o.Attentions {
			if a.DType() != gotch.Float { // autocast computes attention in half precision
				a = a.MustTotype(gotch.Float, true)
			}
			buf := hostFloats(a)
			a.MustDrop()
			heads := make([][][]float32, len(buf)/(L*L))
			for h := range heads {
				rows := make([][]float32, n)
				for i := range rows {
					at := (h*L + i) * L
					rows[i] = buf[at : at+n : at+n]
				}
				heads[h] = rows
			}
			out = append(out, heads)
		}
	})
	return out, err
}
