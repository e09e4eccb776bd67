package model

import (
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// relErr is ‖got − want‖ / ‖want‖.
func relErr(got, want []float32) float64 {
	var d, n float64
	for i := range want {
		d += float64(got[i]-want[i]) * float64(got[i]-want[i])
		n += float64(want[i]) * float64(want[i])
	}
	return math.Sqrt(d / n)
}

// attentionLogits runs b through the padded layers (Forward with attentions), the path
// the attention view takes, and returns the logits.
func attentionLogits(t *testing.T, m *Model, b *Batch) []float32 {
	t.Helper()
	var got []float32
	noGrad(func() {
		out, err := m.Forward(b, false, true)
		if err != nil {
			t.Fatal(err)
		}
		got = hostFloats(out.Logits)
		out.Logits.MustDrop()
		for _, a := range out.Attentions {
			a.MustDrop()
		}
	})
	return got
}

func TestQuantizeInt8(t *testing.T) {
	lockThread(t)
	if _, err := quantEngine(); err != nil {
		t.Fatal(err) // Debian's libtorch 1.13 and 2.6 have onednn: its absence is a regression
	}
	for _, mt := range modelTypes {
		for _, opts := range familyTasks {
			if opts.Task == Choice {
				continue // classify's head with one output, whose few logits make the error a poor measure; int8 is the encoder's
			}
			cfg := familyConfig(t, mt, 0.1)
			cfg.InitializerRange = 0.02 // BERT's: activations of a trained model's scale
			m := newModel(t, cfg, opts, 3)
			b := randomBatch(rand.New(rand.NewPCG(5, 6)), m, 24, []int{24, 3, 17, 9})
			b.Labels, b.Targets = nil, nil
			packed, _, err := m.Infer(b)
			if err != nil {
				t.Fatal(err)
			}
			padded := attentionLogits(t, m, b)
			if err := m.Quantize(); err != nil {
				t.Fatalf("%s %s: %v", mt, opts.Task, err)
			}
			if err := m.Quantize(); err != nil { // a second call changes nothing
				t.Fatal(err)
			}
			qPacked, _, err := m.Infer(b)
			if err != nil {
				t.Fatal(err)
			}
			qPadded := attentionLogits(t, m, b)
			for _, c := range []struct {
				path      string
				got, want []float32
			}{{"packed", qPacked, packed}, {"padded", qPadded, padded}} {
				// The int8 layers ran (the logits moved) and stayed close to float32's.
				var n int
				for i := range c.want {
					if underPadding(m, b, len(c.want), i) {
						c.got[i], c.want[i] = 0, 0
					}
				}
				e := relErr(c.got, c.want)
				for i := range c.want {
					if c.got[i] != c.want[i] {
						n++
					}
				}
				if n == 0 || e > 0.01 {
					t.Errorf("%s %s %s: int8 logits differ from float32's in %d of %d, relative error %.4f (want some, under 0.01; 0.0002-0.0005 seen)",
						mt, opts.Task, c.path, n, len(c.want), e)
				}
			}
			if _, err := m.Backward(randomBatch(rand.New(rand.NewPCG(5, 6)), m, 24, []int{24, 3}), 1); err == nil ||
				!strings.Contains(err.Error(), "int8") {
				t.Errorf("%s %s: training a quantized model: %v, want an error", mt, opts.Task, err)
			}
		}
	}
}

// The packed weights are shared by concurrent forwards, as the server's instances do.
func TestQuantizedConcurrentForwards(t *testing.T) {
	lockThread(t)
	cfg := smallConfig(0.1)
	cfg.InitializerRange = 0.02
	m := newModel(t, cfg, Options{Task: Classify, NumLabels: 3}, 3)
	if err := m.Quantize(); err != nil {
		t.Fatal(err)
	}
	batches := make([]*Batch, 4)
	want := make([][]float32, len(batches))
	for i := range batches {
		r := rand.New(rand.NewPCG(uint64(i), 1))
		batches[i] = randomBatch(r, m, 8+8*i, []int{8 + 8*i, 5, 3 + i})
		batches[i].Labels = nil
		var err error
		if want[i], _, err = m.Infer(batches[i]); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan string, len(batches))
	for i := range batches {
		wg.Go(func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			for range 50 {
				got, _, err := m.Infer(batches[i])
				if err != nil {
					errs <- err.Error()
					return
				}
				if d := firstDiff(got, want[i]); d >= 0 {
					errs <- "batch " + string(rune('0'+i)) + ": logits differ from the same batch run alone"
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
