package model

import (
	"slices"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Gradient checkpointing (Options.GradientCheckpointing, transformers'
// gradient_checkpointing): the training forward keeps only each encoder layer's input,
// not the activations its backward reads, and Backward recomputes one layer at a time,
// last to first, from that input with autograd on, then backpropagates through it
// alone. Activation memory becomes one layer's instead of every layer's, for about one
// more forward pass of the layers.
//
// gotch has no custom autograd functions, so the backward is driven from here, layer
// by layer: sum(y · g) has the gradient g with respect to y, exactly, so its backward
// is y's backward with the output gradient g. Each recomputation replays its layer's
// dropout noise (the generator's state before the layer, restored): the layers compute
// the same values, and a model whose parameters each receive one gradient per step
// gets the same gradient, bit for bit. ALBERT's layers, shared, receive one gradient
// per layer, added in turn instead of summed first: equal within float rounding.
// What every layer reads but no layer computes (DeBERTa's relative embeddings after
// their LayerNorm, MPNet's position bias) is a graft: made once, with its graph.

// layerFn runs layer i's training forward on x, which it takes ownership of.
type layerFn func(i int, x *ts.Tensor, drop *dropper) *ts.Tensor

// recompute is a checkpointed forward's state, which its backward uses and frees.
type recompute struct {
	m      *Model
	emb    *ts.Tensor   // the embeddings' output, with its graph
	first  int          // the first layer recomputed: those below need no backward
	inputs []*ts.Tensor // layer first+i's input, without one
	marks  []rngMark    // the dropout generator before layer first+i
	top    *ts.Tensor   // the last layer's output, a leaf: its gradient is the layers'
	layer  layerFn
	grafts []graft
	keep   []*ts.Tensor // what layer reads besides x (masks), held past the forward
}

// graft is a tensor every layer reads that depends on parameters but on no layer: the
// layers read in, a detached copy, so their backwards add their gradients into in's
// and leave y's graph whole; backward then takes the sum through y's graph once, as
// the whole graph does (in the same order: last layer first).
type graft struct{ y, in *ts.Tensor }

// newGraft grafts y, which it takes ownership of.
func newGraft(y *ts.Tensor) graft {
	return graft{y, y.MustDetach(false).MustSetRequiresGrad(y.MustRequiresGrad(), true)}
}

// recomputed runs n layers on h [B, L, H] (the embeddings' output, which it takes
// ownership of) without autograd, keeping what backward needs in out, and returns the
// last layer's output as a leaf that requires its gradient (unless no layer needs
// backward). keep are the tensors layer
// reads besides its input, handles of the caller's own that out now holds, as it holds
// grafts'.
func (m *Model) recomputed(h *ts.Tensor, drop *dropper, out *Output, n int, layer layerFn, grafts []graft, keep ...*ts.Tensor) *ts.Tensor {
	r := &recompute{m: m, emb: h, layer: layer, grafts: grafts, keep: keep}
	// Frozen layers under frozen embeddings and grafts pass no gradient to anything: they
	// run once, keeping nothing, as the whole graph records none of them.
	if !h.MustRequiresGrad() && !slices.ContainsFunc(grafts, func(g graft) bool { return g.in.MustRequiresGrad() }) {
		r.first = m.frozenBelow(n)
	}
	x := h.MustDetach(false)
	for i := range n {
		if i >= r.first {
			r.inputs = append(r.inputs, x)
			r.marks = append(r.marks, drop.mark(m.Opts.Device))
			x = x.MustShallowClone()
		}
		noGrad(func() { x = layer(i, x, drop) })
	}
	r.top = x.MustSetRequiresGrad(r.first < n, true)
	out.recompute = r
	return r.top.MustShallowClone()
}

// frozenBelow is how many of the n layers, from the first, have no trainable parameter
// (LoRA's included): all or none where the layers share theirs.
func (m *Model) frozenBelow(n int) int {
	trains := func(prefix string) bool {
		return slices.ContainsFunc(m.Params.List(), func(p *Param) bool { return p.Trainable && strings.HasPrefix(p.Name, prefix) })
	}
	if m.fam.layer == nil {
		if trains(m.fam.base) {
			return 0
		}
		return n
	}
	for i := range n {
		if trains(m.fam.layer(i)) {
			return i
		}
	}
	return n
}

// backward backpropagates through the layers, last to first, and the embeddings, once
// the head's backward has left the gradient of the layers' output in top.
func (r *recompute) backward() error {
	defer r.free()
	m, dev := r.m, r.m.Opts.Device
	if m.Opts.Autocast != "" {
		setAutocast(m.Opts.Autocast)
		defer setAutocast("")
	}
	drop, err := newDropper(true, dev)
	if err != nil {
		return err
	}
	end := drop.mark(dev) // the forward's: the head's dropout drew after the layers'
	if m.lora != nil {
		m.lora.drop = drop
		defer func() { m.lora.drop = nil }()
	}
	g := r.top.MustGrad(false)
	for j := len(r.inputs) - 1; j >= 0; j-- {
		if err := drop.reset(dev, r.marks[j]); err != nil {
			return err
		}
		// The lowest layer's input gradient only the embeddings would read.
		x := r.inputs[j].MustSetRequiresGrad(j > 0 || r.emb.MustRequiresGrad(), false)
		y := r.layer(r.first+j, x.MustShallowClone(), drop)
		backwardWith(y, g)
		y.MustDrop()
		g.MustDrop()
		g = x.MustGrad(false)
		x.MustDrop()
	}
	for _, gr := range r.grafts {
		gin := gr.in.MustGrad(false)
		if gin.MustDefined() { // not with what y reads frozen
			backwardWith(gr.y, gin)
		}
		gin.MustDrop()
	}
	if r.emb.MustRequiresGrad() { // not with the embeddings frozen (LoRA, freezing)
		backwardWith(r.emb, g)
	}
	g.MustDrop()
	if err := drop.reset(dev, end); err != nil {
		return err
	}
	drop.done()
	return nil
}

// free drops what the forward kept; once.
func (r *recompute) free() {
	if r.emb == nil {
		return
	}
	for _, t := range append(append([]*ts.Tensor{r.emb, r.top}, r.inputs...), r.keep...) {
		t.MustDrop()
	}
	for _, gr := range r.grafts {
		gr.y.MustDrop()
		gr.in.MustDrop()
	}
	r.emb, r.top, r.inputs, r.grafts, r.keep = nil, nil, nil, nil, nil
}

// backwardWith backpropagates the output gradient g through y's graph.
func backwardWith(y, g *ts.Tensor) {
	s := y.MustMul(g, false).MustSum(gotch.Float, true)
	s.MustBackward()
	s.MustDrop()
}

// rngMark is the dropout generator's state at a point of a forward: on the CPU the
// dropper's own engine, on a GPU libtorch's generator of the device.
type rngMark struct {
	mt  mt19937
	raw []byte
}

func (d *dropper) mark(dev gotch.Device) rngMark {
	if d.rng != nil {
		return rngMark{mt: d.rng.mt}
	}
	if !d.train || !dev.IsCuda() {
		return rngMark{}
	}
	raw, err := RNGState(dev)
	if err != nil {
		panic(err) // read once per forward already: the device works
	}
	return rngMark{raw: raw}
}

func (d *dropper) reset(dev gotch.Device, k rngMark) error {
	if d.rng != nil {
		d.rng.mt = k.mt
		return nil
	}
	if k.raw != nil {
		return SetRNGState(dev, k.raw)
	}
	return nil
}
