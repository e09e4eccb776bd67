package model

import (
	"errors"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// The gradient watch on real backward passes: every trainable parameter's hook runs
// exactly once per backward; the prefixes it reports grow and end at TrainEnd; what a
// reported prefix held when it was reported is what the gradient holds at the end (it
// was final); and the gradient is bit-identical to a backward without the watch. A
// second backward into the same gradient (accumulation) is watched afresh.
func TestGradWatch(t *testing.T) {
	for _, c := range []struct {
		name string
		opts Options
	}{
		{"classify", Options{Task: Classify, NumLabels: 3}},
		{"ner-frozen", Options{Task: NER, NumLabels: 4, Freeze: Freeze{Embeddings: true, Layers: 1}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			lockThread(t)
			m := newModel(t, smallConfig(0.1), c.opts, 2)
			ps := m.Params
			// The buffer starts with the head and the trainable part ends with the
			// lowest trainable parameters: the order backward finishes them in.
			head := map[Task]string{Classify: "classifier.", NER: "classifier."}[c.opts.Task]
			last := ps.List()[0]
			for _, p := range ps.List() {
				if p.Trainable {
					last = p
				}
			}
			wantLast := "bert.embeddings.word_embeddings.weight"
			if c.opts.Freeze.Embeddings {
				wantLast = "bert.encoder.layer.1.attention.self.query.weight"
			}
			if !strings.HasPrefix(ps.List()[0].Name, head) || last.Name != wantLast {
				t.Fatalf("buffer starts with %s, trainable part ends with %s", ps.List()[0].Name, last.Name)
			}
			r := rand.New(rand.NewPCG(4, 4))
			batches := []*Batch{randomBatch(r, m, 12, []int{12, 7, 3}), randomBatch(r, m, 12, []int{5, 12})}
			backward := func(i int) error {
				ManualSeed(int64(10 + i))
				_, err := m.Backward(batches[i], 0.5)
				return err
			}
			ps.ZeroGrad()
			for i := range batches {
				if err := backward(i); err != nil {
					t.Fatal(err)
				}
			}
			want := slices.Clone(ps.GradSlice())

			w, err := ps.Watch()
			if err != nil {
				t.Fatal(err)
			}
			ps.ZeroGrad()
			for i := range batches {
				var mu sync.Mutex
				var ns []int64
				var seen [][]float32
				err := w.Run(func() error { return backward(i) }, func(n int64) {
					mu.Lock()
					defer mu.Unlock()
					ns = append(ns, n)
					seen = append(seen, slices.Clone(ps.GradSlice()[:n]))
				})
				if err != nil {
					t.Fatal(err)
				}
				for k, cnt := range w.Counts() {
					if cnt != 1 {
						t.Fatalf("backward %d: parameter %d's hook ran %d times", i, k, cnt)
					}
				}
				if len(ns) == 0 || ns[len(ns)-1] != ps.TrainEnd {
					t.Fatalf("backward %d: prefixes %v, want the last to be TrainEnd %d", i, ns, ps.TrainEnd)
				}
				for k, n := range ns {
					if k > 0 && n <= ns[k-1] {
						t.Fatalf("backward %d: prefixes %v do not grow", i, ns)
					}
					if j := firstDiff(seen[k], ps.GradSlice()[:n]); j >= 0 {
						t.Fatalf("backward %d: value %d of the prefix %d reported final changed afterwards", i, j, n)
					}
				}
				t.Logf("backward %d: %d reports, first at %d of %d", i, len(ns), ns[0], ps.TrainEnd)
			}
			if i := firstDiff(ps.GradSlice(), want); i >= 0 {
				t.Fatalf("gradient with the watch differs at %d", i)
			}
		})
	}
}

// TestGradWatchAfterALibtorchError: a backward that fails with a libtorch error (a
// panic, which the caller's Catch answers) leaves the watch disarmed and its waiter
// gone, and the next Run reports the prefixes as usual.
func TestGradWatchAfterALibtorchError(t *testing.T) {
	lockThread(t)
	m := newModel(t, smallConfig(0), Options{Task: Classify, NumLabels: 3}, 2)
	ps := m.Params
	w, err := ps.Watch()
	if err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	a, b := ts.MustZeros([]int64{2, 3}, gotch.Float, gotch.CPU), ts.MustZeros([]int64{4, 5}, gotch.Float, gotch.CPU)
	defer a.MustDrop()
	defer b.MustDrop()
	err = func() (err error) {
		defer Catch(&err)
		return w.Run(func() error { a.MustMm(b, false); return nil }, func(int64) { t.Error("a failed backward reported a prefix") })
	}()
	var te *TorchError
	if !errors.As(err, &te) {
		t.Fatalf("Run: %v, want the libtorch error", err)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines after the failed Run, %d before: its waiter is left", n, before)
	}
	r := rand.New(rand.NewPCG(4, 4))
	batch := randomBatch(r, m, 12, []int{12, 7, 3})
	var last int64
	ps.ZeroGrad()
	if err := w.Run(func() error { _, err := m.Backward(batch, 1); return err }, func(n int64) { last = n }); err != nil {
		t.Fatal(err)
	}
	if last != ps.TrainEnd {
		t.Fatalf("the next Run's last prefix %d, want TrainEnd %d", last, ps.TrainEnd)
	}
}
