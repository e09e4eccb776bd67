package model

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/hf"
	"github.com/bertnode/bertnode/safetensors"
)

// fixtureBatch is the batch of a fixture's expected.json.
func fixtureBatch(t *testing.T, dir string) *Batch {
	t.Helper()
	var exp expectedOutput
	if err := json.Unmarshal(readFile(t, filepath.Join(dir, "expected.json")), &exp); err != nil {
		t.Fatal(err)
	}
	return &Batch{B: len(exp.InputIDs), L: len(exp.InputIDs[0]), InputIDs: flatten(exp.InputIDs),
		AttentionMask: flatten(exp.AttentionMask), TokenTypeIDs: flatten(exp.TokenTypeIDs)}
}

// Every family's classify fixture loaded as an embedding model (its head left out) pools
// its last hidden states as make_embeddings.py computes from this directory's PyTorch
// forwards and sentence-transformers' pooling, for each pooling; the packed inference
// path computes them (mean and max from every position, cls from the first alone).
func TestEmbeddingsMatchReference(t *testing.T) {
	for _, mt := range modelTypes {
		dir := filepath.Join(fixtureDir, mt+"-classify")
		var want map[string][]float64
		if err := json.Unmarshal(readFile(t, filepath.Join(dir, "embeddings.json")), &want); err != nil {
			t.Fatal(err)
		}
		for _, mode := range []string{PoolCLS, PoolMean, PoolMax} {
			t.Run(mt+"/"+mode, func(t *testing.T) {
				lockThread(t)
				m, rep, err := Pretrained(dir, hf.Options{Offline: true}, Options{Task: Embed, Pooling: mode})
				if err != nil {
					t.Fatal(err)
				}
				if rep.Loaded != len(m.Params.List()) || len(rep.Initialized) > 0 {
					t.Fatalf("loaded %d of %d parameters; fresh: %v", rep.Loaded, len(m.Params.List()), rep.Initialized)
				}
				if !slices.ContainsFunc(rep.Ignored, func(n string) bool { return strings.HasPrefix(n, "classifier") }) {
					t.Errorf("the classifier is not among the ignored tensors %v", rep.Ignored)
				}
				b := fixtureBatch(t, dir)
				got, _, err := m.Infer(b)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != b.B*m.Config.HiddenSize || len(got) != len(want[mode]) {
					t.Fatalf("%d values for %d x %d, reference %d", len(got), b.B, m.Config.HiddenSize, len(want[mode]))
				}
				// Keeping the attentions runs the padded layers, as training does.
				out, err := m.Forward(b, false, true)
				if err != nil {
					t.Fatal(err)
				}
				padded := hostFloats(out.Logits)
				out.Logits.MustDrop()
				for _, a := range out.Attentions {
					a.MustDrop()
				}
				for path, got := range map[string][]float32{"packed": got, "padded": padded} {
					var worst float64
					for i := range got {
						worst = max(worst, math.Abs(float64(got[i])-want[mode][i]))
					}
					t.Logf("%s: max |diff| %.2g", path, worst)
					if worst > 1e-5 {
						t.Errorf("%s: embeddings differ from the reference's by %g", path, worst)
					}
				}
			})
		}
	}
}

// An embedding model saves as the bare base model with sentence-transformers' files, and
// loads back from them to the same vectors.
func TestEmbeddingModelSaveLoad(t *testing.T) {
	lockThread(t)
	for _, mt := range []string{"bert", "modernbert"} {
		dir := filepath.Join(fixtureDir, mt+"-classify")
		m, _, err := Pretrained(dir, hf.Options{Offline: true}, Options{Task: Embed, Pooling: PoolMax})
		if err != nil {
			t.Fatal(err)
		}
		b := fixtureBatch(t, dir)
		before, _, err := m.Infer(b)
		if err != nil {
			t.Fatal(err)
		}
		out := t.TempDir()
		if err := m.Save(out, nil, SaveOptions{MaxLength: 64, Normalize: true}); err != nil {
			t.Fatal(err)
		}
		cfg, err := hf.ReadConfig(filepath.Join(out, ConfigFile))
		if err != nil {
			t.Fatal(err)
		}
		if want := cfg.ArchitecturePrefix() + "Model"; !slices.Equal(cfg.Architectures, []string{want}) {
			t.Errorf("architectures %v, want [%s]", cfg.Architectures, want)
		}
		f, err := safetensors.Open(filepath.Join(out, SafetensorsFile))
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range f.Tensors {
			if strings.HasPrefix(st.Name, m.fam.base) || strings.HasPrefix(st.Name, "classifier") || strings.HasPrefix(st.Name, "head.") {
				t.Errorf("saved %s: a bare base model's names have no prefix and no head", st.Name)
			}
		}
		f.Close()
		var cfgST struct {
			MaxLen int `json:"max_seq_length"`
		}
		if err := json.Unmarshal(readFile(t, filepath.Join(out, "sentence_bert_config.json")), &cfgST); err != nil || cfgST.MaxLen != 64 {
			t.Errorf("sentence_bert_config.json: max_seq_length %d, %v; want 64", cfgST.MaxLen, err)
		}
		mode, norm, err := ReadPooling(out)
		if err != nil || mode != PoolMax || !norm {
			t.Fatalf("ReadPooling: %q, normalize %v, %v; want max, true", mode, norm, err)
		}
		back, rep, err := Pretrained(out, hf.Options{Offline: true}, Options{Task: Embed, Pooling: mode})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Ignored) > 0 || rep.Loaded != len(back.Params.List()) {
			t.Errorf("reloaded %d of %d, ignored %v", rep.Loaded, len(back.Params.List()), rep.Ignored)
		}
		after, _, err := back.Infer(b)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(before, after) {
			t.Errorf("%s: vectors changed through save and load", mt)
		}
	}
}

// A checkpoint tensor that names a base-model module the model lacks is still an error
// for an embedding model; only what lies outside the base model is left out.
func TestEmbeddingModelRefusesStrangeEncoderTensors(t *testing.T) {
	lockThread(t)
	src := filepath.Join(fixtureDir, "bert-classify")
	dir := t.TempDir()
	for _, f := range []string{ConfigFile} {
		os.WriteFile(filepath.Join(dir, f), readFile(t, filepath.Join(src, f)), 0o644)
	}
	theirs, err := safetensors.Open(filepath.Join(src, SafetensorsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer theirs.Close()
	tensors := slices.Clone(theirs.Tensors)
	odd := tensors[0]
	odd.Name = "encoder.layer.9.output.dense.weight" // bare, as a base model's; no layer 9
	if err := safetensors.Save(filepath.Join(dir, SafetensorsFile), append(tensors, odd), nil); err != nil {
		t.Fatal(err)
	}
	_, _, err = Pretrained(dir, hf.Options{Offline: true}, Options{Task: Embed})
	if err == nil || !strings.Contains(err.Error(), "encoder.layer.9.output.dense.weight") {
		t.Fatalf("err = %v, want the unexpected encoder tensor named", err)
	}
}

func TestEmbeddingModelOptions(t *testing.T) {
	lockThread(t)
	cfg, err := hf.Preset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg, Options{Task: Classify, NumLabels: 2, Pooling: PoolMean}); err == nil || !strings.Contains(err.Error(), "pooling") {
		t.Errorf("a classifier with a pooling: %v", err)
	}
	if _, err := New(cfg, Options{Task: Embed, Pooling: "sum"}); err == nil || !strings.Contains(err.Error(), `"sum"`) {
		t.Errorf("pooling sum: %v", err)
	}
	m, err := New(cfg, Options{Task: Embed})
	if err != nil {
		t.Fatal(err)
	}
	if m.Opts.Pooling != PoolMean || m.Opts.NumLabels != cfg.HiddenSize {
		t.Errorf("pooling %q, outputs %d; want mean, %d", m.Opts.Pooling, m.Opts.NumLabels, cfg.HiddenSize)
	}
	b := &Batch{B: 1, L: 3, InputIDs: []int64{1, 2, 3}, AttentionMask: []int64{1, 1, 1}, Labels: []int64{0}}
	if _, err := m.Forward(b, true, false); err == nil || !strings.Contains(err.Error(), "no loss") {
		t.Errorf("labels for an embedding model: %v", err)
	}
}

func TestReadPooling(t *testing.T) {
	write := func(dir, name, body string) {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const modules = `[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},
		{"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"}%s]`
	for _, c := range []struct {
		name, pooling, extra string
		mode                 string
		norm                 bool
		err                  string // "" for none
	}{
		{"cls", `{"word_embedding_dimension":8,"pooling_mode_cls_token":true}`, "", PoolCLS, false, ""},
		{"mean normalized", `{"pooling_mode_mean_tokens":true}`,
			`,{"idx":2,"name":"2","path":"2_Normalize","type":"sentence_transformers.models.Normalize"}`, PoolMean, true, ""},
		{"two modes", `{"pooling_mode_cls_token":true,"pooling_mode_max_tokens":true}`, "", "", false, "want exactly one"},
		{"lasttoken", `{"pooling_mode_lasttoken":true}`, "", "", false, `"lasttoken"`},
		{"dense", `{"pooling_mode_mean_tokens":true}`,
			`,{"idx":2,"name":"2","path":"2_Dense","type":"sentence_transformers.models.Dense"}`, "", false, "2_Dense"},
		{"bad json", `{"pooling_mode_mean_tokens":`, "", "", false, "1_Pooling/config.json"},
	} {
		dir := t.TempDir()
		write(dir, STPoolingFile, c.pooling)
		write(dir, STModulesFile, strings.Replace(modules, "%s", c.extra, 1))
		mode, norm, err := ReadPooling(dir)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || mode != c.mode || norm != c.norm {
			t.Errorf("%s: %q, %v, %v; want %q, %v", c.name, mode, norm, err, c.mode, c.norm)
		}
	}
	if mode, _, err := ReadPooling(t.TempDir()); mode != "" || err != nil {
		t.Errorf("no pooling file: %q, %v", mode, err)
	}
}
