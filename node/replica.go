package node

import (
	"context"

	"github.com/bertnode/bertnode/shard"
)

// Replica is one data-parallel copy of a model: what the node's step loop trains.
// train.Replica is libtorch BERT; Toy is a small pure-Go model that lets the loop and
// the cluster be tested in seconds. All methods are called from one goroutine, locked
// to its OS thread (package model's rule).
type Replica interface {
	// ZeroGrad clears the gradient buffer.
	ZeroGrad()
	// Backward adds weight × the gradient of the mean loss over recs to the gradient
	// buffer and returns that mean loss. The node passes len(recs)/len(global batch),
	// so the ranks' summed gradients are the gradient of the whole batch's mean loss,
	// and the step's seed for whatever the model draws at random (api.StepSeed).
	Backward(recs []shard.Record, weight float64, seed int64) (float64, error)
	// Grad is the flat gradient in host memory; the all-reduce sums it in place.
	Grad() []float32
	// Apply takes optimizer step number step (0-based) with the gradient as the
	// all-reduce left it: clipping, the learning-rate schedule scaled by lrScale, the
	// update. It returns the gradient's norm before clipping.
	Apply(step int64, lrScale float64) (float64, error)
	// State is the replica's whole trainable state (weights, optimizer moments) as
	// host buffers the node may read and overwrite in place; after overwriting it
	// calls Loaded. Buffers keep their lengths for the replica's life.
	State() [][]float32
	Loaded() error
	// Evaluate scores the job's eval set. The ranks of a ring share the forward passes:
	// each computes its part, and gather sums a buffer over the ring (in place), so
	// every rank ends with the same metrics.
	Evaluate(ctx context.Context, rank, ranks int, gather func([]float32) error) (map[string]float64, error)
	// Save writes the model to dir as a loadable checkpoint (Hugging Face layout for
	// BERT).
	Save(dir string) error
	// Close releases what the replica holds.
	Close() error
}

// LossScaler is a Replica that may train in fp16 with a dynamic loss scale, as the
// single-machine trainer does (lossscale): when LossScaling, the node multiplies each
// Backward's weight by the position's scale and, once the gradient is summed, Unscale
// divides it by the scale, or says it overflowed, and then every rank skips the step
// (they hold the same sum, so they agree).
type LossScaler interface {
	LossScaling() bool
	Unscale(scale float64) bool
}

// Distiller is a Replica that may learn from a teacher: the mean loss its last Backward
// returned is then alpha × the distillation loss + (1 − alpha) × the loss against the
// labels, and LossParts gives those two (ok false when it has no teacher).
type Distiller interface {
	LossParts() (soft, hard float64, ok bool)
}

// lossParts is r's LossParts, or none for a replica that does not distil.
func lossParts(r Replica) (soft, hard float64, ok bool) {
	if d, is := r.(Distiller); is {
		return d.LossParts()
	}
	return 0, 0, false
}

// Reporter is a Replica that writes reports of its last evaluation (confusion matrix,
// mistakes) next to the final model.
type Reporter interface {
	WriteReports(dir string) error
}

// Layouter is a Replica whose flat buffers are laid out in a way a later build may
// change (train.Replica: model.Layout); checkpoints record it, and one in another
// layout is refused instead of loaded into the wrong places.
type Layouter interface {
	Layout() string
}

// Widther is a Replica whose gradient is mostly matrices of a known width (a BERT's
// hidden size): PowerSGD folds the flat gradient into rows of it.
type Widther interface {
	Width() int
}

// widthOf is r's Width, or 0 (PowerSGD's default) for a replica without one.
func widthOf(r Replica) int {
	if w, ok := r.(Widther); ok {
		return w.Width()
	}
	return 0
}

func layoutOf(r Replica) string {
	if l, ok := r.(Layouter); ok {
		return l.Layout()
	}
	return ""
}
