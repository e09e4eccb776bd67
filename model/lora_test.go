package model

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/hf"
	"github.com/bertnode/bertnode/safetensors"
)

var testLoRA = LoRA{R: 4, Alpha: 8, Dropout: 0.1}

// loraPair is a base model and the same model with LoRA adapters: the base's weights,
// the adapters freshly initialised.
func loraPair(t *testing.T, cfg *hf.BertConfig, opts Options, l LoRA) (base, lora *Model) {
	t.Helper()
	base = newModel(t, cfg, opts, 1)
	opts.LoRA = l
	lora = newModel(t, cfg, opts, 2)
	copyWeights(t, lora, base)
	return base, lora
}

// copyWeights copies every parameter of src into dst's of the same name.
func copyWeights(t *testing.T, dst, src *Model) {
	t.Helper()
	found := map[string]hostTensor{}
	for _, p := range src.Params.List() {
		if dst.Params.Get(p.Name) == nil {
			t.Fatalf("%s: not in the destination model", p.Name)
		}
		found[p.Name] = hostTensor{shape: p.Shape, data: slices.Clone(src.Params.FlatSlice()[p.Offset : p.Offset+p.Numel])}
	}
	dst.copyIn(found)
}

func inferLogits(t *testing.T, m *Model, b *Batch) []float32 {
	t.Helper()
	logits, _, err := m.Infer(b)
	if err != nil {
		t.Fatal(err)
	}
	return logits
}

// With B = 0, as PEFT initialises it, the adapted model is the base model, bit for bit,
// in every family.
func TestLoRAZeroBIsBase(t *testing.T) {
	for _, mt := range []string{"bert", "roberta", "distilbert", "electra", "albert", "deberta-v2", "modernbert", "mpnet", "nomic_bert"} {
		t.Run(mt, func(t *testing.T) {
			lockThread(t)
			base, lora := loraPair(t, familyConfig(t, mt, 0.1), Options{Task: Classify, NumLabels: 3}, testLoRA)
			if len(lora.lora.wrapped) == 0 {
				t.Fatal("no layer wrapped")
			}
			b := randomBatch(rand.New(rand.NewPCG(1, 2)), base, 12, []int{12, 7, 9})
			if i := firstDiff(inferLogits(t, lora, b), inferLogits(t, base, b)); i >= 0 {
				t.Fatalf("logits differ from the base model's at %d", i)
			}
		})
	}
}

// setAdapters gives every A and B random values, as after training.
func setAdapters(m *Model, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 3))
	flat := m.Params.FlatSlice()
	for _, l := range m.lora.wrapped {
		for _, p := range []*Param{l.lora.a, l.lora.b} {
			for i := p.Offset; i < p.Offset+p.Numel; i++ {
				flat[i] = float32(r.NormFloat64() * 0.3)
			}
		}
	}
}

// The adapted forward is W + (alpha/r)·B·A: the base model with that added to each
// targeted weight by hand (in float64, here) gives the same logits within float32
// rounding, and so does MergeLoRA.
func TestLoRAForwardIsMergedWeights(t *testing.T) {
	for _, mt := range []string{"bert", "distilbert", "modernbert"} {
		t.Run(mt, func(t *testing.T) {
			lockThread(t)
			l := testLoRA
			l.TargetModules = map[string][]string{"bert": {"query", "value", "output.dense"}, "distilbert": {"q_lin", "lin2"}, "modernbert": {"Wqkv", "Wo"}}[mt]
			base, lora := loraPair(t, familyConfig(t, mt, 0.1), Options{Task: Classify, NumLabels: 3}, l)
			setAdapters(lora, 1)
			scale := l.Alpha / float64(l.R)
			lf, bf := lora.Params.FlatSlice(), base.Params.FlatSlice()
			for _, ln := range lora.lora.wrapped {
				a, b, w := ln.lora.a, ln.lora.b, base.Params.Get(ln.w.Name)
				out, in, r := w.Shape[0], w.Shape[1], int64(l.R)
				for o := range out {
					for i := range in {
						var s float64
						for k := range r {
							s += float64(lf[b.Offset+o*r+k]) * float64(lf[a.Offset+k*in+i])
						}
						bf[w.Offset+o*in+i] += float32(scale * s)
					}
				}
			}
			b := randomBatch(rand.New(rand.NewPCG(1, 2)), base, 12, []int{12, 7, 9})
			want := inferLogits(t, base, b)
			got := inferLogits(t, lora, b)
			if e := relErr(got, want); e > 1e-5 {
				t.Fatalf("adapted forward vs W + scale·B·A by hand: relative error %.3g", e)
			}
			lora.MergeLoRA()
			if e := relErr(inferLogits(t, lora, b), want); e > 1e-5 {
				t.Fatalf("merged vs by hand: relative error %.3g", e)
			}
			if _, err := lora.Backward(b, 1); err == nil || !strings.Contains(err.Error(), "merged") {
				t.Fatalf("training a merged model: %v", err)
			}
		})
	}
}

// Only A, B and the head train: the flat gradient is theirs alone, A and B take weight
// decay, and the base model's weights stay bit-identical through training.
func TestLoRATrainsOnlyAdaptersAndHead(t *testing.T) {
	lockThread(t)
	cfg := smallConfig(0.1)
	_, m := loraPair(t, cfg, Options{Task: Classify, NumLabels: 2}, testLoRA)
	ps := m.Params
	h, r := int64(cfg.HiddenSize), int64(testLoRA.R)
	// query and value in each of 2 layers: A [r, h], B [h, r]; classifier [2, h] + [2].
	want := int64(cfg.NumHiddenLayers)*2*(r*h+h*r) + 2*h + 2
	if _, trainable := ps.Count(); trainable != want {
		t.Fatalf("%d trainable parameters, want %d", trainable, want)
	}
	trainable := func(n string) bool { return isLoRAParam(n) || strings.HasPrefix(n, "classifier.") }
	var lora int
	for _, p := range ps.List() {
		if p.Trainable != trainable(p.Name) {
			t.Errorf("%s: trainable %v", p.Name, p.Trainable)
		}
		if isLoRAParam(p.Name) {
			lora++
			if !decays(ps, int(p.Offset)) {
				t.Errorf("%s: no weight decay", p.Name)
			}
		}
	}
	if lora != 2*2*cfg.NumHiddenLayers {
		t.Fatalf("%d LoRA parameters", lora)
	}
	// PEFT's init: A Kaiming-uniform, U(-1/√in, 1/√in); B zeros.
	flat := ps.FlatSlice()
	for _, l := range m.lora.wrapped {
		a := flat[l.lora.a.Offset : l.lora.a.Offset+l.lora.a.Numel]
		bound := 1 / math.Sqrt(float64(h))
		lo, hi := slices.Min(a), slices.Max(a)
		if float64(lo) < -bound || float64(hi) > bound || float64(hi-lo) < bound {
			t.Errorf("%s in [%v, %v], want U(±%v)", l.lora.a.Name, lo, hi, bound)
		}
		if slices.ContainsFunc(flat[l.lora.b.Offset:l.lora.b.Offset+l.lora.b.Numel], func(v float32) bool { return v != 0 }) {
			t.Errorf("%s: not zeros", l.lora.b.Name)
		}
	}
	moved := movedByTraining(t, m)
	for _, p := range ps.List() {
		if moved[p.Name] != p.Trainable {
			t.Errorf("%s: moved %v after 4 steps", p.Name, moved[p.Name])
		}
	}
}

// The adapter directory has PEFT's file names, key names and config fields; loaded onto
// the base model it gives the same logits bit for bit; the merged checkpoint loads as a
// plain model with MergeLoRA's logits bit for bit, the adapted forward's within
// rounding.
func TestLoRASaveLoad(t *testing.T) {
	lockThread(t)
	cfg := smallConfig(0.1)
	opts := Options{Task: Classify, NumLabels: 2}
	base, m := loraPair(t, cfg, opts, testLoRA)
	opt := NewAdamW(m.Params, 0.01)
	rng := rand.New(rand.NewPCG(1, 1))
	for range 3 {
		trainStep(t, m, opt, randomBatch(rng, m, 16, []int{16, 9, 12}), 1e-2)
	}
	dir := t.TempDir()
	if err := m.SaveAdapter(dir, []string{"ham", "spam"}, "my/base"); err != nil {
		t.Fatal(err)
	}

	keys := tensorNames(t, filepath.Join(dir, AdapterFile))
	wantKeys := []string{
		"base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight",
		"base_model.model.bert.encoder.layer.0.attention.self.query.lora_B.weight",
		"base_model.model.bert.encoder.layer.0.attention.self.value.lora_A.weight",
		"base_model.model.bert.encoder.layer.0.attention.self.value.lora_B.weight",
		"base_model.model.bert.encoder.layer.1.attention.self.query.lora_A.weight",
		"base_model.model.bert.encoder.layer.1.attention.self.query.lora_B.weight",
		"base_model.model.bert.encoder.layer.1.attention.self.value.lora_A.weight",
		"base_model.model.bert.encoder.layer.1.attention.self.value.lora_B.weight",
		"base_model.model.classifier.bias",
		"base_model.model.classifier.weight",
	}
	if !slices.Equal(keys, wantKeys) {
		t.Fatalf("adapter keys:\n%s\nwant\n%s", strings.Join(keys, "\n"), strings.Join(wantKeys, "\n"))
	}
	raw, err := os.ReadFile(filepath.Join(dir, AdapterConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var js map[string]any
	if err := json.Unmarshal(raw, &js); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{
		"peft_type": "LORA", "task_type": "SEQ_CLS", "base_model_name_or_path": "my/base", "r": 4.0, "lora_alpha": 8.0,
		"lora_dropout": 0.1, "bias": "none", "fan_in_fan_out": false, "inference_mode": true, "init_lora_weights": true,
		"use_rslora": false, "use_dora": false,
	} {
		if js[k] != v {
			t.Errorf("adapter_config.json %s: %v, want %v", k, js[k], v)
		}
	}
	for k, v := range map[string][]any{"target_modules": {"query", "value"}, "modules_to_save": {"classifier"}} {
		if got, _ := js[k].([]any); !slices.Equal(got, v) {
			t.Errorf("adapter_config.json %s: %v, want %v", k, js[k], v)
		}
	}

	ac, l, err := ReadAdapterConfig(dir)
	if err != nil || ac.Base != "my/base" {
		t.Fatalf("ReadAdapterConfig: %+v, %v", ac, err)
	}
	opts.LoRA = l
	loaded := newModel(t, cfg, opts, 3)
	copyWeights(t, loaded, base)
	if _, err := loaded.LoadAdapter(dir); err != nil {
		t.Fatal(err)
	}
	b := randomBatch(rand.New(rand.NewPCG(1, 2)), m, 12, []int{12, 7, 9})
	want := inferLogits(t, m, b)
	if i := firstDiff(inferLogits(t, loaded, b), want); i >= 0 {
		t.Fatalf("reloaded adapter: logits differ at %d", i)
	}

	merged := t.TempDir()
	if err := m.Save(merged, []string{"ham", "spam"}, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	plain, rep, err := Pretrained(merged, hf.Options{}, Options{Task: Classify, NumLabels: 2})
	if err != nil {
		t.Fatal(err)
	}
	keepAlive(t, plain)
	if len(rep.Initialized) > 0 {
		t.Fatalf("merged checkpoint lacks %v", rep.Initialized)
	}
	got := inferLogits(t, plain, b)
	if e := relErr(got, want); e > 1e-5 {
		t.Fatalf("merged checkpoint vs adapted forward: relative error %.3g", e)
	}
	loaded.MergeLoRA()
	if i := firstDiff(got, inferLogits(t, loaded, b)); i >= 0 {
		t.Fatalf("merged checkpoint vs MergeLoRA: logits differ at %d", i)
	}
}

// Bad configurations are refused with the field named.
func TestLoRABadInput(t *testing.T) {
	lockThread(t)
	for _, c := range []struct {
		field string
		opts  Options
	}{
		{"lora.r", Options{Task: Classify, NumLabels: 2, LoRA: LoRA{Alpha: 16}}},
		{"lora.r", Options{Task: Classify, NumLabels: 2, LoRA: LoRA{R: -1, Alpha: 16}}},
		{"lora.alpha", Options{Task: Classify, NumLabels: 2, LoRA: LoRA{R: 8}}},
		{"lora.dropout", Options{Task: Classify, NumLabels: 2, LoRA: LoRA{R: 8, Alpha: 8, Dropout: 1}}},
		{"lora.target_modules", Options{Task: Classify, NumLabels: 2, LoRA: LoRA{R: 8, Alpha: 8, TargetModules: []string{"query", "qkv"}}}},
		{"lora: task mlm", Options{Task: MLM, LoRA: testLoRA}},
		{"lora: head_hidden", Options{Task: Classify, NumLabels: 2, HeadHidden: 8, LoRA: testLoRA}},
		{"lora: freeze", Options{Task: Classify, NumLabels: 2, Freeze: Freeze{Base: true}, LoRA: testLoRA}},
	} {
		_, err := New(smallConfig(0), c.opts)
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: got %v", c.field, err)
		}
	}
	// An unknown target names the layers there are.
	_, err := New(smallConfig(0), Options{Task: Classify, NumLabels: 2, LoRA: LoRA{R: 8, Alpha: 8, TargetModules: []string{"qkv"}}})
	if err == nil || !strings.Contains(err.Error(), "dense, key, query, value") {
		t.Errorf("unknown target: %v", err)
	}

	for _, c := range []struct{ field, json string }{
		{"peft_type", `{"peft_type": "IA3", "r": 8, "lora_alpha": 8, "target_modules": ["query"]}`},
		{"target_modules", `{"peft_type": "LORA", "r": 8, "lora_alpha": 8, "target_modules": ".*query"}`},
		{"use_dora", `{"peft_type": "LORA", "r": 8, "lora_alpha": 8, "target_modules": ["query"], "use_dora": true}`},
		{"bias", `{"peft_type": "LORA", "r": 8, "lora_alpha": 8, "target_modules": ["query"], "bias": "all"}`},
		{"lora.r", `{"peft_type": "LORA", "r": 0, "lora_alpha": 8, "target_modules": ["query"]}`},
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, AdapterConfigFile), []byte(c.json), 0o644); err != nil {
			t.Fatal(err)
		}
		_, _, err := ReadAdapterConfig(dir)
		if err == nil || !strings.Contains(err.Error(), AdapterConfigFile+": "+c.field) {
			t.Errorf("%s: got %v", c.field, err)
		}
	}
}

// In every family the adapter round-trips bit for bit, and modules_to_save names the
// head's top-level modules; an embedding model's keys are the bare base model's.
func TestLoRAAdapterFamilies(t *testing.T) {
	for _, c := range []struct {
		modelType string
		task      Task
		modules   []string
		key       string // one adapter key
	}{
		{"bert", Classify, []string{"classifier"}, "base_model.model.bert.encoder.layer.1.attention.self.value.lora_B.weight"},
		{"bert", Embed, nil, "base_model.model.encoder.layer.1.attention.self.value.lora_B.weight"},
		{"distilbert", Classify, []string{"classifier", "pre_classifier"}, "base_model.model.distilbert.transformer.layer.0.attention.q_lin.lora_A.weight"},
		{"roberta", NER, []string{"classifier"}, "base_model.model.roberta.encoder.layer.0.attention.self.query.lora_A.weight"},
		{"electra", Classify, []string{"classifier"}, "base_model.model.electra.encoder.layer.0.attention.self.query.lora_A.weight"},
		{"albert", QA, []string{"qa_outputs"}, "base_model.model.albert.encoder.albert_layer_groups.0.albert_layers.0.attention.query.lora_A.weight"},
		{"deberta-v2", Classify, []string{"classifier", "pooler"}, "base_model.model.deberta.encoder.layer.0.attention.self.query_proj.lora_A.weight"},
		{"modernbert", Classify, []string{"classifier", "head"}, "base_model.model.model.layers.0.attn.Wqkv.lora_A.weight"},
		{"mpnet", Choice, []string{"classifier"}, "base_model.model.mpnet.encoder.layer.0.attention.attn.q.lora_A.weight"},
		{"nomic_bert", Classify, []string{"classifier"}, "base_model.model.bert.encoder.layers.1.attn.Wqkv.lora_B.weight"},
		{"nomic_bert", Embed, nil, "base_model.model.encoder.layers.0.attn.Wqkv.lora_A.weight"},
	} {
		t.Run(c.modelType+"-"+string(c.task), func(t *testing.T) {
			lockThread(t)
			cfg := familyConfig(t, c.modelType, 0.1)
			opts := Options{Task: c.task, NumLabels: 3}
			base, m := loraPair(t, cfg, opts, testLoRA)
			setAdapters(m, 2)
			dir := t.TempDir()
			if err := m.SaveAdapter(dir, nil, "base"); err != nil {
				t.Fatal(err)
			}
			ac, l, err := ReadAdapterConfig(dir)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ac.ModulesToSave, c.modules) {
				t.Errorf("modules_to_save %v, want %v", ac.ModulesToSave, c.modules)
			}
			f, err := safetensors.Open(filepath.Join(dir, AdapterFile))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Tensor(c.key); err != nil {
				t.Errorf("adapter file: %v", err)
			}
			f.Close()
			opts.LoRA = l
			loaded := newModel(t, cfg, opts, 3)
			copyWeights(t, loaded, base)
			if _, err := loaded.LoadAdapter(dir); err != nil {
				t.Fatal(err)
			}
			b := randomBatch(rand.New(rand.NewPCG(1, 2)), m, 12, []int{12, 7, 9, 5})
			if i := firstDiff(inferLogits(t, loaded, b), inferLogits(t, m, b)); i >= 0 {
				t.Fatalf("reloaded adapter: logits differ at %d", i)
			}
		})
	}
}
