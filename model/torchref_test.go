package model

import (
	"encoding/json"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/hf"
)

// torchPython is a Python with torch, or "" (the test then skips, saying how to get one).
func torchPython(t *testing.T) string {
	t.Helper()
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import torch, numpy").Run(); err != nil {
		t.Skipf("%s cannot import torch and numpy (%v): apt-get install -y python3-torch runs this check", py, err)
	}
	return py
}

// randomize gives p uniform values in [-1, 1).
func randomize(m *Model, r *rand.Rand, p *Param) {
	w := m.Params.FlatSlice()
	for i := p.Offset; i < p.Offset+p.Numel; i++ {
		w[i] = 2*r.Float32() - 1
	}
}

// Every family and head computes the logits of testdata/families/reference.py, a
// plain-torch forward written from transformers' modeling code, on the same weights
// (read from the model.safetensors bertnode saves) and padded inputs, within 1e-4. Also
// ALBERT with 2 groups of 2 inner layers, DistilBERT with sinusoidal positions and
// ELECTRA without a projection (embedding_size = hidden_size); the masked-LM heads of
// every family, decoder tied to the word embeddings (NomicBERT's
// with and without its biases; DeBERTa-v2's alone, make_debertav2.py's forward). MPNet's
// reference is make_mpnet.py's forward, NomicBERT's make_nomic_bert.py's:
// nomic-embed-text's kind, and with geglu, every bias and half of each head rotated,
// interleaved.
func TestFamiliesMatchTorchReference(t *testing.T) {
	lockThread(t)
	py := torchPython(t)
	type run struct {
		name string
		m    *Model
		b    *Batch
		dir  string
	}
	var runs []run
	variants := map[string]func(c *hf.BertConfig){
		"bert": nil, "distilbert": nil, "roberta": nil, "albert": nil, "electra": nil, "mpnet": nil,
		"albert-groups":         func(c *hf.BertConfig) { c.NumHiddenGroups, c.InnerGroupNum = 2, 2 },
		"distilbert-sinusoidal": func(c *hf.BertConfig) { c.SinusoidalPosEmbds = true },
		"electra-noproj":        func(c *hf.BertConfig) { c.EmbeddingSize = c.HiddenSize },
		"nomic_bert":            nil,
		"deberta-v2":            nil,
		"nomic_bert-partial": func(c *hf.BertConfig) {
			c.HiddenAct, c.RotaryEmbFraction, c.RotaryEmbInterleaved = "geglu", 0.5, true
			c.QKVProjBias, c.MLPFc1Bias, c.MLPFc2Bias = true, true, true
		},
	}
	r := rand.New(rand.NewPCG(11, 12))
	for _, name := range slices.Sorted(maps.Keys(variants)) { // each model's seed is its index
		change := variants[name]
		mt, _, _ := strings.Cut(name, "-")
		if families[name] != nil { // deberta-v2's own hyphen
			mt = name
		}
		tasks := familyTasks
		if mt == "deberta-v2" { // its other heads are checked on fixtures (make_debertav2.py)
			tasks = nil
		}
		tasks = append(slices.Clip(tasks), Options{Task: MLM})
		for _, opts := range tasks {
			cfg := familyConfig(t, mt, 0.1)
			if change != nil {
				change(cfg)
			}
			m := newModel(t, cfg, opts, int64(len(runs)+1))
			if opts.Task == MLM && m.head.mlm.bias != nil { // it starts at zero: give it values to check
				randomize(m, r, m.head.mlm.bias)
			}
			b := randomBatch(r, m, 12, []int{12, 5, 9})
			pad := int64(cfg.PadTokenID)
			for i, id := range b.InputIDs { // padding carries the padding id, real tokens never
				if b.AttentionMask[i] == 0 {
					b.InputIDs[i] = pad
				} else if id == pad {
					b.InputIDs[i] = pad + 2
				}
			}
			dir := filepath.Join(t.TempDir(), name+"-"+string(opts.Task))
			if err := m.Save(dir, nil, SaveOptions{}); err != nil {
				t.Fatal(err)
			}
			rows := func(v []int64) [][]int64 {
				out := make([][]int64, b.B)
				for i := range out {
					out[i] = v[i*b.L : (i+1)*b.L]
				}
				return out
			}
			inputs, _ := json.Marshal(map[string]any{"task": opts.Task, "input_ids": rows(b.InputIDs),
				"attention_mask": rows(b.AttentionMask), "token_type_ids": rows(b.TokenTypeIDs)})
			if err := os.WriteFile(filepath.Join(dir, "inputs.json"), inputs, 0o644); err != nil {
				t.Fatal(err)
			}
			runs = append(runs, run{name + "/" + string(opts.Task), m, b, dir})
		}
	}
	args := []string{"testdata/families/reference.py"}
	for _, r := range runs {
		args = append(args, r.dir)
	}
	if out, err := exec.Command(py, args...).CombinedOutput(); err != nil {
		t.Fatalf("reference.py: %v\n%s", err, out)
	}
	for _, r := range runs {
		r.b.Labels = nil // as served: token heads packed too
		got, _, err := r.m.Infer(r.b)
		if err != nil {
			t.Fatal(err)
		}
		var want []float64
		if err := json.Unmarshal(readFile(t, filepath.Join(r.dir, "reference.json")), &want); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d logits, the reference %d", r.name, len(got), len(want))
		}
		var worst, scale float64
		for i := range got {
			if underPadding(r.m, r.b, len(got), i) {
				continue
			}
			worst = max(worst, math.Abs(float64(got[i])-want[i]))
			scale = max(scale, math.Abs(want[i]))
		}
		t.Logf("%s: max |diff| %.2g over logits up to %.2g", r.name, worst, scale)
		if worst > 1e-4 || scale < 0.1 {
			t.Errorf("%s: logits differ by %g (largest logit %g)", r.name, worst, scale)
		}
	}
}
