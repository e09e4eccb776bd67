package model

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/bertnode/bertnode/hf"
)

// lockThread pins the test's goroutine to its OS thread, where libtorch keeps grad
// mode, for the rest of the test. Every test and subtest (a goroutine of its own) that
// touches tensors calls it first and does all its tensor work on that goroutine.
func lockThread(t testing.TB) {
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
	SetThreads(1)
}

// smallConfig is a BERT small enough that a forward pass takes about a millisecond.
func smallConfig(dropout float64) *hf.BertConfig {
	c := hf.DefaultConfig()
	c.VocabSize, c.HiddenSize, c.NumHiddenLayers, c.NumAttentionHeads = 100, 32, 2, 4
	c.IntermediateSize, c.MaxPositionEmbeddings = 64, 64
	c.HiddenDropoutProb, c.AttentionProbsDropoutProb = dropout, dropout
	// Ten times BERT's init scale: attention far from uniform and logits far from zero,
	// so that a wrong mask or gradient shows clearly above float32 rounding.
	c.InitializerRange = 0.2
	return c
}

// taskCases are the heads the per-task tests run, with every loss option in use.
var taskCases = []struct {
	name string
	opts Options
}{
	{"classify", Options{Task: Classify, NumLabels: 3, ClassWeights: []float32{0.5, 2, 1}}},
	{"multilabel", Options{Task: MultiLabel, NumLabels: 4, ClassWeights: []float32{1, 3, 0.5, 2}}},
	{"ner", Options{Task: NER, NumLabels: 5, ClassWeights: []float32{1, 1, 2, 0.5, 3}}},
	{"qa", Options{Task: QA}},
	{"regression", Options{Task: Regression, NumLabels: 1}},
	{"custom-head", Options{Task: Classify, NumLabels: 2, HeadHidden: 16}},
}

// newModel builds a model with weights drawn from seed, kept alive until the test ends.
func newModel(t testing.TB, cfg *hf.BertConfig, opts Options, seed int64) *Model {
	t.Helper()
	ManualSeed(seed)
	m, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	keepAlive(t, m)
	return m
}

// keepAlive keeps x reachable until the test ends. Go views of tensor memory
// (GradSlice, FlatSlice) do not keep the tensor alive, and gotch frees tensors from
// finalizers: a test that reads a view after its last use of the model would read
// freed memory once the GC runs.
func keepAlive(t testing.TB, x any) { t.Cleanup(func() { runtime.KeepAlive(x) }) }

// randomBatch is B sequences of the given lengths padded to L, with random ids in the
// padding too (the mask alone must hide them), two segments, and labels for the task.
func randomBatch(r *rand.Rand, m *Model, L int, lens []int) *Batch {
	B := len(lens)
	b := &Batch{B: B, L: L, InputIDs: make([]int64, B*L), TokenTypeIDs: make([]int64, B*L), AttentionMask: make([]int64, B*L)}
	for i, n := range lens {
		for j := range L {
			b.InputIDs[i*L+j] = r.Int64N(int64(m.Config.VocabSize))
			if j < n {
				b.AttentionMask[i*L+j] = 1
				if j >= n/2 {
					b.TokenTypeIDs[i*L+j] = 1
				}
			}
		}
	}
	nl := int64(m.Opts.NumLabels)
	switch m.Opts.Task {
	case Classify:
		for range B {
			b.Labels = append(b.Labels, r.Int64N(nl))
		}
	case MultiLabel:
		for range B * int(nl) {
			b.Targets = append(b.Targets, float32(r.IntN(2)))
		}
	case Regression:
		for range B * int(nl) {
			b.Targets = append(b.Targets, 5*r.Float32())
		}
	case NER, MLM:
		b.Labels = make([]int64, B*L)
		for i, n := range lens {
			for j := range L {
				l := int64(IgnoreIndex)
				if j < n && r.IntN(3) > 0 { // a third of the real tokens are ignored too (mlm: unmasked)
					l = r.Int64N(nl)
				}
				b.Labels[i*L+j] = l
			}
		}
	case QA:
		b.Labels = make([]int64, 2*B)
		for i, n := range lens {
			s := r.Int64N(int64(n))
			b.Labels[i], b.Labels[B+i] = s, s+r.Int64N(int64(n)-s)
		}
	case Choice: // one example of B choices
		b.Choices, b.Labels = B, []int64{r.Int64N(int64(B))}
	case Embed: // pairs: each anchor's positive, among the second half's candidates
		for _, i := range r.Perm(B / 2) {
			b.Labels = append(b.Labels, int64(i))
		}
	}
	return b
}

// evalLoss is b's loss in evaluation mode.
func evalLoss(t testing.TB, m *Model, b *Batch) float64 {
	t.Helper()
	_, loss, err := m.Infer(b)
	if err != nil {
		t.Fatal(err)
	}
	return loss
}

// trainStep computes b's gradient (dropout on), clips it and takes one AdamW step.
func trainStep(t testing.TB, m *Model, opt Optimizer, b *Batch, lr float64) {
	t.Helper()
	m.Params.ZeroGrad()
	if _, err := m.Backward(b, 1); err != nil {
		t.Fatal(err)
	}
	m.Params.ClipGradNorm(1)
	opt.Update(lr)
}

// firstDiff is the first index where a and b differ bit for bit, or -1.
func firstDiff(a, b []float32) int {
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return i
		}
	}
	return -1
}

// decays says whether value i of the flat buffers takes weight decay.
func decays(ps *Params, i int) bool {
	for _, r := range ps.Decay {
		if int64(i) >= r[0] && int64(i) < r[1] {
			return true
		}
	}
	return false
}
