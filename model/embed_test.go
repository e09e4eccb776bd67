package model

import (
	"encoding/json"
	"fmt"
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
	for _, mt := range []string{"bert", "modernbert", "mpnet", "nomic_bert"} {
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
		for _, name := range tensorNames(t, filepath.Join(out, SafetensorsFile)) {
			if strings.HasPrefix(name, m.fam.base) || strings.HasPrefix(name, "classifier") || strings.HasPrefix(name, "head.") {
				t.Errorf("saved %s: a bare base model's names have no prefix and no head", name)
			}
		}
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
	for _, c := range []struct {
		opts Options
		want string
	}{
		{Options{Task: Classify, NumLabels: 2, Matryoshka: Matryoshka{Dims: []int{64}}}, "this model's task is classify"},
		{Options{Task: Embed, Matryoshka: Matryoshka{Dims: []int{64, 129}}}, "129 is wider than the model's 128"},
		{Options{Task: Embed, Matryoshka: Matryoshka{Dims: []int{64, 0}}}, "0 is not a positive width"},
		{Options{Task: Embed, Matryoshka: Matryoshka{Dims: []int{64, 32, 64}}}, "64 appears twice"},
		{Options{Task: Embed, Matryoshka: Matryoshka{Dims: []int{64, 32}, Weights: []float64{1}}}, "1 weights for 2"},
		{Options{Task: Embed, Matryoshka: Matryoshka{Dims: []int{64, 32}, Weights: []float64{1, -1}}}, "-1 (for 32 dimensions)"},
		{Options{Task: Embed, Matryoshka: Matryoshka{Dims: []int{64}, Weights: []float64{math.NaN()}}}, "NaN"},
		{Options{Task: Embed, Matryoshka: Matryoshka{Weights: []float64{1}}}, "without matryoshka_dims"},
	} {
		if _, err := New(cfg, c.opts); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error with %q", c.opts.Matryoshka, err, c.want)
		}
	}
	m, err := New(cfg, Options{Task: Embed, Matryoshka: Matryoshka{Dims: []int{32, 128, 64}, Weights: []float64{3, 1, 2}}})
	if err != nil {
		t.Fatal(err)
	}
	if mt := m.Opts.Matryoshka; !slices.Equal(mt.Dims, []int{128, 64, 32}) || !slices.Equal(mt.Weights, []float64{1, 2, 3}) {
		t.Errorf("matryoshka %+v: want the widths largest first with their weights", mt)
	}
	if m, err = New(cfg, Options{Task: Embed}); err != nil {
		t.Fatal(err)
	}
	if m.Opts.Pooling != PoolMean || m.Opts.NumLabels != cfg.HiddenSize {
		t.Errorf("pooling %q, outputs %d; want mean, %d", m.Opts.Pooling, m.Opts.NumLabels, cfg.HiddenSize)
	}
	b := &Batch{B: 1, L: 3, InputIDs: []int64{1, 2, 3}, AttentionMask: []int64{1, 1, 1}, Labels: []int64{0}}
	if _, err := m.Forward(b, true, false); err == nil || !strings.Contains(err.Error(), "one per anchor") {
		t.Errorf("a label for an odd batch: %v", err)
	}
	b = &Batch{B: 2, L: 3, InputIDs: []int64{1, 2, 3, 4, 5, 6}, AttentionMask: []int64{1, 1, 1, 1, 1, 1}, Labels: []int64{1}}
	if _, err := m.Forward(b, true, false); err == nil || !strings.Contains(err.Error(), "not a candidate") {
		t.Errorf("a label past the candidates: %v", err)
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

// The embedding model's training loss is MultipleNegativesRankingLoss: each anchor's
// cross-entropy over its scaled cosine similarities to every candidate, computed here
// from the vectors inference gives, for each pooling and family kind; with Matryoshka
// dimensions, the weighted sum of that loss over the vectors cut to each width.
func TestRankingLossFromTheVectors(t *testing.T) {
	for _, c := range []struct {
		mt, pooling string
		triplets    bool // anchors, positives and hard negatives, a third each
		matryoshka  Matryoshka
	}{
		{"bert", PoolMean, false, Matryoshka{}}, {"bert", PoolCLS, true, Matryoshka{}},
		{"modernbert", PoolMax, false, Matryoshka{}}, {"deberta-v2", PoolMean, true, Matryoshka{}},
		{"bert", PoolMean, false, Matryoshka{Dims: []int{8, 32, 3}, Weights: []float64{0.5, 1, 2}}},
		{"deberta-v2", PoolCLS, true, Matryoshka{Dims: []int{16, 4}}},
	} {
		t.Run(fmt.Sprintf("%s/%s/triplets=%v/matryoshka=%v", c.mt, c.pooling, c.triplets, c.matryoshka.Dims), func(t *testing.T) {
			lockThread(t)
			m := newModel(t, familyConfig(t, c.mt, 0), Options{Task: Embed, Pooling: c.pooling, Matryoshka: c.matryoshka}, 5)
			r := rand.New(rand.NewPCG(5, 6))
			b := randomBatch(r, m, 10, []int{10, 4, 7, 3, 9, 5})
			if c.triplets {
				b = randomBatch(r, m, 10, []int{10, 4, 7, 3, 9, 5, 8, 6, 2})
				b.Labels = nil
				for _, i := range r.Perm(3) {
					b.Labels = append(b.Labels, int64(i))
				}
			}
			labels := b.Labels
			b.Labels = nil
			vecs, _, err := m.Infer(b)
			if err != nil {
				t.Fatal(err)
			}
			b.Labels = labels
			got := evalLoss(t, m, b)
			h := m.Config.HiddenSize
			want := rankingLossOf(vecs, h, h, labels)
			if mt := c.matryoshka; mt.On() {
				want = 0
				for i, d := range mt.Dims {
					w := 1.0
					if mt.Weights != nil {
						w = mt.Weights[i]
					}
					want += w * rankingLossOf(vecs, h, d, labels)
				}
			}
			if math.Abs(got-want) > 1e-4*max(1, want) {
				t.Fatalf("loss %v, from the vectors %v", got, want)
			}
		})
	}
}

// rankingLossOf is MultipleNegativesRankingLoss computed in float64 from vecs, rows of
// width h of which each anchor (one per label) and candidate keeps its first dims.
func rankingLossOf(vecs []float32, h, dims int, labels []int64) float64 {
	n, rows := len(labels), len(vecs)/h
	unit := func(i int) []float64 {
		v := make([]float64, dims)
		var s float64
		for k := range v {
			v[k] = float64(vecs[i*h+k])
			s += v[k] * v[k]
		}
		for k := range v {
			v[k] /= math.Sqrt(s)
		}
		return v
	}
	var loss float64
	for i := range n {
		a := unit(i)
		scores := make([]float64, rows-n)
		for j := range scores {
			p := unit(n + j)
			for k := range a {
				scores[j] += rankingScale * a[k] * p[k]
			}
		}
		mx := slices.Max(scores)
		var z float64
		for _, s := range scores {
			z += math.Exp(s - mx)
		}
		loss += (mx + math.Log(z) - scores[labels[i]]) / float64(n)
	}
	return loss
}

// Backward through the ranking loss gives the loss's derivative (central differences).
func TestEmbedGradientMatchesFiniteDifferences(t *testing.T) {
	lockThread(t)
	m := newModel(t, smallConfig(0), Options{Task: Embed, Pooling: PoolMean}, 3)
	r := rand.New(rand.NewPCG(3, 4))
	b := randomBatch(r, m, 12, []int{12, 5, 9, 3, 7, 11})
	checkGradient(t, m, b, bertProbes, 12)
	b = randomBatch(r, m, 12, []int{12, 5, 9, 3, 7, 11}) // three triplets: hard negatives
	b.Labels = []int64{0, 1, 2}
	checkGradient(t, m, b, bertProbes, 12)
	m = newModel(t, smallConfig(0), Options{Task: Embed, Pooling: PoolMean, Matryoshka: Matryoshka{Dims: []int{32, 8, 2}, Weights: []float64{1, 0.5, 3}}}, 3)
	checkGradient(t, m, randomBatch(r, m, 12, []int{12, 5, 9, 3, 7, 11}), bertProbes, 12)
}
