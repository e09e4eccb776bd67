package serve

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/train"
)

// embedCheckpoint is the classify checkpoint's encoder read with mean pooling and saved
// as an embedding model that normalizes (sentence-transformers' layout).
func embedCheckpoint(t *testing.T) string {
	t.Helper()
	ckptMu.Lock()
	defer ckptMu.Unlock()
	if dir, ok := ckpts["embed"]; ok {
		return dir
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	s := train.Defaults()
	s.Model, s.MaxLength, s.Threads, s.Pooling = ckpts["classify"], maxLen, 2, model.PoolMean
	tr, err := train.ForEval(s, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	tr.Normalize = true
	dir := filepath.Join(fixtures, "embed")
	if err := tr.Save(dir); err != nil {
		t.Fatal(err)
	}
	ckpts["embed"] = dir
	return dir
}

func sameVectors(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d dimensions, want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Abs(float64(got[i]-want[i])) > 1e-5 {
			t.Fatalf("%s: [%d] = %v, want %v", what, i, got[i], want[i])
		}
	}
}

func norm(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

// /v1/embed answers predict's vectors, unit length as the checkpoint says unless the
// request says otherwise, texts over the max length cut as predict cuts them.
func TestEmbedAnswersAsPredict(t *testing.T) {
	checkpoint(t, "classify")
	dir := embedCheckpoint(t)
	ref := load(t, dir)
	if ref.Spec.Task != string(model.Embed) || ref.Spec.Pooling != model.PoolMean || !ref.Normalize {
		t.Fatalf("saved embedding model loads as %s, pooling %q, normalize %v", ref.Spec.Task, ref.Spec.Pooling, ref.Normalize)
	}
	srv := start(t, load(t, dir), nil)
	texts := append(smsTexts(t, 12), "Zoë  visited Zürich, 北京\t☃ (again)!")
	for _, normalize := range []bool{true, false} {
		want, err := ref.Embed(texts, normalize)
		if err != nil {
			t.Fatal(err)
		}
		body := map[string]any{"texts": texts}
		if !normalize {
			body["normalize"] = false
		}
		got := post[embedResponse](t, srv.url+"/v1/embed", jsonBody(t, body))
		if len(got.Embeddings) != len(texts) {
			t.Fatalf("%d vectors for %d texts", len(got.Embeddings), len(texts))
		}
		for i, v := range got.Embeddings {
			sameVectors(t, fmt.Sprintf("normalize %v: text %d", normalize, i), v, want[i].Embedding)
			if n := norm(v); normalize != (math.Abs(n-1) < 1e-5) {
				t.Errorf("normalize %v: text %d has norm %v", normalize, i, n)
			}
		}
		// dimensions cuts the raw vectors, then normalizes them if normalizing.
		raw, err := ref.Embed(texts, false)
		if err != nil {
			t.Fatal(err)
		}
		body["dimensions"] = 7
		got = post[embedResponse](t, srv.url+"/v1/embed", jsonBody(t, body))
		for i, v := range got.Embeddings {
			head := append([]float32(nil), raw[i].Embedding[:7]...)
			if normalize {
				train.Normalize(head)
			}
			sameVectors(t, fmt.Sprintf("normalize %v, dimensions 7: text %d", normalize, i), v, head)
		}
	}
	width := ref.Model.Config.HiddenSize
	wantError(t, "POST", srv.url+"/v1/embed", `{"texts": ["a"], "dimensions": 0}`, 400, kindInvalid, fmt.Sprintf("dimensions: 0 is not in [1, %d]", width))
	code, b := call(t, "GET", srv.url+"/v1/model", "")
	info := decodeAs[modelInfo](t, b)
	if code != 200 {
		t.Fatalf("/v1/model: %d", code)
	}
	if info.Task != "embed" || info.Pooling != "mean" || !info.Normalize {
		t.Errorf("/v1/model: task %s, pooling %q, normalize %v", info.Task, info.Pooling, info.Normalize)
	}
}

// /v1/embeddings answers as OpenAI's route does: a string or a list, unit-length vectors
// as floats or base64 little-endian float32s, shortened and renormalized to dimensions,
// with the tokens counted.
func TestOpenAIEmbeddings(t *testing.T) {
	checkpoint(t, "classify")
	dir := embedCheckpoint(t)
	ref := load(t, dir)
	// Served with --pooling, the classify checkpoint is the same model without its head.
	srv := start(t, load(t, dir), nil)
	texts := smsTexts(t, 3)
	want, err := ref.Embed(texts, true)
	if err != nil {
		t.Fatal(err)
	}
	type answer struct {
		Object string `json:"object"`
		Model  string `json:"model"`
		Data   []struct {
			Object    string `json:"object"`
			Index     int    `json:"index"`
			Embedding any    `json:"embedding"`
		} `json:"data"`
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
			TotalTokens  int `json:"total_tokens"`
		} `json:"usage"`
	}
	floats := func(v any) []float32 {
		xs, ok := v.([]any)
		if !ok {
			t.Fatalf("embedding %T, want a list", v)
		}
		out := make([]float32, len(xs))
		for i, x := range xs {
			out[i] = float32(x.(float64))
		}
		return out
	}
	u := srv.url + "/v1/embeddings"
	got := post[answer](t, u, jsonBody(t, map[string]any{"input": texts, "model": "my-embedder"}))
	tokens := 0
	for _, w := range want {
		tokens += w.Tokens
	}
	if got.Object != "list" || got.Model != "my-embedder" || len(got.Data) != len(texts) ||
		got.Usage.PromptTokens != tokens || got.Usage.TotalTokens != tokens || tokens == 0 {
		t.Fatalf("answer %+v; want 3 vectors, model my-embedder, %d tokens", got, tokens)
	}
	for i, d := range got.Data {
		if d.Object != "embedding" || d.Index != i {
			t.Errorf("data[%d]: object %q, index %d", i, d.Object, d.Index)
		}
		sameVectors(t, fmt.Sprintf("text %d", i), floats(d.Embedding), want[i].Embedding)
	}

	one := post[answer](t, u, jsonBody(t, map[string]any{"input": texts[1], "encoding_format": "base64"}))
	b64, ok := one.Data[0].Embedding.(string)
	if !ok || one.Model != filepath.Base(dir) {
		t.Fatalf("base64 answer %+v", one)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) != 4*len(want[1].Embedding) {
		t.Fatalf("base64: %d bytes, %v", len(raw), err)
	}
	dec := make([]float32, len(raw)/4)
	for i := range dec {
		dec[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	sameVectors(t, "base64", dec, want[1].Embedding)

	short := post[answer](t, u, `{"input": ["`+texts[0]+`"], "dimensions": 5}`)
	v := floats(short.Data[0].Embedding)
	head := append([]float32(nil), want[0].Embedding[:5]...)
	train.Normalize(head)
	sameVectors(t, "dimensions 5", v, head)

	width := ref.Model.Config.HiddenSize
	for _, c := range []struct {
		body string
		want string
	}{
		{`{"model": "x"}`, "input: a string or a list of strings is required"},
		{`{"input": [[101, 2023, 102]]}`, "token id lists are not taken"},
		{`{"input": ["a"], "dimensions": 0}`, fmt.Sprintf("dimensions: 0 is not in [1, %d]", width)},
		{`{"input": ["a"], "dimensions": 100000}`, "dimensions: 100000"},
		{`{"input": ["a"], "encoding_format": "int8"}`, `encoding_format: "int8"`},
		{`{"input": ["a", ""]}`, "input[1]: empty text"},
	} {
		wantError(t, "POST", u, c.body, 400, kindInvalid, c.want)
		if got := post[embedResponse](t, srv.url+"/v1/embed", `{"texts": ["see you at 6?"]}`); len(got.Embeddings) != 1 {
			t.Fatalf("after %q: %+v", c.body, got)
		}
	}
}

// The embedding routes need an embedding model, the task routes a task model; --pooling
// makes any checkpoint an embedding model.
func TestEmbeddingRoutesAndTasks(t *testing.T) {
	cls := checkpoint(t, "classify")
	srv := start(t, load(t, cls), nil)
	wantError(t, "POST", srv.url+"/v1/embed", `{"texts": ["a"]}`, 400, kindInvalid, "/v1/embed needs an embedding model", "is classify")
	wantError(t, "POST", srv.url+"/v1/embeddings", `{"input": "a"}`, 400, kindInvalid, "/v1/embeddings needs an embedding model")

	runtime.LockOSThread()
	s := train.Defaults()
	s.Model, s.MaxLength, s.Threads, s.Pooling = cls, maxLen, 2, model.PoolCLS
	tr, err := train.ForEval(s, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Normalize {
		t.Error("--pooling normalizes only when asked")
	}
	pooled := start(t, tr, nil)
	wantError(t, "POST", pooled.url+"/v1/classify", `{"texts": ["a"]}`, 400, kindInvalid, "/v1/classify needs a classify, multilabel or regression model", "is embed")
	got := post[embedResponse](t, pooled.url+"/v1/embed", `{"texts": ["free prize", "see you"]}`)
	if len(got.Embeddings) != 2 || len(got.Embeddings[0]) != tr.Model.Config.HiddenSize || math.Abs(norm(got.Embeddings[0])-1) < 1e-3 {
		t.Errorf("cls pooling without normalize: %d vectors of %d, norm %v", len(got.Embeddings), len(got.Embeddings[0]), norm(got.Embeddings[0]))
	}
}

// /v1/similarity answers the cosine similarity of each text to the source, as the
// vectors predict gives compute it.
func TestSimilarity(t *testing.T) {
	checkpoint(t, "classify")
	dir := embedCheckpoint(t)
	ref := load(t, dir)
	srv := start(t, load(t, dir), nil)
	texts := smsTexts(t, 4)
	vecs, err := ref.Embed(append([]string{"free prize"}, texts...), true)
	if err != nil {
		t.Fatal(err)
	}
	got := post[similarityResponse](t, srv.url+"/v1/similarity", jsonBody(t, map[string]any{"source": "free prize", "texts": texts}))
	if len(got.Scores) != len(texts) {
		t.Fatalf("%d scores for %d texts", len(got.Scores), len(texts))
	}
	for i, sc := range got.Scores {
		var want float64
		for k, x := range vecs[i+1].Embedding {
			want += float64(x) * float64(vecs[0].Embedding[k])
		}
		if math.Abs(sc-want) > 1e-5 || sc > 1+1e-6 {
			t.Errorf("text %d: similarity %v, from predict's vectors %v", i, sc, want)
		}
	}
	same := post[similarityResponse](t, srv.url+"/v1/similarity", jsonBody(t, map[string]any{"source": texts[0], "texts": texts[:1]}))
	if math.Abs(same.Scores[0]-1) > 1e-5 {
		t.Errorf("a text's similarity to itself: %v", same.Scores[0])
	}
	wantError(t, "POST", srv.url+"/v1/similarity", `{"source": " ", "texts": ["a"]}`, 400, kindInvalid, "source: empty text")
	wantError(t, "POST", srv.url+"/v1/similarity", `{"source": "a"}`, 400, kindInvalid, "texts: at least one text")
}
