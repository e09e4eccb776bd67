package model

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
)

// Layer 0's attention is recomputed on the host from the parameters (embeddings,
// LayerNorm, query and key projections, scaled softmax): this pins the
// [layer][head][from][to] indexing and that padding neither shows nor changes anything.
func TestAttentionsMatchHandComputedFirstLayer(t *testing.T) {
	lockThread(t)
	m := newModel(t, smallConfig(0.1), Options{Task: Classify, NumLabels: 2}, 3)
	r := rand.New(rand.NewPCG(3, 4))
	const n, L = 9, 16
	padded := randomBatch(r, m, L, []int{n})
	padded.Labels = nil
	alone := &Batch{B: 1, L: n, InputIDs: padded.InputIDs[:n], TokenTypeIDs: padded.TokenTypeIDs[:n], AttentionMask: padded.AttentionMask[:n]}

	got, err := m.Attentions(padded)
	if err != nil {
		t.Fatal(err)
	}
	c := m.Config
	if len(got) != c.NumHiddenLayers || len(got[0]) != c.NumAttentionHeads || len(got[0][0]) != n || len(got[0][0][0]) != n {
		t.Fatalf("shape [%d][%d][%d][%d], want [%d][%d][%d][%d]", len(got), len(got[0]), len(got[0][0]), len(got[0][0][0]),
			c.NumHiddenLayers, c.NumAttentionHeads, n, n)
	}
	ref, err := m.Attentions(alone)
	if err != nil {
		t.Fatal(err)
	}
	want := firstLayerAttention(m, alone)
	for l := range got {
		for h := range got[l] {
			for i := range got[l][h] {
				var sum float64
				for j, v := range got[l][h][i] {
					sum += float64(v)
					if d := math.Abs(float64(v - ref[l][h][i][j])); d > 1e-5 {
						t.Fatalf("layer %d head %d [%d][%d]: %v padded, %v alone", l, h, i, j, v, ref[l][h][i][j])
					}
					if l == 0 && math.Abs(float64(v)-want[h][i][j]) > 1e-4 {
						t.Fatalf("layer 0 head %d [%d][%d]: %v, hand-computed %v", h, i, j, v, want[h][i][j])
					}
				}
				if math.Abs(sum-1) > 1e-5 {
					t.Fatalf("layer %d head %d row %d sums to %v", l, h, i, sum)
				}
			}
		}
	}
}

// firstLayerAttention computes layer 0's attention probabilities [head][from][to] in
// float64 from the host copy of the weights.
func firstLayerAttention(m *Model, b *Batch) [][][]float64 {
	c, flat := m.Config, m.Params.FlatSlice()
	w := func(name string) []float32 {
		p := m.Params.Get(name)
		return flat[p.Offset : p.Offset+p.Numel]
	}
	H, n := c.HiddenSize, b.L
	word, pos, typ := w("bert.embeddings.word_embeddings.weight"), w("bert.embeddings.position_embeddings.weight"), w("bert.embeddings.token_type_embeddings.weight")
	g, beta := w("bert.embeddings.LayerNorm.weight"), w("bert.embeddings.LayerNorm.bias")
	project := func(x []float64, name string) []float64 {
		W, bias := w(name+".weight"), w(name+".bias")
		out := make([]float64, H)
		for o := range out {
			out[o] = float64(bias[o])
			for i, v := range x {
				out[o] += float64(W[o*H+i]) * v
			}
		}
		return out
	}
	q, k := make([][]float64, n), make([][]float64, n)
	for j := range n {
		x := make([]float64, H)
		var mean, vari float64
		for d := range x {
			x[d] = float64(word[int(b.InputIDs[j])*H+d]) + float64(pos[j*H+d]) + float64(typ[int(b.TokenTypeIDs[j])*H+d])
			mean += x[d] / float64(H)
		}
		for _, v := range x {
			vari += (v - mean) * (v - mean) / float64(H)
		}
		for d := range x {
			x[d] = (x[d]-mean)/math.Sqrt(vari+c.LayerNormEps)*float64(g[d]) + float64(beta[d])
		}
		q[j] = project(x, "bert.encoder.layer.0.attention.self.query")
		k[j] = project(x, "bert.encoder.layer.0.attention.self.key")
	}
	hd := c.HeadSize()
	out := make([][][]float64, c.NumAttentionHeads)
	for h := range out {
		out[h] = make([][]float64, n)
		for i := range n {
			row := make([]float64, n)
			var z float64
			for j := range n {
				var s float64
				for d := h * hd; d < (h+1)*hd; d++ {
					s += q[i][d] * k[j][d]
				}
				row[j] = math.Exp(s / math.Sqrt(float64(hd)))
				z += row[j]
			}
			for j := range row {
				row[j] /= z
			}
			out[h][i] = row
		}
	}
	return out
}

func TestAttentionsRejectBatchesAndLeftPadding(t *testing.T) {
	lockThread(t)
	m := newModel(t, smallConfig(0), Options{Task: Classify, NumLabels: 2}, 1)
	r := rand.New(rand.NewPCG(1, 1))
	two := randomBatch(r, m, 8, []int{8, 5})
	two.Labels = nil
	if _, err := m.Attentions(two); err == nil || !strings.Contains(err.Error(), "one sequence") {
		t.Errorf("batch of 2: %v", err)
	}
	left := &Batch{B: 1, L: 4, InputIDs: []int64{0, 5, 6, 7}, AttentionMask: []int64{0, 1, 1, 1}}
	if _, err := m.Attentions(left); err == nil || !strings.Contains(err.Error(), "right") {
		t.Errorf("left padding: %v", err)
	}
}

// On CUDA the attentions match the CPU's, in fp32 and under bf16 autocast, whose
// half-precision probabilities come back as float32.
func TestCUDAAttentionsMatchCPU(t *testing.T) {
	dev := needCUDA(t)
	lockThread(t)
	cfg := smallConfig(0)
	opts := Options{Task: Classify, NumLabels: 2}
	cpu := newModel(t, cfg, opts, 5)
	dir := t.TempDir()
	if err := cpu.Save(dir, nil, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	b := randomBatch(rand.New(rand.NewPCG(5, 6)), cpu, 12, []int{12})
	b.Labels = nil
	want, err := cpu.Attentions(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		autocast string
		tol      float64
	}{{"", 1e-4}, {"bf16", 3e-2}} {
		o := opts
		o.Device, o.Autocast = dev, c.autocast
		gpu := newModel(t, cfg, o, 6)
		if _, err := gpu.LoadWeights(filepath.Join(dir, SafetensorsFile)); err != nil {
			t.Fatal(err)
		}
		got, err := gpu.Attentions(b)
		if err != nil {
			t.Fatalf("autocast %q: %v", c.autocast, err)
		}
		worst := 0.0
		for l := range want {
			for h := range want[l] {
				for i := range want[l][h] {
					for j, v := range want[l][h][i] {
						worst = max(worst, math.Abs(float64(got[l][h][i][j]-v)))
					}
				}
			}
		}
		t.Logf("autocast %q: attention differs from the CPU's by up to %.2g", c.autocast, worst)
		if worst > c.tol {
			t.Errorf("autocast %q: attention differs from the CPU's by up to %g", c.autocast, worst)
		}
	}
}
