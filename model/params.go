package model

import (
	"fmt"
	"runtime"
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
)

// Param is one named parameter: a view into Params' flat buffer.
type Param struct {
	Name      string
	Shape     []int64
	Offset    int64 // into the flat buffers, in elements
	Numel     int64
	Init      Init
	Decay     bool // AdamW's weight decay applies (not to biases and LayerNorm weights)
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
// Layout: trainable parameters with weight decay, then trainable ones without, then the
// frozen ones; each group sorted by name. The optimizer and the all-reduce therefore work
// on prefixes ([0, DecayEnd) and [0, TrainEnd)), and every rank agrees on the order.
type Params struct {
	list   []*Param
	byName map[string]*Param
	device gotch.Device

	Flat     *ts.Tensor // [Total] weights
	Grad     *ts.Tensor // [Total] gradients; only [0, TrainEnd) is ever non-zero
	Total    int64
	DecayEnd int64
	TrainEnd int64

	hostGrad *ts.Tensor // CPU staging copy of the trainable gradient, for a GPU model
}

func newParams(device gotch.Device) *Params {
	return &Params{byName: map[string]*Param{}, device: device}
}

// add declares a parameter; its tensor exists after build.
func (ps *Params) add(name string, shape []int64, init Init) *Param {
	if _, dup := ps.byName[name]; dup {
		panic("model: parameter declared twice: " + name)
	}
	n := numel(shape)
	decay := init == InitNormal // weights decay; biases (zeros) and LayerNorm (ones, zeros) do not
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

func group(p *Param) int {
	switch {
	case p.Trainable && p.Decay:
		return 0
	case p.Trainable:
		return 1
	}
	return 2
}

// build lays the parameters out, allocates the flat buffers and initialises every
// parameter from libtorch's generator (seed it first for reproducible weights).
func (ps *Params) build(initRange float64) {
	sort.SliceStable(ps.list, func(i, j int) bool {
		gi, gj := group(ps.list[i]), group(ps.list[j])
		if gi != gj {
			return gi < gj
		}
		return ps.list[i].Name < ps.list[j].Name
	})
	var off int64
	ps.DecayEnd, ps.TrainEnd = -1, -1
	for _, p := range ps.list {
		if group(p) >= 1 && ps.DecayEnd < 0 {
			ps.DecayEnd = off
		}
		if group(p) >= 2 && ps.TrainEnd < 0 {
			ps.TrainEnd = off
		}
		p.Offset = off
		off += p.Numel
	}
	ps.Total = off
	if ps.DecayEnd < 0 {
		ps.DecayEnd = off
	}
	if ps.TrainEnd < 0 {
		ps.TrainEnd = off
	}
	opts := gotch.Float
	ps.Flat = ts.MustZeros([]int64{ps.Total}, opts, ps.device)
	ps.Grad = ts.MustZeros([]int64{ps.Total}, opts, ps.device)
	noGrad(func() {
		for _, p := range ps.list {
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
	return fmt.Sprintf("%d parameters (%d trainable, %d with weight decay)", ps.Total, ps.TrainEnd, ps.DecayEnd)
}
