package model

import (
	"fmt"
	"slices"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Optimizer updates the trainable prefix [0, TrainEnd) of a Params' flat weights from
// its flat gradient. Its whole state is a step count and named buffers of TrainEnd
// values, which checkpoints save and cluster nodes transfer between ranks.
type Optimizer interface {
	// Update takes one step at learning rate lr with the gradient in Params.Grad.
	Update(lr float64)
	// SetStep sets the number of steps taken; the next Update is step n+1. A cluster
	// node sets the job's count before each step, whichever node applies it.
	SetStep(n int64)
	// Export copies the state out to host memory.
	Export() Snapshot
	// Import restores what Export returned (its buffers possibly overwritten in place).
	Import(Snapshot) error
}

// Snapshot is an optimizer's state in host memory.
type Snapshot struct {
	Step  int64
	Names []string    // the buffers' names, as torch's optimizers name their state
	Bufs  [][]float32 // one per name, TrainEnd values each
}

// OptimizerOptions choose an optimizer and its hyperparameters.
type OptimizerOptions struct {
	Name        string // adamw | sgd | lamb
	WeightDecay float64
	Momentum    float64 // sgd
	Nesterov    bool    // sgd
	// Beta1, Beta2 and Eps are adamw's and lamb's; 0: torch's defaults (0.9, 0.999;
	// eps 1e-8 for AdamW, 1e-6 for LAMB as torch-optimizer's).
	Beta1, Beta2, Eps float64
}

// OptimizerNames are the optimizers NewOptimizer makes.
var OptimizerNames = []string{"adamw", "sgd", "lamb"}

// NewOptimizer makes the optimizer o names for ps.
func NewOptimizer(ps *Params, o OptimizerOptions) (Optimizer, error) {
	switch o.Name {
	case "adamw":
		a := NewAdamW(ps, o.WeightDecay)
		o.adam(&a.Beta1, &a.Beta2, &a.Eps)
		return a, nil
	case "sgd":
		return NewSGD(ps, o.Momentum, o.Nesterov, o.WeightDecay)
	case "lamb":
		l := NewLAMB(ps, o.WeightDecay)
		o.adam(&l.Beta1, &l.Beta2, &l.Eps)
		return l, nil
	}
	return nil, fmt.Errorf("optimizer %q: want one of %s", o.Name, strings.Join(OptimizerNames, ", "))
}

// adam sets the betas and eps that o sets over an optimizer's defaults.
func (o OptimizerOptions) adam(beta1, beta2, eps *float64) {
	for _, f := range []struct {
		dst *float64
		v   float64
	}{{beta1, o.Beta1}, {beta2, o.Beta2}, {eps, o.Eps}} {
		if f.v != 0 {
			*f.dst = f.v
		}
	}
}

var adamNames = []string{"exp_avg", "exp_avg_sq"}

// SetStep sets the step count that bias correction uses.
func (o *AdamW) SetStep(n int64) { o.Step = n }

// Export is State as a Snapshot.
func (o *AdamW) Export() Snapshot {
	s := o.State()
	return Snapshot{Step: s.Step, Names: adamNames, Bufs: [][]float32{s.M, s.V}}
}

// Import is SetState from a Snapshot.
func (o *AdamW) Import(s Snapshot) error {
	if err := s.check(adamNames, o.ps.TrainEnd); err != nil {
		return err
	}
	return o.SetState(State{Step: s.Step, M: s.Bufs[0], V: s.Bufs[1]})
}

// check says whether s holds the buffers names, n values each.
func (s Snapshot) check(names []string, n int64) error {
	if !slices.Equal(s.Names, names) || len(s.Bufs) != len(names) {
		return fmt.Errorf("optimizer state has buffers %q, this optimizer keeps %q", s.Names, names)
	}
	for i, b := range s.Bufs {
		if int64(len(b)) != n {
			return fmt.Errorf("optimizer state: %s has %d values, the model %d trainable parameters", names[i], len(b), n)
		}
	}
	return nil
}

// stateful is what SGD and LAMB share: the parameters, the step count and the state
// buffers, with the Optimizer methods over them.
type stateful struct {
	ps   *Params
	step int64
	s    slots
}

// update counts a step and runs fn without autograd on views of the trainable weights
// and gradient.
func (o *stateful) update(fn func(p, g *ts.Tensor)) {
	n := o.ps.TrainEnd
	if n == 0 {
		return
	}
	o.step++
	noGrad(func() {
		p := o.ps.Flat.MustNarrow(0, 0, n, false)
		g := o.ps.Grad.MustNarrow(0, 0, n, false)
		defer p.MustDrop()
		defer g.MustDrop()
		fn(p, g)
	})
}

// SetStep sets the step count.
func (o *stateful) SetStep(n int64) { o.step = n }

// Export copies the state buffers out.
func (o *stateful) Export() Snapshot { return o.s.export(o.step, o.ps.TrainEnd) }

// Import restores what Export returned.
func (o *stateful) Import(s Snapshot) error {
	if err := o.s.load(s, o.ps); err != nil {
		return err
	}
	o.step = s.Step
	return nil
}

// slots are an optimizer's state buffers on the model's device, TrainEnd values each.
type slots struct {
	names []string
	bufs  []*ts.Tensor
}

func newSlots(ps *Params, names ...string) slots {
	s := slots{names: names}
	for range names {
		s.bufs = append(s.bufs, ts.MustZeros([]int64{ps.TrainEnd}, gotch.Float, ps.device))
	}
	return s
}

func (s slots) export(step int64, n int64) Snapshot {
	snap := Snapshot{Step: step, Names: s.names}
	for _, b := range s.bufs {
		h := make([]float32, n)
		if n > 0 {
			b.MustCopyData(h, uint(n))
		}
		snap.Bufs = append(snap.Bufs, h)
	}
	return snap
}

func (s slots) load(snap Snapshot, ps *Params) error {
	if err := snap.check(s.names, ps.TrainEnd); err != nil {
		return err
	}
	if ps.TrainEnd == 0 {
		return nil
	}
	noGrad(func() {
		for i, b := range s.bufs {
			t := ts.MustOfSlice(snap.Bufs[i]).MustTo(ps.device, true)
			b.Copy_(t)
			t.MustDrop()
		}
	})
	return nil
}

// decayed calls fn, for each weight-decayed run of Params.Decay, with that run of each
// of views ([TrainEnd] views of flat buffers), in order.
func decayed(ps *Params, fn func(runs ...*ts.Tensor), views ...*ts.Tensor) {
	runs := make([]*ts.Tensor, len(views))
	for _, r := range ps.Decay {
		for i, v := range views {
			runs[i] = v.MustNarrow(0, r[0], r[1]-r[0], false)
		}
		fn(runs...)
		for _, t := range runs {
			t.MustDrop()
		}
	}
}

// addScaled does dst += a·src with a temporary for a·src.
func addScaled(dst, src *ts.Tensor, a float64) {
	t := src.MustMulScalar(ts.FloatScalar(a), false)
	dst.MustAdd_(t)
	t.MustDrop()
}

// ClipAndStep clips the gradient to maxNorm (0: no clipping) and takes one step of o at
// lr, returning the gradient's norm before clipping. AdamW does both in one pass over
// the buffers on the CPU; the others clip first.
func ClipAndStep(o Optimizer, ps *Params, lr, maxNorm float64) float64 {
	if f, ok := o.(interface {
		ClipAndUpdate(lr, maxNorm float64) float64
	}); ok {
		return f.ClipAndUpdate(lr, maxNorm)
	}
	norm := ps.ClipGradNorm(maxNorm)
	o.Update(lr)
	return norm
}
