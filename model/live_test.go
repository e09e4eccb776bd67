package model

import (
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/sugarme/gotch/ts"
)

// settledLive is the live tensor count once finalizers of earlier tests have run.
func settledLive() int {
	n := -1
	for range 50 {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
		m := ts.LiveTensors()
		if m == n {
			break
		}
		n = m
	}
	return n
}

// TestHotPathsDropTheirTensors: the training step (forward, backward, clip, AdamW) and
// inference (packed and padded, attentions) drop every tensor they make. bertnode's
// gotch has no per-tensor GC ballast (tools/gotchadapt/ballast.go), so a tensor left to
// its finalizer here would hold C memory until the GC happened to run.
func TestHotPathsDropTheirTensors(t *testing.T) {
	lockThread(t)
	for _, tc := range taskCases {
		t.Run(tc.name, func(t *testing.T) {
			m := newModel(t, smallConfig(0.1), tc.opts, 1)
			r := rand.New(rand.NewPCG(3, 4))
			padded := randomBatch(r, m, 16, []int{16, 5, 9})
			full := randomBatch(r, m, 8, []int{8, 8})
			opt := NewAdamW(m.Params, 0.01)
			round := func() {
				m.Params.ZeroGrad()
				if _, err := m.Backward(padded, 1); err != nil {
					t.Fatal(err)
				}
				opt.ClipAndUpdate(1e-3, 1)
				unlabelled := *padded // a token head's packed path: no loss to read the padding
				unlabelled.Labels = nil
				for _, b := range []*Batch{padded, full, &unlabelled} {
					if _, _, err := m.Infer(b); err != nil {
						t.Fatal(err)
					}
				}
				one := &Batch{B: 1, L: 5, InputIDs: padded.InputIDs[16:21], TokenTypeIDs: padded.TokenTypeIDs[16:21], AttentionMask: padded.AttentionMask[16:21]}
				if _, err := m.Attentions(one); err != nil {
					t.Fatal(err)
				}
			}
			round() // first calls may make what later ones reuse
			before := settledLive()
			for range 3 {
				round()
			}
			if after := ts.LiveTensors(); after != before {
				t.Fatalf("%d tensors live after 3 rounds, %d before: the hot paths leave tensors to the finalizer", after, before)
			}
		})
	}
}
