package model

import (
	"bytes"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// A sequence head's last layer computes the first token alone (layer.fwd's first); asking
// for the attentions computes it whole. In training mode, from the same seed, both give
// the same loss, logits and gradient up to rounding (a product or a sum over fewer rows
// can add up in another order), and leave the generator in the same state: every dropout
// drew its noise at the whole layer's shape.
func TestFirstTokenLastLayerMatchesWholeLayer(t *testing.T) {
	lockThread(t)
	for _, mt := range modelTypes {
		for _, opts := range familyTasks[:2] { // classify, multilabel: the sequence heads
			m := newModel(t, familyConfig(t, mt, 0.1), opts, 3)
			b := randomBatch(rand.New(rand.NewPCG(5, 6)), m, 16, []int{16, 9, 12})
			run := func(whole bool) (logits, grad []float32, loss float32, rng []byte) {
				ManualSeed(10)
				m.Params.ZeroGrad()
				out, err := m.Forward(b, true, whole)
				if err != nil {
					t.Fatal(err)
				}
				if whole != (len(out.Attentions) == m.Config.NumHiddenLayers) {
					t.Fatalf("%s %s: %d attentions for whole=%v", mt, opts.Task, len(out.Attentions), whole)
				}
				for _, a := range out.Attentions {
					a.MustDrop()
				}
				if rng, err = RNGState(m.Opts.Device); err != nil {
					t.Fatal(err)
				}
				logits = hostFloats(out.Logits)
				loss = float32(out.Loss.Float64Values()[0])
				out.Loss.MustBackward()
				out.Loss.MustDrop()
				out.Logits.MustDrop()
				return logits, slices.Clone(m.Params.GradSlice()), loss, rng
			}
			wl, wg, wloss, wrng := run(true)
			fl, fg, floss, frng := run(false)
			for i := range wl {
				if math.Abs(float64(fl[i]-wl[i])) > 1e-6*max(1, math.Abs(float64(wl[i]))) {
					t.Fatalf("%s %s: first-token logit %d is %v, the whole layer's %v", mt, opts.Task, i, fl[i], wl[i])
				}
			}
			if math.Abs(float64(floss-wloss)) > 1e-6*max(1, math.Abs(float64(wloss))) {
				t.Fatalf("%s %s: first-token loss %v, the whole layer's %v", mt, opts.Task, floss, wloss)
			}
			if !bytes.Equal(frng, wrng) {
				t.Fatalf("%s %s: the generator ends elsewhere than after the whole layer: dropout drew other noise", mt, opts.Task)
			}
			var worst, scale float64
			for i := range wg {
				worst = max(worst, math.Abs(float64(fg[i]-wg[i])))
				scale = max(scale, math.Abs(float64(wg[i])))
			}
			if worst > 1e-6*scale || scale == 0 {
				t.Fatalf("%s %s: gradients differ by %g (largest %g)", mt, opts.Task, worst, scale)
			}
		}
	}
}
