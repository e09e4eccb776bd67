package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// AdamW with learning rate runs is torch's AdamW with one parameter group per run: each
// run's weights and moments are, bit for bit, those of an AdamW over the whole buffer at
// lr times the run's scale, on the CPU pass (Update and ClipAndUpdate) and the libtorch
// ops alike. The runs' edges fall inside work chunks and inside weight-decayed runs.
func TestAdamWLRScalesAreParameterGroups(t *testing.T) {
	lockThread(t)
	SetThreads(2)
	probe := fusedParams(t)
	n := probe.TrainEnd
	a, b := probe.Decay[0][0]+chunkLen/3, probe.Decay[0][1]-7 // inside a chunk and a decayed run
	scales := []LRScale{{0, a, 1}, {a, b, 0.5}, {b, n, 0.25}}
	const wd = 0.01
	if err := NewAdamW(probe, wd).SetLRScales([]LRScale{{0, a, 1}, {a + 1, n, 0.5}}); err == nil {
		t.Fatal("runs with a gap were taken")
	}
	type side struct {
		ps  *Params
		opt *AdamW
	}
	mk := func(groups []LRScale) side {
		ps := fusedParams(t)
		o := NewAdamW(ps, wd)
		if err := o.SetLRScales(groups); err != nil {
			t.Fatal(err)
		}
		return side{ps, o}
	}
	// For each path: the scaled optimizer, and one whole-buffer optimizer per scale.
	cpu, torch, clip := mk(scales), mk(scales), mk(scales)
	refs, trefs := map[float64]side{}, map[float64]side{}
	for _, r := range scales {
		refs[r.Scale], trefs[r.Scale] = mk(nil), mk(nil)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	grad := make([]float32, n)
	for step := 1; step <= 20; step++ {
		for i := range grad {
			grad[i] = float32(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(5)-3)))
		}
		all := []side{cpu, torch, clip}
		for _, s := range refs {
			all = append(all, s)
		}
		for _, s := range trefs {
			all = append(all, s)
		}
		for _, s := range all {
			copy(s.ps.GradSlice(), grad)
		}
		lr := 1e-3 * (1 + math.Sin(float64(step)))
		cpu.opt.Update(lr)
		clip.opt.ClipAndUpdate(lr, 1e9) // a bound no norm reaches: no clipping
		torch.opt.Step++
		torch.opt.updateTorch(lr)
		for s, ref := range refs {
			ref.opt.Update(lr * s)
			trefs[s].opt.Step++
			trefs[s].opt.updateTorch(lr * s)
		}
		for _, c := range []struct {
			name      string
			got       side
			reference map[float64]side
		}{{"cpu", cpu, refs}, {"clip", clip, refs}, {"torch", torch, trefs}} {
			gs := c.got.opt.State()
			for _, r := range scales {
				ref := c.reference[r.Scale]
				rs := ref.opt.State()
				lo, hi := r.Lo, r.Hi
				if i := firstDiff(c.got.ps.FlatSlice()[lo:hi], ref.ps.FlatSlice()[lo:hi]); i >= 0 {
					t.Fatalf("%s, step %d: weight %d of the run at scale %v differs from AdamW at lr x %v", c.name, step, lo+int64(i), r.Scale, r.Scale)
				}
				if i, j := firstDiff(gs.M[lo:hi], rs.M[lo:hi]), firstDiff(gs.V[lo:hi], rs.V[lo:hi]); i >= 0 || j >= 0 {
					t.Fatalf("%s, step %d: moments of the run at scale %v differ at %d, %d", c.name, step, r.Scale, i, j)
				}
			}
		}
	}
}

// LayerLRScales: the head at the full rate, each layer decay times the one above, the
// embeddings decay^(layers+1), each depth one run; ALBERT's shared layers are refused,
// as is a decay outside (0, 1].
func TestLayerLRScales(t *testing.T) {
	lockThread(t)
	for _, mt := range []string{"bert", "distilbert", "roberta", "electra", "modernbert", "deberta-v2", "mpnet", "nomic_bert"} {
		m := newModel(t, familyConfig(t, mt, 0), Options{Task: Classify, NumLabels: 2}, 1)
		runs, err := m.LayerLRScales(0.5)
		if err != nil {
			t.Fatal(err)
		}
		L := m.Config.NumHiddenLayers
		if len(runs) != L+2 || runs[0].Lo != 0 || runs[len(runs)-1].Hi != m.Params.TrainEnd {
			t.Fatalf("%s: runs %+v for %d layers", mt, runs, L)
		}
		for _, p := range m.Params.List() {
			if !p.Trainable {
				continue
			}
			want := 1.0 // the head, BERT's pooler and ModernBERT's final norm
			for i := range L {
				if strings.Contains(p.Name, fmt.Sprintf(".layer.%d.", i)) || strings.Contains(p.Name, fmt.Sprintf(".layers.%d.", i)) {
					want = math.Pow(0.5, float64(L-i))
				}
			}
			if strings.Contains(p.Name, "embeddings") || strings.Contains(p.Name, "deberta.encoder.LayerNorm") ||
				strings.Contains(p.Name, "relative_attention_bias") || strings.Contains(p.Name, "emb_ln") {
				want = math.Pow(0.5, float64(L+1))
			}
			for _, r := range runs {
				if p.Offset >= r.Lo && p.Offset < r.Hi && r.Scale != want {
					t.Errorf("%s: %s at scale %v, want %v", mt, p.Name, r.Scale, want)
				}
			}
		}
		if err := NewAdamW(m.Params, 0).SetLRScales(runs); err != nil {
			t.Fatalf("%s: %v", mt, err)
		}
	}
	albert := newModel(t, familyConfig(t, "albert", 0), Options{Task: Classify, NumLabels: 2}, 1)
	if _, err := albert.LayerLRScales(0.9); err == nil || !strings.Contains(err.Error(), "share their parameters") {
		t.Fatalf("ALBERT: %v", err)
	}
	m := newModel(t, smallConfig(0), Options{Task: Classify, NumLabels: 2}, 1)
	for _, d := range []float64{0, -0.5, 1.5, math.NaN()} {
		if _, err := m.LayerLRScales(d); err == nil || !strings.Contains(err.Error(), "layer_lr_decay") {
			t.Fatalf("decay %v: %v", d, err)
		}
	}
}
