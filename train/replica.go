package train

import (
	"context"
	"fmt"
	"io"

	"github.com/bertnode/bertnode/internal/nativeenv"
	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/stream"
)

// Replica is the BERT model a cluster node trains (node.Replica): the same model,
// tokenizer, task, optimizer and schedule as `bertnode train`, fed one piece of each
// global batch at a time instead of reading the whole dataset.
type Replica struct {
	t     *Trainer
	sched Schedule
	snap  model.Snapshot // host copies of the optimizer's state, which State exposes
	state [][]float32    // weights (a view), then snap's buffers
	last  EvalResult
	loss  model.Losses // the last Backward's
	// unscaled: Unscale has put the summed gradient on the device and divided it
	// there; Apply must not copy the host's over it again.
	unscaled bool
}

// NewReplica builds a replica for spec with the job's labels (from the data plan) and
// evaluation records. totalSteps sets the learning-rate schedule.
func NewReplica(spec Spec, labels []string, eval []shard.Record, totalSteps int64, out io.Writer) (_ *Replica, err error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	dev, err := model.ParseDevice(spec.Device)
	if err != nil {
		return nil, fmt.Errorf("job spec: %w", err)
	}
	defer model.CatchOn(dev, &err) // the model itself may not fit the device
	tk, err := newTask(spec)
	if err != nil {
		return nil, fmt.Errorf("job spec: task: %w", err)
	}
	ls, err := shard.NewLabelSet(labels)
	if err != nil {
		return nil, fmt.Errorf("job labels: %w", err)
	}
	t, err := newTrainer(spec, tk, ls, out)
	if err != nil {
		return nil, err
	}
	if t.Eval, err = tk.encode(t.Tok, eval, ls, spec.MaxLength); err != nil {
		return nil, err
	}
	total := int(totalSteps)
	return &Replica{t: t, sched: spec.LRSchedule(total)}, nil
}

func (r *Replica) ZeroGrad() { r.t.Model.Params.ZeroGrad() }

// Backward is the single-machine trainer's backward: the same micro-batches, weights
// and loss.
func (r *Replica) Backward(recs []shard.Record, weight float64, seed int64) (_ float64, err error) {
	defer outOfMemory(r.t.Model.Opts.Device, &err)
	defer model.CatchOn(r.t.Model.Opts.Device, &err)
	r.loss, err = r.t.backward(recs, weight, seed, nil)
	return r.loss.Total, err
}

// LossParts are the last Backward's distillation and label losses, when distilling.
func (r *Replica) LossParts() (soft, hard float64, ok bool) {
	return r.loss.Soft, r.loss.Hard, r.t.teacher != nil
}

// CanOverlap: on the CPU the all-reduce reads the gradient itself, which backward
// finishes prefix by prefix. A GPU model's gradient reaches the host in one copy after
// backward (HostGrad), so it is all-reduced then.
//
// Nor with gradient checkpointing, whose backward runs a layer at a time: a parameter
// shared between layers receives one gradient per layer, so its first would look final.
// Nor with auto_micro_batch, whose step out of memory is taken again from the start:
// what the ring had sent of it would be wrong.
func (r *Replica) CanOverlap() bool {
	return !r.t.Model.Opts.Device.IsCuda() && !r.t.Model.Opts.GradientCheckpointing && !r.t.Spec.AutoMicroBatch
}

// BackwardReady is Backward, reporting the gradient's final prefixes during the last
// micro-batch's backward (the earlier ones add to every value again).
func (r *Replica) BackwardReady(recs []shard.Record, weight float64, seed int64, ready func(n int)) (_ float64, err error) {
	defer outOfMemory(r.t.Model.Opts.Device, &err)
	defer model.CatchOn(r.t.Model.Opts.Device, &err)
	r.loss, err = r.t.backward(recs, weight, seed, ready)
	return r.loss.Total, err
}

func (r *Replica) Grad() []float32 { return r.t.Model.Params.HostGrad() }

// LossScaling says the replica trains in fp16, with a dynamic loss scale (node.LossScaler).
func (r *Replica) LossScaling() bool { return r.t.Spec.Autocast == "fp16" }

// Unscale divides the summed gradient by the loss scale, as the single-machine trainer
// does, unless it overflowed: then false, and the step is to be skipped.
func (r *Replica) Unscale(scale float64) bool {
	ps := r.t.Model.Params
	ps.SyncGrad()
	r.unscaled = unscaleGrad(ps, scale)
	return r.unscaled
}

// Apply clips and takes optimizer step number step: the optimizer's step count (AdamW's
// and LAMB's bias correction) follows the job's, whichever node applies it.
func (r *Replica) Apply(step int64, lrScale float64) (_ float64, err error) {
	defer outOfMemory(r.t.Model.Opts.Device, &err)
	defer model.CatchOn(r.t.Model.Opts.Device, &err)
	ps := r.t.Model.Params
	if !r.unscaled {
		ps.SyncGrad()
	}
	r.unscaled = false
	r.t.opt.SetStep(step)
	return model.ClipAndStep(r.t.opt, ps, r.sched.LR(int(step))*lrScale, r.t.Spec.ClipNorm), nil
}

// State is the weights (a view of the model's memory) and copies of the optimizer's
// state buffers (AdamW's and LAMB's moments, SGD's momentum) taken now; Loaded writes
// the buffers back.
func (r *Replica) State() [][]float32 {
	r.snap = r.t.opt.Export()
	r.state = append([][]float32{r.t.Model.Params.FlatSlice()}, r.snap.Bufs...)
	return r.state
}

func (r *Replica) Loaded() error { return r.t.opt.Import(r.snap) }

// Layout is the flat buffers' layout, which node checkpoints record.
func (r *Replica) Layout() string { return model.Layout }

// Width is the model's hidden size: the rows PowerSGD folds the gradient into.
func (r *Replica) Width() int { return r.t.Model.Config.HiddenSize }

// Evaluate runs this rank's share of the eval batches, gathers every batch's logits
// over the ring (their sizes first), and scores all of them on every rank, so the
// metrics, the best checkpoint and early stopping agree everywhere.
func (r *Replica) Evaluate(ctx context.Context, rank, ranks int, gather func([]float32) error) (_ map[string]float64, err error) {
	t := r.t
	defer outOfMemory(t.Model.Opts.Device, &err)
	defer model.CatchOn(t.Model.Opts.Device, &err)
	bs := t.Spec.BatchSize
	nb := (len(t.Eval) + bs - 1) / bs
	batch := func(i int) []*Example {
		exs := make([]*Example, 0, bs)
		for j := i * bs; j < min((i+1)*bs, len(t.Eval)); j++ {
			exs = append(exs, &t.Eval[j])
		}
		return exs
	}
	ids := make([]int32, nb)
	for i := range ids {
		ids[i] = int32(i)
	}
	mine := stream.Piece(ids, ranks, rank)
	logits := make(map[int32][]float32, len(mine))
	sizes := make([]float32, 2*nb) // per batch: logits count, loss × examples
	for _, i := range mine {
		exs := batch(int(i))
		b, err := t.batch(exs, evalMaskSeed)
		if err != nil {
			return nil, err
		}
		l, loss, err := t.Model.Infer(b)
		if err != nil {
			return nil, err
		}
		logits[i] = l
		sizes[2*i], sizes[2*i+1] = float32(len(l)), float32(loss*float64(len(exs)))
	}
	if err := gather(sizes); err != nil {
		return nil, err
	}
	off := make([]int, nb+1)
	for i := range nb {
		off[i+1] = off[i] + int(sizes[2*i])
	}
	all := make([]float32, off[nb])
	for i, l := range logits {
		copy(all[off[i]:], l)
	}
	if err := gather(all); err != nil {
		return nil, err
	}
	sc := t.task.scorer(t.Labels.Names())
	var lossSum float64
	for i := range nb {
		exs := batch(i)
		b, err := t.batch(exs, evalMaskSeed)
		if err != nil {
			return nil, err
		}
		if err := sc.add(exs, b, all[off[i]:off[i+1]]); err != nil {
			return nil, err
		}
		lossSum += float64(sizes[2*i+1])
	}
	res, err := sc.result()
	if err != nil {
		return nil, err
	}
	res.Loss = lossSum / float64(max(1, len(t.Eval)))
	r.last = res
	m := map[string]float64{"loss": res.Loss}
	for k, v := range res.Metrics {
		m[k] = v
	}
	return m, nil
}

// Save writes the model and tokenizer in the Hugging Face layout.
func (r *Replica) Save(dir string) (err error) {
	defer outOfMemory(r.t.Model.Opts.Device, &err)
	defer model.CatchOn(r.t.Model.Opts.Device, &err)
	return r.t.Save(dir)
}

// WriteReports writes the last evaluation's confusion matrix, mistakes and predictions.
func (r *Replica) WriteReports(dir string) error { return writeEvalReports(dir, r.last) }

// Close drops the replica's model, optimizer and evaluation set and frees their memory
// at once (nativeenv.ReleaseMemory): a node runs one replica after another for months.
func (r *Replica) Close() error {
	r.t = nil
	nativeenv.ReleaseMemory()
	return nil
}
