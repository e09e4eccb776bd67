package model

import (
	"encoding/json"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/hf"
	"github.com/bertnode/bertnode/safetensors"
	"github.com/bertnode/bertnode/tokenize"
)

// fixtureDir holds the checkpoints and logits testdata/families/make_fixtures.py makes
// with transformers.
const fixtureDir = "testdata/families/fixtures"

// expectedOutput is a fixture's expected.json.
type expectedOutput struct {
	Task          Task      `json:"task"`
	Texts         []any     `json:"texts"` // strings, or [question, context] pairs for qa
	InputIDs      [][]int64 `json:"input_ids"`
	AttentionMask [][]int64 `json:"attention_mask"`
	TokenTypeIDs  [][]int64 `json:"token_type_ids"`
	Shape         []int     `json:"shape"`
	Logits        []float64 `json:"logits"`
	// An mlm fixture keeps the logits at Positions ([text, token] pairs) alone, and the
	// loss of its labels.
	Positions [][2]int  `json:"positions"`
	Labels    [][]int64 `json:"labels"`
	Loss      float64   `json:"loss"`
}

// checkFixtureTokenizer encodes the fixture's texts with our tokenizer loaded from its
// directory (truncated to 64 tokens and padded, as make_fixtures.py asks transformers)
// and compares them with transformers' batch. withTypes false skips the token types:
// DistilBERT's and ModernBERT's tokenizers return none (the fixtures hold zeros), their
// models have none.
func checkFixtureTokenizer(t *testing.T, dir string, exp *expectedOutput, withTypes bool) {
	t.Helper()
	tok, err := tokenize.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(exp.Texts) != len(exp.InputIDs) {
		t.Fatalf("%d texts, %d rows of input ids", len(exp.Texts), len(exp.InputIDs))
	}
	for i, text := range exp.Texts {
		var e tokenize.Encoding
		switch x := text.(type) {
		case string:
			e, err = tok.Encode(x, 64)
		case []any:
			q, _ := x[0].(string)
			c, _ := x[1].(string)
			e, err = tok.EncodePair(q, c, 64)
		default:
			t.Fatalf("text %d: %T, want a string or a pair", i, text)
		}
		if err != nil {
			t.Fatal(err)
		}
		row := exp.InputIDs[i]
		ids, types, mask := make([]int64, len(row)), make([]int64, len(row)), make([]int64, len(row))
		for j := range row {
			ids[j] = int64(tok.PadID())
			if j < len(e.InputIDs) {
				ids[j], mask[j] = int64(e.InputIDs[j]), 1
				if withTypes {
					types[j] = int64(e.TokenTypeIDs[j])
				}
			}
		}
		if len(e.InputIDs) > len(row) || !slices.Equal(ids, row) || !slices.Equal(types, exp.TokenTypeIDs[i]) || !slices.Equal(mask, exp.AttentionMask[i]) {
			t.Errorf("text %d %q:\nours  %v types %v mask %v\ntheirs %v types %v mask %v", i, text, ids, types, mask, row, exp.TokenTypeIDs[i], exp.AttentionMask[i])
		}
	}
}

func flatten(rows [][]int64) []int64 {
	var out []int64
	for _, r := range rows {
		out = append(out, r...)
	}
	return out
}

// Checkpoints transformers made, of every family and head, with their tokenizers, which
// encode the texts to transformers' ids, load with all their weights,
// compute transformers' logits on real texts within 1e-4, and save back under the same
// names with the same values, which transformers then loads (make_fixtures.py --check
// runs transformers on them when BERTNODE_KEEP_OURS names a folder to keep them in).
func TestFamiliesMatchTransformersFixtures(t *testing.T) {
	lockThread(t)
	entries, err := os.ReadDir(fixtureDir)
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("no transformers fixtures in model/%s: make them with `python3 model/testdata/families/make_fixtures.py` (torch and transformers 5.x)", fixtureDir)
	} else if err != nil {
		t.Fatal(err)
	}
	keep := os.Getenv("BERTNODE_KEEP_OURS")
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(fixtureDir, e.Name())
		t.Run(e.Name(), func(t *testing.T) {
			ours := t.TempDir()
			if keep != "" {
				ours = filepath.Join(keep, e.Name())
			}
			checkFixture(t, dir, ours)
		})
		// XLM-RoBERTa and CamemBERT checkpoints are RoBERTa's under another model_type
		// and class name (transformers' classes are copies of RoBERTa's).
		task, ok := strings.CutPrefix(e.Name(), "roberta-")
		for _, kin := range [][2]string{{"xlm-roberta", "XLMRoberta"}, {"camembert", "Camembert"}} {
			if ok {
				t.Run(kin[0]+"-"+task, func(t *testing.T) { checkFixture(t, asKin(t, dir, kin[0], kin[1]), t.TempDir()) })
			}
		}
	}
}

// asKin copies a RoBERTa fixture with its config.json naming modelType and its classes
// arch... instead of Roberta....
func asKin(t *testing.T, dir, modelType, arch string) string {
	t.Helper()
	out := t.TempDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b := readFile(t, filepath.Join(dir, e.Name()))
		if e.Name() == ConfigFile {
			var c map[string]any
			if err := json.Unmarshal(b, &c); err != nil {
				t.Fatal(err)
			}
			archs, _ := c["architectures"].([]any)
			if c["model_type"] != "roberta" || len(archs) != 1 {
				t.Fatalf("%s: model_type %v, architectures %v", dir, c["model_type"], archs)
			}
			c["model_type"], c["architectures"] = modelType, []string{strings.Replace(archs[0].(string), "Roberta", arch, 1)}
			if b, err = json.Marshal(c); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(out, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// loadFixture reads the fixture in dir: transformers' expected output and batch, the
// config, and the model its checkpoint loads into (kept alive until the test ends).
func loadFixture(t *testing.T, dir string) (exp expectedOutput, cfg *hf.BertConfig, m *Model, rep *LoadReport, b *Batch) {
	t.Helper()
	if err := json.Unmarshal(readFile(t, filepath.Join(dir, "expected.json")), &exp); err != nil {
		t.Fatal(err)
	}
	cfg, err := hf.ReadConfig(filepath.Join(dir, ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	m, rep, err = Pretrained(dir, hf.Options{Offline: true}, Options{Task: exp.Task, NumLabels: cfg.NumLabels()})
	if err != nil {
		t.Fatal(err)
	}
	keepAlive(t, m)
	b = &Batch{B: len(exp.InputIDs), L: len(exp.InputIDs[0]), InputIDs: flatten(exp.InputIDs),
		AttentionMask: flatten(exp.AttentionMask), TokenTypeIDs: flatten(exp.TokenTypeIDs)}
	return exp, cfg, m, rep, b
}

// checkFixture loads the fixture in dir, compares its tokenizer's ids and its logits
// with transformers', and saves it into ours: the same model_type and classes, every
// tensor under the same name with the same bytes.
// rowsAt is the rows of logits [B, L, V] at positions, [len(positions), V].
func rowsAt[T any](logits []T, b *Batch, positions [][2]int) []T {
	v := len(logits) / (b.B * b.L)
	var out []T
	for _, p := range positions {
		i := (p[0]*b.L + p[1]) * v
		out = append(out, logits[i:i+v]...)
	}
	return out
}

func checkFixture(t *testing.T, dir, ours string) {
	lockThread(t)
	exp, cfg, m, rep, b := loadFixture(t, dir)
	if rep.Loaded != len(m.Params.List()) || len(rep.Initialized) > 0 {
		t.Fatalf("loaded %d of %d parameters; fresh: %v", rep.Loaded, len(m.Params.List()), rep.Initialized)
	}
	checkFixtureTokenizer(t, dir, &exp, cfg.TypeVocabSize > 0)
	got, _, err := m.Infer(b)
	if err != nil {
		t.Fatal(err)
	}
	if exp.Positions != nil {
		got = rowsAt(got, b, exp.Positions)
	}
	if len(got) != len(exp.Logits) {
		t.Fatalf("%d logits, transformers' %d (shape %v)", len(got), len(exp.Logits), exp.Shape)
	}
	var worst float64
	for i := range got {
		if exp.Positions == nil && underPadding(m, b, len(got), i) {
			continue
		}
		worst = max(worst, math.Abs(float64(got[i])-exp.Logits[i]))
	}
	t.Logf("max |diff| %.2g", worst)
	if worst > 1e-4 {
		t.Fatalf("logits differ from transformers' by %g", worst)
	}
	if exp.Labels != nil {
		b.Labels = flatten(exp.Labels)
		_, loss, err := m.Infer(b)
		if err != nil {
			t.Fatal(err)
		}
		b.Labels = nil
		if math.Abs(loss-exp.Loss) > 1e-5 {
			t.Fatalf("loss %v, transformers' %v", loss, exp.Loss)
		}
	}

	if err := m.Save(ours, cfg.Labels(), SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ours, "expected.json"), readFile(t, filepath.Join(dir, "expected.json")), 0o644); err != nil {
		t.Fatal(err)
	}
	var theirCfg, ourCfg struct {
		ModelType     string   `json:"model_type"`
		Architectures []string `json:"architectures"`
	}
	json.Unmarshal(readFile(t, filepath.Join(dir, ConfigFile)), &theirCfg)
	json.Unmarshal(readFile(t, filepath.Join(ours, ConfigFile)), &ourCfg)
	if ourCfg.ModelType != theirCfg.ModelType || !slices.Equal(ourCfg.Architectures, theirCfg.Architectures) {
		t.Errorf("saved as %s %v, transformers' %s %v", ourCfg.ModelType, ourCfg.Architectures, theirCfg.ModelType, theirCfg.Architectures)
	}
	theirs, err := safetensors.Open(filepath.Join(dir, SafetensorsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer theirs.Close()
	saved, err := safetensors.Open(filepath.Join(ours, SafetensorsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer saved.Close()
	for _, st := range theirs.Tensors {
		o, err := saved.Tensor(st.Name)
		switch {
		case err != nil && m.fam.ignorable(st.Name, m.Opts.Task):
		case err != nil:
			t.Errorf("transformers' %s is not in the checkpoint we save", st.Name)
		case st.DType != o.DType || !equalShape(st.Shape, o.Shape) || string(st.Data) != string(o.Data):
			t.Errorf("%s: saved as %s %v, transformers' %s %v, or other values", st.Name, o.DType, o.Shape, st.DType, st.Shape)
		}
	}
	if len(saved.Tensors) != rep.Loaded {
		t.Errorf("saved %d tensors, loaded %d", len(saved.Tensors), rep.Loaded)
	}
}
