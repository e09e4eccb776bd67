package node

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/bertnode/bertnode/internal/atomicfile"
	"github.com/bertnode/bertnode/metrics"
	"github.com/bertnode/bertnode/safetensors"
	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/stream"
)

// Toy is softmax regression over hashed words, trained with AdamW: a small, real text
// classifier in plain Go (`model: toy` in a job spec). It lets the step loop, the ring
// and the whole cluster be tested, and their failures rehearsed, in seconds and
// without libtorch; everything the loop relies on (a flat gradient, optimizer state
// in buffers, evaluation shared over the ring) works as for BERT.
type Toy struct {
	labels []string
	index  map[string]int
	dim    int
	lr     float64
	clip   float64
	decay  float64
	eval   []shard.Record
	fp16   float32 // with mixed precision fp16: the largest gradient value that does not overflow

	w, m, v, grad []float32 // [classes × (dim + 1)]: a bias per class in the last column
	feats         []int
	probs         []float64
}

// ToyConfig configures a Toy.
type ToyConfig struct {
	Labels      []string
	Dim         int // hashed features (default 4096)
	LR          float64
	ClipNorm    float64
	WeightDecay float64
	Seed        int64
	Eval        []shard.Record
	// FP16 makes the Toy a LossScaler that overflows as fp16 would: a scaled gradient
	// value beyond FP16Max (default fp16's largest, 65504). The Toy's gradients are
	// small; a test may lower it to see the loss scale fall, as a BERT's does.
	FP16    bool
	FP16Max float32
}

// NewToy makes a Toy with weights drawn from N(0, 0.01) by Seed.
func NewToy(c ToyConfig) (*Toy, error) {
	if len(c.Labels) < 2 {
		return nil, fmt.Errorf("toy model: %d classes; want at least 2", len(c.Labels))
	}
	if c.Dim <= 0 {
		c.Dim = 4096
	}
	t := &Toy{labels: c.Labels, index: map[string]int{}, dim: c.Dim, lr: c.LR, clip: c.ClipNorm, decay: c.WeightDecay, eval: c.Eval}
	if c.FP16 {
		t.fp16 = cmp.Or(c.FP16Max, 65504)
	}
	for i, l := range c.Labels {
		t.index[l] = i
	}
	n := len(c.Labels) * (c.Dim + 1)
	t.w, t.m, t.v, t.grad = make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
	rng := rand.New(rand.NewPCG(uint64(c.Seed), 7))
	for i := range t.w {
		t.w[i] = float32(rng.NormFloat64() * 0.01)
	}
	t.probs = make([]float64, len(c.Labels))
	return t, nil
}

// features hashes a text's lower-cased words into feature indexes.
func (t *Toy) features(text string) []int {
	t.feats = t.feats[:0]
	for _, w := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		h := fnv.New32a()
		h.Write([]byte(w))
		t.feats = append(t.feats, int(h.Sum32()%uint32(t.dim)))
	}
	return t.feats
}

// forward fills t.probs for a text and returns the features it used.
func (t *Toy) forward(text string) []int {
	f := t.features(text)
	row := t.dim + 1
	mx := math.Inf(-1)
	for c := range t.labels {
		z := float64(t.w[c*row+t.dim])
		for _, j := range f {
			z += float64(t.w[c*row+j])
		}
		t.probs[c] = z
		mx = math.Max(mx, z)
	}
	var sum float64
	for c := range t.probs {
		t.probs[c] = math.Exp(t.probs[c] - mx)
		sum += t.probs[c]
	}
	for c := range t.probs {
		t.probs[c] /= sum
	}
	return f
}

func (t *Toy) label(r *shard.Record) (int, error) {
	if len(r.Labels) != 1 {
		return 0, fmt.Errorf("%s:%d: toy model: want one label, have %d", r.Pos.File, r.Pos.Line, len(r.Labels))
	}
	y, ok := t.index[r.Labels[0]]
	if !ok {
		return 0, fmt.Errorf("%s:%d: label %q is not one of the job's labels %v", r.Pos.File, r.Pos.Line, r.Labels[0], t.labels)
	}
	return y, nil
}

func (t *Toy) ZeroGrad() { clear(t.grad) }

// Backward draws nothing at random: seed is not used.
func (t *Toy) Backward(recs []shard.Record, weight float64, _ int64) (float64, error) {
	if len(recs) == 0 {
		return 0, nil
	}
	row := t.dim + 1
	scale := weight / float64(len(recs))
	var loss float64
	for i := range recs {
		y, err := t.label(&recs[i])
		if err != nil {
			return 0, err
		}
		f := t.forward(recs[i].Text)
		loss -= math.Log(math.Max(t.probs[y], 1e-12))
		for c := range t.labels {
			d := t.probs[c]
			if c == y {
				d--
			}
			g := float32(d * scale)
			t.grad[c*row+t.dim] += g
			for _, j := range f {
				t.grad[c*row+j] += g
			}
		}
	}
	return loss / float64(len(recs)), nil
}

func (t *Toy) Grad() []float32 { return t.grad }

func (t *Toy) LossScaling() bool { return t.fp16 > 0 }

// Unscale divides the gradient by scale, unless a value is beyond the fp16 range.
func (t *Toy) Unscale(scale float64) bool {
	for _, g := range t.grad {
		if !(g >= -t.fp16 && g <= t.fp16) {
			return false
		}
	}
	for i := range t.grad {
		t.grad[i] = float32(float64(t.grad[i]) / scale)
	}
	return true
}

// Apply is torch.optim.AdamW's update (betas 0.9, 0.999, eps 1e-8) after clipping the
// gradient's norm to ClipNorm, at a constant learning rate times lrScale.
func (t *Toy) Apply(step int64, lrScale float64) (float64, error) {
	var sq float64
	for _, g := range t.grad {
		sq += float64(g) * float64(g)
	}
	norm := math.Sqrt(sq)
	clip := 1.0
	if t.clip > 0 && norm > t.clip {
		clip = t.clip / (norm + 1e-6)
	}
	lr := t.lr * lrScale
	n := float64(step + 1)
	bc1, bc2 := 1-math.Pow(0.9, n), 1-math.Pow(0.999, n)
	for i, g0 := range t.grad {
		g := float64(g0) * clip
		m := 0.9*float64(t.m[i]) + 0.1*g
		v := 0.999*float64(t.v[i]) + 0.001*g*g
		t.m[i], t.v[i] = float32(m), float32(v)
		w := float64(t.w[i]) * (1 - lr*t.decay)
		t.w[i] = float32(w - lr/bc1*m/(math.Sqrt(v/bc2)+1e-8))
	}
	return norm, nil
}

func (t *Toy) State() [][]float32 { return [][]float32{t.w, t.m, t.v} }

func (t *Toy) Loaded() error { return nil }

// Evaluate predicts each rank's share of the eval records, gathers the predictions
// over the ring, and scores them all on every rank.
func (t *Toy) Evaluate(ctx context.Context, rank, ranks int, gather func([]float32) error) (map[string]float64, error) {
	pred := make([]float32, len(t.eval))
	for _, i := range stream.Piece(allIDs(len(t.eval)), ranks, rank) {
		t.forward(t.eval[i].Text)
		best := 0
		for c := range t.probs {
			if t.probs[c] > t.probs[best] {
				best = c
			}
		}
		pred[i] = float32(best + 1)
	}
	if err := gather(pred); err != nil {
		return nil, err
	}
	gold, got := make([]int, len(t.eval)), make([]int, len(t.eval))
	for i := range t.eval {
		y, err := t.label(&t.eval[i])
		if err != nil {
			return nil, err
		}
		gold[i], got[i] = y, int(pred[i])-1
	}
	rep, _, err := metrics.Classification(gold, got, t.labels)
	if err != nil {
		return nil, err
	}
	m := rep.Named()
	m["accuracy"] = rep.Accuracy
	return m, nil
}

// ToyConfigFile names the labels and the feature count next to the weights.
const ToyConfigFile = "toy.json"

func (t *Toy) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.Marshal(map[string]any{"model_type": "toy", "labels": t.labels, "dim": t.dim})
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, ToyConfigFile), b, 0o644); err != nil {
		return err
	}
	return safetensors.Save(filepath.Join(dir, "model.safetensors"), []safetensors.Tensor{{
		Info: safetensors.Info{Name: "weight", DType: safetensors.F32, Shape: []int64{int64(len(t.labels)), int64(t.dim + 1)}},
		Data: f32bytes(t.w),
	}}, nil)
}

func (t *Toy) Close() error { return nil }
