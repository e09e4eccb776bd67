package model

import (
	"fmt"
	"math"
	"strings"
)

// LRScale multiplies the learning rate of the trainable run [Lo, Hi) of the flat
// buffers: a parameter group of torch's optimizers, as a range of the layout.
type LRScale struct {
	Lo, Hi int64
	Scale  float64
}

// LayerLRScales are the runs of layer-wise learning rate decay (Sun et al. 2019, "How
// to Fine-Tune BERT for Text Classification"; ELECTRA's fine-tuning): the head, the
// pooler and ModernBERT's final norm train at the full rate, the top layer at decay
// times it, each layer below at decay times the one above, and the embeddings at
// decay^(layers+1). The layout puts
// each depth's parameters together, so they are one run per depth, ascending.
func (m *Model) LayerLRScales(decay float64) ([]LRScale, error) {
	if !(decay > 0 && decay <= 1) {
		return nil, fmt.Errorf("layer_lr_decay: %v is not in (0, 1]", decay)
	}
	f := m.fam
	if f.layer == nil {
		return nil, fmt.Errorf("layer_lr_decay: %s's layers share their parameters: no layer has its own", m.Config.ModelType)
	}
	top := m.Config.NumHiddenLayers + 1 // the head's depth; the embeddings' is 0
	depth := func(name string) int {
		for i := range m.Config.NumHiddenLayers {
			if strings.HasPrefix(name, f.layer(i)) {
				return i + 1
			}
		}
		for _, e := range f.embeddings { // ELECTRA's projection of them too
			if strings.HasPrefix(name, e) {
				return 0
			}
		}
		return top // the head, BERT's pooler, ModernBERT's final norm
	}
	var out []LRScale
	for _, p := range m.Params.List() {
		if !p.Trainable {
			continue
		}
		s := math.Pow(decay, float64(top-depth(p.Name)))
		if k := len(out) - 1; k >= 0 && out[k].Scale == s && out[k].Hi == p.Offset {
			out[k].Hi += p.Numel
		} else {
			out = append(out, LRScale{Lo: p.Offset, Hi: p.Offset + p.Numel, Scale: s})
		}
	}
	return out, nil
}

// lrSpans calls fn for each part of [lo, hi) with its learning rate, lr times the
// scale of its run (all of it at lr when scales is nil), in order.
func lrSpans(scales []LRScale, lo, hi int64, lr float64, fn func(lo, hi int64, lr float64)) {
	if scales == nil {
		fn(lo, hi, lr)
		return
	}
	for _, r := range scales {
		if a, b := max(lo, r.Lo), min(hi, r.Hi); a < b {
			fn(a, b, lr*r.Scale)
		}
	}
}
