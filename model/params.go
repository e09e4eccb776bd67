package model

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"sort"
	"strings"
	"unsafe"

	"github.com/sugarme/gotch"
	lib "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/ts"
)

// Init says how a parameter starts when no checkpoint provides it.
type Init int

const (
	InitNormal Init = iota // N(0, initializer_range), as BERT's weights
	InitZeros
	InitOnes
	// InitKaimingUniform is torch's kaiming_uniform_(a=√5) on a [out, in] weight,
	// U(-1/√in, 1/√in): nn.Linear's default, and PEFT's for LoRA's A.
	InitKaimingUniform
)

// Param is one named parameter: a view into Params' flat buffer.
type Param struct {
	Name      string
	Shape     []int64
	Offset    int64 // into the flat buffers, in elements
	Numel     int64
	Init      Init
	Decay     bool // weight decay applies (not to biases and LayerNorm weights)
	Trainable bool
	// PadRow zeroes one row at init (the embedding of [PAD]), as transformers does.
	PadRow int64

	T *ts.Tensor // the live parameter, set by Params.Build
}

// Params holds every parameter of a model in one contiguous float32 buffer, and every
// gradient in another. Each parameter is a view into the first and its .grad a view into
// the second, so backward accumulates straight into the flat gradient, which the
// all-reduce reads and writes in place and the optimizer updates in a few whole-buffer ops.
//
// Layout: the trainable parameters in the reverse of the order they were declared, then
// the frozen ones, also reversed. Families declare the embeddings, the layers in the order
// Forward applies them, then the head (family.go), so the buffer runs head, top layer,
// ..., bottom layer, embeddings: the order in which backward finishes the gradients, so
// the gradient becomes final front to back and the all-reduce can start on a prefix while
// backward still runs (GradWatch). The optimizer and the all-reduce work on the prefix
// [0, TrainEnd); weight decay applies to the runs in Decay. The layout depends only on
// the declarations, so every rank agrees on it.
type Params struct {
	list   []*Param
	byName map[string]*Param
	device gotch.Device

	Flat     *ts.Tensor // [Total] weights
	Grad     *ts.Tensor // [Total] gradients; only [0, TrainEnd) is ever non-zero
	Total    int64
	TrainEnd int64
	// Decay are the weight-decayed runs [lo, hi) of [0, TrainEnd), ascending and
	// maximal: the trainable parameters with Decay set.
	Decay [][2]int64

	hostGrad *ts.Tensor // CPU staging copy of the trainable gradient, for a GPU model
	watch    *GradWatch // made on first use
}

// Layout names the buffer layout above. Flat buffers saved by one layout (optimizer
// state, node checkpoints) are only meaningful in the same one, so savers record it.
const Layout = "reverse-declaration"

func newParams(device gotch.Device) *Params {
	return &Params{byName: map[string]*Param{}, device: device}
}

// add declares a parameter; its tensor exists after build.
func (ps *Params) add(name string, shape []int64, init Init) *Param {
	if _, dup := ps.byName[name]; dup {
		panic("model: parameter declared twice: " + name)
	}
	n := numel(shape)
	decay := init == InitNormal || init == InitKaimingUniform // weights decay; biases (zeros) and LayerNorm (ones, zeros) do not
	p := &Param{Name: name, Shape: shape, Numel: n, Init: init, Decay: decay, Trainable: true, PadRow: -1}
	ps.list = append(ps.list, p)
	ps.byName[name] = p
	return p
}

func numel(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}

// Get returns the named parameter, or nil.
func (ps *Params) Get(name string) *Param { return ps.byName[name] }

// List returns the parameters in buffer order.
func (ps *Params) List() []*Param { return ps.list }

// build lays the parameters out, allocates the flat buffers and initialises every
// parameter from libtorch's generator (seed it first for reproducible weights).
func (ps *Params) build(initRange float64) {
	slices.Reverse(ps.list)
	sort.SliceStable(ps.list, func(i, j int) bool { return ps.list[i].Trainable && !ps.list[j].Trainable })
	var off int64
	ps.TrainEnd, ps.Decay = -1, nil
	for _, p := range ps.list {
		if !p.Trainable && ps.TrainEnd < 0 {
			ps.TrainEnd = off
		}
		if p.Trainable && p.Decay {
			if k := len(ps.Decay) - 1; k >= 0 && ps.Decay[k][1] == off {
				ps.Decay[k][1] += p.Numel
			} else {
				ps.Decay = append(ps.Decay, [2]int64{off, off + p.Numel})
			}
		}
		p.Offset = off
		off += p.Numel
	}
	ps.Total = off
	if ps.TrainEnd < 0 {
		ps.TrainEnd = off
	}
	opts := gotch.Float
	ps.Flat = ts.MustZeros([]int64{ps.Total}, opts, ps.device)
	ps.Grad = ts.MustZeros([]int64{ps.Total}, opts, ps.device)
	noGrad(func() {
		// Drawn in the order of the layout before Layout, so a seed gives the weights
		// it gave then.
		for _, p := range ps.legacyOrder() {
			v := ps.Flat.MustNarrow(0, p.Offset, p.Numel, false).MustView(p.Shape, true)
			switch p.Init {
			case InitNormal:
				r := ts.MustRandn(p.Shape, opts, ps.device).MustMulScalar(ts.FloatScalar(initRange), true)
				v.Copy_(r)
				r.MustDrop()
				if p.PadRow >= 0 {
					row := v.MustSelect(0, p.PadRow, false)
					row.MustZero_()
					row.MustDrop()
				}
			case InitOnes:
				v.MustFill_(ts.FloatScalar(1))
			case InitKaimingUniform:
				bound := 1 / math.Sqrt(float64(p.Shape[1]))
				v.MustUniform_(-bound, bound)
			}
			// A detached view shares the flat storage but is a leaf of its own.
			p.T = v.MustDetach(true).MustSetRequiresGrad(p.Trainable, true)
			if p.Trainable {
				g := ps.Grad.MustNarrow(0, p.Offset, p.Numel, false).MustView(p.Shape, true)
				setGrad(p.T, g)
				g.MustDrop()
			}
		}
	})
}

func setGrad(param, grad *ts.Tensor) {
	lib.BnSetGrad(ctensor(param), ctensor(grad))
	if err := ts.TorchErr(); err != nil {
		panic(fmt.Errorf("model: attaching a gradient view: %w", err))
	}
}

// ZeroGrad zeroes the flat gradient in place (the parameters' .grad views stay attached).
func (ps *Params) ZeroGrad() { ps.Grad.MustZero_() }

// GradSlice is the trainable part of the flat gradient as a Go slice aliasing the
// tensor's memory: no copy. CPU only (see HostGrad). The slice is valid while ps is
// reachable: gotch frees tensors from finalizers.
func (ps *Params) GradSlice() []float32 { return floatSlice(ps.Grad, ps.TrainEnd) }

// HostGrad returns the trainable gradient in host memory for the all-reduce: on the
// CPU the gradient itself (no copy), from a GPU one device-to-host copy into a staging
// buffer allocated once. After changing it, call SyncGrad.
func (ps *Params) HostGrad() []float32 {
	if !ps.device.IsCuda() {
		return ps.GradSlice()
	}
	g := ps.Grad.MustNarrow(0, 0, ps.TrainEnd, false)
	defer g.MustDrop()
	if ps.hostGrad == nil {
		ps.hostGrad = ts.MustZeros([]int64{ps.TrainEnd}, gotch.Float, gotch.CPU)
	}
	ps.hostGrad.Copy_(g)
	return floatSlice(ps.hostGrad, ps.TrainEnd)
}

// SyncGrad copies what HostGrad returned back to the device; on the CPU it does nothing.
func (ps *Params) SyncGrad() {
	if !ps.device.IsCuda() || ps.hostGrad == nil {
		return
	}
	g := ps.Grad.MustNarrow(0, 0, ps.TrainEnd, false)
	g.Copy_(ps.hostGrad)
	g.MustDrop()
}

// FlatSlice is the flat weights as a Go slice aliasing the tensor's memory. CPU only.
func (ps *Params) FlatSlice() []float32 { return floatSlice(ps.Flat, ps.Total) }

// readFloats copies the contiguous float32 tensor t, on any device, into dst, and
// writeFloats copies src into it: through a host view, because gotch's CopyData and
// OfSlice check every element by reflection (about 60 ns each, seconds for a model's
// optimizer state).
func readFloats(t *ts.Tensor, dst []float32) {
	if len(dst) == 0 {
		return
	}
	if t.MustDevice().IsCuda() {
		t = t.MustTo(gotch.CPU, false)
		defer t.MustDrop()
	}
	copy(dst, floatSlice(t, int64(len(dst))))
	runtime.KeepAlive(t)
}

func writeFloats(t *ts.Tensor, src []float32) {
	if len(src) == 0 {
		return
	}
	if !t.MustDevice().IsCuda() {
		copy(floatSlice(t, int64(len(src))), src)
		runtime.KeepAlive(t)
		return
	}
	h := ts.MustEmpty([]int64{int64(len(src))}, gotch.Float, gotch.CPU)
	copy(floatSlice(h, int64(len(src))), src)
	noGrad(func() { t.Copy_(h) })
	h.MustDrop()
}

func floatSlice(t *ts.Tensor, n int64) []float32 {
	if n == 0 {
		return nil
	}
	if t.MustDevice().IsCuda() || t.DType() != gotch.Float {
		panic("model: a Go view of a tensor needs float32 on the CPU")
	}
	return unsafe.Slice((*float32)(t.MustDataPtr()), n)
}

// Freeze marks parameters whose names start with any of the prefixes as not trainable.
// It must run before build.
func (ps *Params) freeze(prefixes []string) int {
	n := 0
	for _, p := range ps.list {
		for _, pre := range prefixes {
			if strings.HasPrefix(p.Name, pre) {
				if p.Trainable {
					n++
				}
				p.Trainable = false
			}
		}
	}
	return n
}

// Count returns the number of parameters and of trainable ones.
func (ps *Params) Count() (total, trainable int64) { return ps.Total, ps.TrainEnd }

func (ps *Params) String() string {
	var decayed int64
	for _, r := range ps.Decay {
		decayed += r[1] - r[0]
	}
	return fmt.Sprintf("%d parameters (%d trainable, %d with weight decay)", ps.Total, ps.TrainEnd, decayed)
}

// decaySpans calls fn for [lo, hi) cut at the edges of the decayed runs, in order,
// saying whether each piece is decayed.
func (ps *Params) decaySpans(lo, hi int64, fn func(lo, hi int64, decay bool)) {
	k := sort.Search(len(ps.Decay), func(k int) bool { return ps.Decay[k][1] > lo })
	for lo < hi {
		if k == len(ps.Decay) || ps.Decay[k][0] >= hi {
			fn(lo, hi, false)
			return
		}
		r := ps.Decay[k]
		if lo < r[0] {
			fn(lo, r[0], false)
			lo = r[0]
		}
		e := min(hi, r[1])
		fn(lo, e, true)
		lo, k = e, k+1
	}
}

// legacyOrder is the parameters in the layout before Layout: trainable ones with weight
// decay, then trainable ones without, then frozen ones, each group sorted by name.
func (ps *Params) legacyOrder() []*Param {
	group := func(p *Param) int {
		switch {
		case p.Trainable && p.Decay:
			return 0
		case p.Trainable:
			return 1
		}
		return 2
	}
	l := slices.Clone(ps.list)
	sort.SliceStable(l, func(i, j int) bool {
		if gi, gj := group(l[i]), group(l[j]); gi != gj {
			return gi < gj
		}
		return l[i].Name < l[j].Name
	})
	return l
}

// FromLegacyLayout permutes buf, a [TrainEnd] buffer in the layout before Layout
// (legacyOrder), into this one. Optimizer state saved before the change loads through it.
func (ps *Params) FromLegacyLayout(buf []float32) error {
	if int64(len(buf)) != ps.TrainEnd {
		return fmt.Errorf("%d values, the model has %d trainable parameters", len(buf), ps.TrainEnd)
	}
	old := slices.Clone(buf)
	var off int64
	for _, p := range ps.legacyOrder() {
		if !p.Trainable {
			break
		}
		copy(buf[p.Offset:p.Offset+p.Numel], old[off:off+p.Numel])
		off += p.Numel
	}
	return nil
}
