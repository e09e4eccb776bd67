package train

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/safetensors"
	"github.com/bertnode/bertnode/shard"
)

const (
	bertFixture  = "../model/testdata/families/fixtures/bert-classify"
	mpnetFixture = "../model/testdata/families/fixtures/mpnet-classify"
	nomicFixture = "../model/testdata/families/fixtures/nomic_bert-classify"
)

// sentenceTransformersDir writes a fixture as sentence-transformers saves a model such as
// all-MiniLM-L6-v2 (BERT), all-mpnet-base-v2 (MPNet) or nomic-embed-text-v1.5 (NomicBERT):
// the config (architectures BertModel; MPNetForMaskedLM, as all-mpnet-base-v2's says;
// NomicBertModel) and the bare base model's
// tensor names, its pooler kept (MPNet's
// fixture has none: one is added, as MPNetModel has) and its classifier gone, MPNet's
// position_ids buffer as transformers before 4.31 saved it, the tokenizer files,
// modules.json with Normalize, 1_Pooling/config.json.
func sentenceTransformersDir(t *testing.T, fixture, pooling string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"} {
		b, err := os.ReadFile(filepath.Join(fixture, f))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, f), b, 0o644)
	}
	var cfg map[string]any
	b, _ := os.ReadFile(filepath.Join(fixture, model.ConfigFile))
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	arch := map[any]string{"bert": "BertModel", "mpnet": "MPNetForMaskedLM", "nomic_bert": "NomicBertModel"}[cfg["model_type"]]
	cfg["architectures"] = []string{arch}
	delete(cfg, "problem_type")
	b, _ = json.Marshal(cfg)
	os.WriteFile(filepath.Join(dir, model.ConfigFile), b, 0o644)

	f, err := safetensors.Open(filepath.Join(fixture, model.SafetensorsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	base := cfg["model_type"].(string) + "."
	if base == "nomic_bert." { // NomicBertForSequenceClassification's base model
		base = "bert."
	}
	var bare []safetensors.Tensor
	for _, st := range f.Tensors {
		if strings.HasPrefix(st.Name, base) {
			st.Name = strings.TrimPrefix(st.Name, base)
			bare = append(bare, st)
		}
	}
	if base == "mpnet." {
		h := int64(cfg["hidden_size"].(float64))
		n := int64(cfg["max_position_embeddings"].(float64))
		f32 := func(name string, shape ...int64) safetensors.Tensor { // zeros: a pooler an embedding model leaves
			n := int64(4)
			for _, d := range shape {
				n *= d
			}
			return safetensors.Tensor{Info: safetensors.Info{Name: name, DType: safetensors.F32, Shape: shape}, Data: make([]byte, n)}
		}
		ids := safetensors.Tensor{Info: safetensors.Info{Name: "embeddings.position_ids", DType: safetensors.I64, Shape: []int64{1, n}}, Data: make([]byte, 8*n)}
		for i := range n {
			binary.LittleEndian.PutUint64(ids.Data[8*i:], uint64(i))
		}
		bare = append(bare, f32("pooler.dense.weight", h, h), f32("pooler.dense.bias", h), ids)
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

// A sentence-transformers checkpoint (BERT's, MPNet's, NomicBERT's) loads as an embedding model with
// its pooling and normalization, whatever its config's architectures say, and embeds the
// fixture's texts as make_embeddings.py's reference pools them, scaled to unit length.
func TestSentenceTransformersCheckpointEmbedsAsReference(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, fixture := range []string{bertFixture, mpnetFixture, nomicFixture} {
		var exp struct {
			Texts []string `json:"texts"`
		}
		var want map[string][]float64
		for name, v := range map[string]any{"expected.json": &exp, "embeddings.json": &want} {
			b, err := os.ReadFile(filepath.Join(fixture, name))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, v); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range []struct{ st, mode string }{{"mean_tokens", model.PoolMean}, {"cls_token", model.PoolCLS}} {
			s := Defaults()
			s.Model, s.MaxLength = sentenceTransformersDir(t, fixture, c.st), 64
			tr, err := ForEval(s, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if tr.Spec.Task != string(model.Embed) || tr.Spec.Pooling != c.mode || !tr.Normalize {
				t.Fatalf("%s %s: loads as %s, pooling %q, normalize %v", fixture, c.st, tr.Spec.Task, tr.Spec.Pooling, tr.Normalize)
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
						t.Fatalf("%s %s: text %d [%d] = %v, reference %v", fixture, c.mode, i, k, e.Embedding[k], ref[k])
					}
				}
			}
		}
	}
}

// What an embedding model cannot do is refused by name: a pooling bertnode does not
// run, a head's options, labelled data, a pooling for another task.
func TestEmbeddingModelRefusals(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	s := Defaults()
	s.MaxLength = 64
	s.Model = sentenceTransformersDir(t, bertFixture, "weightedmean_tokens")
	if _, err := ForEval(s, io.Discard); err == nil || !strings.Contains(err.Error(), `"weightedmean_tokens"`) {
		t.Errorf("weighted mean pooling: %v", err)
	}
	s.Model, s.Pooling = bertFixture, "median"
	if _, err := ForEval(s, io.Discard); err == nil || !strings.Contains(err.Error(), `pooling "median"`) {
		t.Errorf("pooling median: %v", err)
	}
	for _, c := range []struct {
		change func(*Spec)
		want   string
	}{
		{func(s *Spec) { s.Task, s.Pooling = "classify", "mean" }, "pooling: \"mean\" is for embedding models"},
		{func(s *Spec) { s.Pooling = "sum" }, `pooling: pooling "sum"`},
		{func(s *Spec) { s.HeadHidden = 64 }, "no head"},
		{func(s *Spec) { s.ClassWeights = []float32{1, 2} }, "no head"},
		{func(s *Spec) { s.Freeze.Base = true }, "freeze.base"},
		{func(s *Spec) { s.Data.Format = "labeltext" }, "text pairs without labels"},
		{func(s *Spec) { s.Data.Format, s.Data.Label = "jsonl", "score" }, `label: "score"`},
	} {
		tr := Defaults()
		tr.Train, tr.Task = "pairs.jsonl", string(model.Embed)
		c.change(&tr)
		if err := tr.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.want, err, c.want)
		}
	}
	s.Pooling, s.MatryoshkaDims = "mean", []int{512} // wider than the fixture's vectors: a width only the model knows
	if _, err := ForEval(s, io.Discard); err == nil || !strings.Contains(err.Error(), "matryoshka_dims: 512 is wider than the model's") {
		t.Errorf("matryoshka_dims wider than the model: %v", err)
	}
	s.Pooling, s.MatryoshkaDims = "", nil
	cls, err := ForEval(s, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cls.Embed([]string{"a"}, false); err == nil || !strings.Contains(err.Error(), "--pooling") {
		t.Errorf("Embed on a classifier: %v", err)
	}
}

// vocabWords is n whole lowercase words of four letters or more from BERT's uncased
// vocabulary, from line skip on: each one token.
func vocabWords(t *testing.T, skip, n int) []string {
	t.Helper()
	b, err := os.ReadFile("../data/vocab/bert-base-uncased.vocab.txt")
	if err != nil {
		t.Fatal(err)
	}
	var words []string
	for _, w := range strings.Split(string(b), "\n")[skip:] {
		if len(w) >= 4 && strings.Trim(w, "abcdefghijklmnopqrstuvwxyz") == "" {
			words = append(words, w)
		}
		if len(words) == n {
			break
		}
	}
	return words
}

// translationPairs writes n pairs of four words: the text's words from one list, its
// pair's the corresponding words of another list, shuffled. Nothing but training
// relates the two lists, so retrieval starts near chance and must be learned. With
// negatives, each has a hard negative: its pair with one word swapped for another.
func translationPairs(t *testing.T, path string, n int, seed uint64, negatives ...bool) {
	t.Helper()
	words := vocabWords(t, 2000, 80)
	from, to := words[:40], words[40:]
	r := rand.New(rand.NewPCG(seed, 1))
	var out strings.Builder
	for range n {
		idx := r.Perm(len(from))[:4]
		var a, p []string
		for _, i := range idx {
			a = append(a, from[i])
		}
		for _, k := range r.Perm(4) {
			p = append(p, to[idx[k]])
		}
		rec := map[string]string{"text": strings.Join(a, " "), "text_pair": strings.Join(p, " ")}
		if len(negatives) > 0 && negatives[0] {
			neg := slices.Clone(p)
			for neg[0] == p[0] || slices.Contains(p, neg[0]) {
				neg[0] = to[r.IntN(len(to))]
			}
			rec["negative"] = strings.Join(neg, " ")
		}
		line, _ := json.Marshal(rec)
		out.Write(append(line, '\n'))
	}
	if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// trainPairs trains a tiny random-init BERT on translation pairs (with hard negatives
// when negatives), checking the prepared trainer with check when it is set, and returns
// the spec, the evaluation before training and the run's result.
func trainPairs(t *testing.T, negatives bool, edit func(*Spec), check func(*Trainer)) (Spec, EvalResult, *Result) {
	t.Helper()
	dir := t.TempDir()
	train, eval := filepath.Join(dir, "train.jsonl"), filepath.Join(dir, "eval.jsonl")
	translationPairs(t, train, 800, 1, negatives)
	translationPairs(t, eval, 100, 2, negatives)
	s := Defaults()
	s.Task, s.Train, s.Eval, s.Model = string(model.Embed), train, eval, "tiny"
	if negatives {
		s.Data = shard.Spec{Negative: "negative"}
	}
	s.Tokenizer, s.MaxLength, s.Threads = "../data/vocab/bert-base-uncased.vocab.txt", 16, 2
	s.BatchSize, s.Epochs, s.LR, s.Output = 32, 4, 2e-3, filepath.Join(dir, "run")
	if edit != nil {
		edit(&s)
	}
	tr, err := Prepare(s, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if check != nil {
		check(tr)
	}
	before, err := tr.Evaluate()
	if err != nil {
		t.Fatal(err)
	}
	res, err := tr.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s, before, res
}

// A tiny random-init BERT learns to embed each text near its pair with in-batch
// negatives: retrieval over the held-out pairs goes from near chance to near perfect;
// the saved model is a sentence-transformers model that loads for predict and serve
// with unit vectors and evaluates the same.
func TestEmbedTrainingLearnsPairs(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	s, before, res := trainPairs(t, false, nil, nil)
	eval := s.Eval
	t.Logf("mrr@10 %.3f -> %.3f, accuracy@1 %.3f -> %.3f, loss %.3f -> %.3f", before.Metrics["mrr_at_10"], res.Best.Metrics["mrr_at_10"],
		before.Metrics["accuracy_at_1"], res.Best.Metrics["accuracy_at_1"], before.Loss, res.Best.Loss)
	if before.Metrics["mrr_at_10"] > 0.4 || res.Best.Metrics["mrr_at_10"] < 0.8 || res.Best.Loss > before.Loss/2 {
		t.Fatalf("mrr@10 %.3f -> %.3f, loss %.3f -> %.3f: did not learn the pairs", before.Metrics["mrr_at_10"], res.Best.Metrics["mrr_at_10"], before.Loss, res.Best.Loss)
	}

	e := Defaults()
	e.Model, e.Eval, e.MaxLength, e.Threads = filepath.Join(s.Output, "best"), eval, 16, 2
	loaded, err := ForEval(e, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Spec.Task != string(model.Embed) || loaded.Spec.Pooling != model.PoolMean || !loaded.Normalize {
		t.Fatalf("saved model loads as %s, pooling %q, normalize %v", loaded.Spec.Task, loaded.Spec.Pooling, loaded.Normalize)
	}
	again, err := loaded.Evaluate()
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(again.Metrics["mrr_at_10"]-res.Best.Metrics["mrr_at_10"]) > 1e-9 {
		t.Errorf("the saved model's mrr@10 %v, the run's best %v", again.Metrics["mrr_at_10"], res.Best.Metrics["mrr_at_10"])
	}
}

// Trained with Matryoshka widths, the vectors' first 4 of 128 dimensions retrieve the
// held-out pairs nearly as well as the whole vectors, and far better than the first 4
// of a model trained on the whole vectors alone; evaluation reports each width, and
// the best checkpoint can be chosen by a narrow width's metric.
func TestMatryoshkaTrainingKeepsNarrowVectorsUseful(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	narrow := func(s Spec, metrics map[string]float64) float64 {
		t.Helper()
		if v, ok := metrics["mrr_at_10_dim4"]; ok {
			return v
		}
		e := Defaults()
		e.Model, e.Eval, e.MaxLength, e.Threads, e.MatryoshkaDims = filepath.Join(s.Output, "best"), s.Eval, 16, 2, []int{4}
		loaded, err := ForEval(e, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		r, err := loaded.Evaluate()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := r.Metrics["mrr_at_10_dim4"]; !ok {
			t.Fatalf("eval with matryoshka_dims [8] reported %v", r.Metrics)
		}
		return r.Metrics["mrr_at_10_dim4"]
	}
	plain, _, plainRes := trainPairs(t, false, nil, nil)
	mat, _, matRes := trainPairs(t, false, func(s *Spec) {
		s.MatryoshkaDims, s.MatryoshkaWeights, s.Metric = []int{128, 32, 4}, []float64{1, 1, 2}, "mrr_at_10_dim4"
	}, nil)
	for _, k := range []string{"mrr_at_10", "accuracy_at_1_dim32", "accuracy_at_5_dim4", "mrr_at_10_dim4"} {
		if _, ok := matRes.Best.Metrics[k]; !ok {
			t.Errorf("the Matryoshka run's evaluation has no %s: %v", k, matRes.Best.Metrics)
		}
	}
	if _, ok := plainRes.Best.Metrics["mrr_at_10_dim4"]; ok {
		t.Errorf("the plain run reported a width it did not train: %v", plainRes.Best.Metrics)
	}
	p8, m8 := narrow(plain, plainRes.Best.Metrics), narrow(mat, matRes.Best.Metrics)
	t.Logf("mrr@10 whole: plain %.3f, matryoshka %.3f; first 4 dimensions: plain %.3f, matryoshka %.3f",
		plainRes.Best.Metrics["mrr_at_10"], matRes.Best.Metrics["mrr_at_10"], p8, m8)
	if m8 < 0.7 || m8 < p8+0.2 || matRes.Best.Metrics["mrr_at_10"] < 0.8 {
		t.Errorf("first 4 dimensions' mrr@10: Matryoshka-trained %.3f, plain %.3f (whole %.3f): the narrow vectors did not learn",
			m8, p8, matRes.Best.Metrics["mrr_at_10"])
	}
	if matRes.Best.Step == 0 {
		t.Errorf("no best step chosen by mrr_at_10_dim4")
	}
}

// Widths that leave out the model's own are allowed, as sentence-transformers allows
// them, with a warning: the whole vectors are then not trained as such.
func TestMatryoshkaWithoutTheWholeWidthWarns(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	dir := t.TempDir()
	data := filepath.Join(dir, "train.jsonl")
	translationPairs(t, data, 40, 1, false)
	for _, c := range []struct {
		dims []int
		warn bool
	}{{[]int{64, 16}, true}, {[]int{128, 16}, false}} {
		s := Defaults()
		s.Task, s.Train, s.Model, s.EvalSplit = string(model.Embed), data, "tiny", 0.2
		s.Tokenizer, s.MaxLength, s.Threads, s.Output = "../data/vocab/bert-base-uncased.vocab.txt", 16, 1, filepath.Join(dir, "run")
		s.MatryoshkaDims = c.dims
		var out bytes.Buffer
		if _, err := Prepare(s, &out); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(out.String(), "leave out the model's width 128"); got != c.warn {
			t.Errorf("matryoshka_dims %v: warned %v, want %v:\n%s", c.dims, got, c.warn, out.String())
		}
	}
}

// With hard negatives (data.negative) a batch holds triplets, the evaluation ranks the
// negatives too, and the model learns to tell each pair from its near miss.
func TestEmbedTrainingWithHardNegatives(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	_, before, res := trainPairs(t, true, nil, func(tr *Trainer) {
		if tr.Eval[0].Negative == nil || tr.Eval[0].NegativeText == "" {
			t.Fatal("the evaluation examples have no hard negatives")
		}
		b, err := tr.batch([]*Example{&tr.Eval[0], &tr.Eval[1]}, evalMaskSeed)
		if err != nil {
			t.Fatal(err)
		}
		if b.B != 6 || len(b.Labels) != 2 {
			t.Fatalf("a batch of two triplets: %d sequences, %d labels", b.B, len(b.Labels))
		}
	})
	t.Logf("mrr@10 %.3f -> %.3f, accuracy@1 %.3f -> %.3f", before.Metrics["mrr_at_10"], res.Best.Metrics["mrr_at_10"],
		before.Metrics["accuracy_at_1"], res.Best.Metrics["accuracy_at_1"])
	if before.Metrics["mrr_at_10"] > 0.4 || res.Best.Metrics["accuracy_at_1"] < 0.8 {
		t.Fatalf("accuracy@1 %.3f -> %.3f: did not learn the triplets", before.Metrics["accuracy_at_1"], res.Best.Metrics["accuracy_at_1"])
	}
}

// The retrieval scores rank each anchor's positive among every positive and hard
// negative; a mistake names what won.
func TestEmbedScorerRanksNegativesToo(t *testing.T) {
	exs := []*Example{{Text: "a0", PositiveText: "p0", NegativeText: "n0"}, {Text: "a1", PositiveText: "p1", NegativeText: "n1"}}
	// Rows: anchors a0 a1, positives p0 p1, negatives n0 n1 (2-d vectors).
	logits := []float32{1, 0, 0, 1, 1, 0.1, 0.6, 1, 0.2, 1, 1, 0.05}
	sc := &embedScorer{}
	if err := sc.add(exs, &model.Batch{B: 6}, logits); err != nil {
		t.Fatal(err)
	}
	r, err := sc.result()
	if err != nil {
		t.Fatal(err)
	}
	// a0 = (1,0): n1 (1,0.05) beats p0 (1,0.1): rank 2. a1 = (0,1): p1 (0.6,1) is beaten
	// by n0 (0.2,1): rank 2.
	if r.Metrics["accuracy_at_1"] != 0 || r.Metrics["accuracy_at_5"] != 1 || r.Metrics["mrr_at_10"] != 0.5 {
		t.Errorf("metrics %v; want accuracy@1 0, @5 1, mrr@10 0.5", r.Metrics)
	}
	if len(r.Mistakes) != 2 || r.Mistakes[0].Pred != "n1" || r.Mistakes[1].Pred != "n0" || r.Mistakes[0].Gold != "p0" {
		t.Errorf("mistakes %+v", r.Mistakes)
	}
}

// SQuAD data trains an embedding model on questions and their contexts.
func TestEmbedReadsSQuADQuestionsAndContexts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qa.json")
	os.WriteFile(path, []byte(`{"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": "The Eiffel Tower is in Paris.",
		"qas": [{"id": "q1", "question": "Where is the tower?", "answers": [{"text": "Paris", "answer_start": 23}]}]}]}]}`), 0o644)
	recs, _, err := ReadAll(shard.Spec{Format: shard.SQuAD, Unlabeled: true}, path)
	if err != nil {
		t.Fatal(err)
	}
	exs, err := embedTask{}.encode(testTokenizer(t), recs, nil, 32)
	if err != nil {
		t.Fatal(err)
	}
	if len(exs) != 1 || exs[0].Text != "Where is the tower?" || exs[0].PositiveText != "The Eiffel Tower is in Paris." || exs[0].Positive == nil {
		t.Fatalf("examples %+v", exs)
	}
}

// Past the first block of gramRows anchors, each anchor is still scored against its own
// positive and every other candidate: anchor i's positive is its own vector, except one
// anchor in the second block whose positive points away, the one mistake.
func TestEmbedScorerAcrossBlocks(t *testing.T) {
	const n, h, odd = gramRows + 10, 8, gramRows + 3
	r := rand.New(rand.NewPCG(3, 4))
	exs := make([]*Example, n)
	anchors := make([]float32, n*h)
	for i := range exs {
		exs[i] = &Example{Text: fmt.Sprint("a", i), PositiveText: fmt.Sprint("p", i)}
		for k := range h {
			anchors[i*h+k] = float32(r.NormFloat64())
		}
	}
	positives := slices.Clone(anchors)
	for k := range h {
		positives[odd*h+k] *= -1
	}
	sc := &embedScorer{}
	if err := sc.add(exs, &model.Batch{B: 2 * n}, append(anchors, positives...)); err != nil {
		t.Fatal(err)
	}
	res, err := sc.result()
	if err != nil {
		t.Fatal(err)
	}
	if want := float64(n-1) / n; math.Abs(res.Metrics["accuracy_at_1"]-want) > 1e-12 {
		t.Errorf("accuracy@1 %v, want %v", res.Metrics["accuracy_at_1"], want)
	}
	if len(res.Mistakes) != 1 || res.Mistakes[0].Text != fmt.Sprint("a", odd) {
		t.Errorf("mistakes %+v, want a%d's alone", res.Mistakes, odd)
	}
}
