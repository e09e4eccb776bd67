package train

import (
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/safetensors"
)

const bertFixture = "../model/testdata/families/fixtures/bert-classify"

// sentenceTransformersDir writes the BERT fixture as sentence-transformers saves a
// model such as all-MiniLM-L6-v2: a BertModel's config and bare tensor names (its
// pooler kept, its classifier gone), modules.json with Normalize, 1_Pooling/config.json.
func sentenceTransformersDir(t *testing.T, pooling string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"vocab.txt", "tokenizer_config.json", "special_tokens_map.json"} {
		b, err := os.ReadFile(filepath.Join(bertFixture, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, f), b, 0o644)
	}
	var cfg map[string]any
	b, _ := os.ReadFile(filepath.Join(bertFixture, model.ConfigFile))
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["architectures"] = []string{"BertModel"}
	delete(cfg, "problem_type")
	b, _ = json.Marshal(cfg)
	os.WriteFile(filepath.Join(dir, model.ConfigFile), b, 0o644)

	f, err := safetensors.Open(filepath.Join(bertFixture, model.SafetensorsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var bare []safetensors.Tensor
	for _, st := range f.Tensors {
		if strings.HasPrefix(st.Name, "bert.") {
			st.Name = strings.TrimPrefix(st.Name, "bert.")
			bare = append(bare, st)
		}
	}
	if err := safetensors.Save(filepath.Join(dir, model.SafetensorsFile), bare, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "1_Pooling"), 0o755)
	os.WriteFile(filepath.Join(dir, model.STPoolingFile), []byte(`{"word_embedding_dimension": 16, "pooling_mode_cls_token": false,
  "pooling_mode_mean_tokens": false, "pooling_mode_max_tokens": false, "pooling_mode_mean_sqrt_len_tokens": false,
  "pooling_mode_weightedmean_tokens": false, "pooling_mode_lasttoken": false, "include_prompt": true, "pooling_mode_`+pooling+`": true}`), 0o644)
	os.WriteFile(filepath.Join(dir, model.STModulesFile), []byte(`[
  {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
  {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
  {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]`), 0o644)
	return dir
}

// A sentence-transformers checkpoint loads as an embedding model with its pooling and
// normalization, and embeds the fixture's texts as make_embeddings.py's reference pools
// them, scaled to unit length.
func TestSentenceTransformersCheckpointEmbedsAsReference(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var exp struct {
		Texts []string `json:"texts"`
	}
	var want map[string][]float64
	for name, v := range map[string]any{"expected.json": &exp, "embeddings.json": &want} {
		b, err := os.ReadFile(filepath.Join(bertFixture, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ st, mode string }{{"mean_tokens", model.PoolMean}, {"cls_token", model.PoolCLS}} {
		s := Defaults()
		s.Model, s.MaxLength = sentenceTransformersDir(t, c.st), 64
		tr, err := ForEval(s, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if tr.Spec.Task != string(model.Embed) || tr.Spec.Pooling != c.mode || !tr.Normalize {
			t.Fatalf("%s: loads as %s, pooling %q, normalize %v", c.st, tr.Spec.Task, tr.Spec.Pooling, tr.Normalize)
		}
		got, err := tr.Embed(exp.Texts, tr.Normalize)
		if err != nil {
			t.Fatal(err)
		}
		h := tr.Model.Config.HiddenSize
		for i, e := range got {
			ref := make([]float32, h)
			for k := range ref {
				ref[k] = float32(want[c.mode][i*h+k])
			}
			Normalize(ref)
			for k := range ref {
				if math.Abs(float64(e.Embedding[k]-ref[k])) > 1e-5 {
					t.Fatalf("%s: text %d [%d] = %v, reference %v", c.mode, i, k, e.Embedding[k], ref[k])
				}
			}
		}
	}
}

// What an embedding model cannot do is refused by name: evaluation, training, a
// pooling bertnode does not run.
func TestEmbeddingModelRefusals(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	s := Defaults()
	s.Model, s.MaxLength, s.Eval = sentenceTransformersDir(t, "mean_tokens"), 64, "eval.csv"
	if _, err := ForEval(s, io.Discard); err == nil || !strings.Contains(err.Error(), "no labels to evaluate") {
		t.Errorf("eval of an embedding model: %v", err)
	}
	s.Eval = ""
	s.Model = sentenceTransformersDir(t, "weightedmean_tokens")
	if _, err := ForEval(s, io.Discard); err == nil || !strings.Contains(err.Error(), `"weightedmean_tokens"`) {
		t.Errorf("weighted mean pooling: %v", err)
	}
	s.Model, s.Pooling = bertFixture, "median"
	if _, err := ForEval(s, io.Discard); err == nil || !strings.Contains(err.Error(), `pooling "median"`) {
		t.Errorf("pooling median: %v", err)
	}
	tr := Defaults()
	tr.Train, tr.Pooling = "train.csv", "mean"
	if err := tr.Validate(); err == nil || !strings.Contains(err.Error(), "pooling") {
		t.Errorf("training with a pooling: %v", err)
	}
	tr.Pooling, tr.Task = "", string(model.Embed)
	if err := tr.Validate(); err == nil || !strings.Contains(err.Error(), "does not train") {
		t.Errorf("training task embed: %v", err)
	}
	s.Pooling = ""
	cls, err := ForEval(s, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cls.Embed([]string{"a"}, false); err == nil || !strings.Contains(err.Error(), "--pooling") {
		t.Errorf("Embed on a classifier: %v", err)
	}
}
