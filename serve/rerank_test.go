package serve

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/train"
)

// /v1/classify on a regression model answers predict's score of each text.
func TestClassifyAnswersRegressionScores(t *testing.T) {
	dir := checkpoint(t, "regression")
	ref := load(t, dir)
	srv := start(t, load(t, dir), nil)
	texts := smsTexts(t, 6)
	want, err := ref.PredictScores(texts, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := post[scoreResponse](t, srv.url+"/v1/classify", jsonBody(t, map[string]any{"texts": texts}))
	if len(got.Predictions) != len(texts) {
		t.Fatalf("%d predictions for %d texts", len(got.Predictions), len(texts))
	}
	for i, p := range got.Predictions {
		if p.Text != texts[i] || p.Score == nil || p.Scores != nil || math.Abs(*p.Score-*want[i].Score) > 1e-5 {
			t.Errorf("text %d: %+v, predict says %v", i, p, *want[i].Score)
		}
	}
	wantError(t, "POST", srv.url+"/v1/classify", `{"texts": ["a"], "top_k": 2}`, 400, kindInvalid, "top_k: only for classify and multilabel")
	code, b := call(t, "GET", srv.url+"/v1/model", "")
	if code != 200 || !strings.Contains(string(b), `"task":"regression"`) {
		t.Errorf("/v1/model: %d %s", code, b)
	}
}

type rerankAnswer struct {
	Results []struct {
		Index int     `json:"index"`
		Score float64 `json:"score"`
		Text  *string `json:"text"`
	} `json:"results"`
}

// /v1/rerank scores each (query, text) pair as predict scores the pair: sigmoid of a
// one-output model's logit (the logit itself with raw_scores), best first, ties by
// index, top_n of them, with the texts when asked.
func TestRerankAnswersAsPredict(t *testing.T) {
	dir := checkpoint(t, "regression")
	ref := load(t, dir)
	srv := start(t, load(t, dir), nil)
	query := "cheap flights to paris"
	texts := append(smsTexts(t, 20), "discount tickets to paris")
	queries := make([]string, len(texts))
	for i := range queries {
		queries[i] = query
	}
	want, err := ref.PredictScores(queries, texts)
	if err != nil {
		t.Fatal(err)
	}
	raw := post[rerankAnswer](t, srv.url+"/v1/rerank", jsonBody(t, map[string]any{"query": query, "texts": texts, "raw_scores": true}))
	sig := post[rerankAnswer](t, srv.url+"/v1/rerank", jsonBody(t, map[string]any{"query": query, "texts": texts, "return_text": true}))
	if len(raw.Results) != len(texts) || len(sig.Results) != len(texts) {
		t.Fatalf("%d and %d results for %d texts", len(raw.Results), len(sig.Results), len(texts))
	}
	for i, r := range raw.Results {
		if math.Abs(r.Score-*want[r.Index].Score) > 1e-5 || r.Text != nil {
			t.Errorf("result %d: index %d score %v text %v; predict's score %v", i, r.Index, r.Score, r.Text, *want[r.Index].Score)
		}
		if i > 0 && (r.Score > raw.Results[i-1].Score || r.Score == raw.Results[i-1].Score && r.Index < raw.Results[i-1].Index) {
			t.Errorf("result %d (%d, %v) after (%d, %v): not best first, ties by index", i, r.Index, r.Score, raw.Results[i-1].Index, raw.Results[i-1].Score)
		}
		s := sig.Results[i]
		if s.Index != r.Index || math.Abs(s.Score-train.Sigmoid(r.Score)) > 1e-6 || s.Text == nil || *s.Text != texts[s.Index] {
			t.Errorf("result %d: %+v; raw %+v", i, s, r)
		}
	}
	top := post[rerankAnswer](t, srv.url+"/v1/rerank", jsonBody(t, map[string]any{"query": query, "texts": texts, "top_n": 3}))
	if len(top.Results) != 3 || top.Results[0].Index != sig.Results[0].Index || top.Results[2].Index != sig.Results[2].Index {
		t.Errorf("top 3: %+v; all: %+v", top.Results, sig.Results)
	}
	if all := post[rerankAnswer](t, srv.url+"/v1/rerank", jsonBody(t, map[string]any{"query": query, "texts": texts[:2], "top_n": 5})); len(all.Results) != 2 {
		t.Errorf("top 5 of 2: %+v", all.Results)
	}
}

// Equal scores are ordered by index: identical pairs in a request may score apart by
// rounding (batched at other rows), so the order is checked on made-up results.
func TestRerankOrderBreaksTiesByIndex(t *testing.T) {
	var rs []rerankResult
	for i := range 40 {
		rs = append(rs, rerankResult{Index: i, Score: float64(i % 3)})
	}
	sortResults(rs)
	for i := 1; i < len(rs); i++ {
		a, b := rs[i-1], rs[i]
		if a.Score < b.Score || a.Score == b.Score && a.Index > b.Index {
			t.Fatalf("(%d, %v) before (%d, %v)", a.Index, a.Score, b.Index, b.Score)
		}
	}
}

// A two-label classify model reranks by its second label's probability, which predict
// gives; raw_scores is the logit whose sigmoid that is.
func TestRerankTwoLabelClassify(t *testing.T) {
	dir := checkpoint(t, "classify")
	ref := load(t, dir)
	srv := start(t, load(t, dir), nil)
	query := "win a prize"
	texts := smsTexts(t, 5)
	got := post[rerankAnswer](t, srv.url+"/v1/rerank", jsonBody(t, map[string]any{"query": query, "texts": texts}))
	raw := post[rerankAnswer](t, srv.url+"/v1/rerank", jsonBody(t, map[string]any{"query": query, "texts": texts, "raw_scores": true}))
	logits, err := ref.PairLogits(slices.Repeat([]string{query}, len(texts)), texts)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range got.Results {
		l := logits[r.Index]
		p1 := math.Exp(float64(l[1])) / (math.Exp(float64(l[0])) + math.Exp(float64(l[1])))
		if math.Abs(r.Score-p1) > 1e-5 || raw.Results[i].Index != r.Index || math.Abs(train.Sigmoid(raw.Results[i].Score)-r.Score) > 1e-6 {
			t.Errorf("result %d: %+v, raw %+v; P(%s) = %v", i, r, raw.Results[i], ref.Labels.Names()[1], p1)
		}
	}
}

// Bad rerank requests answer 4xx naming the field, and the server serves on; models
// other than one-output regression and two-label classify are refused.
func TestRerankRefusesBadRequests(t *testing.T) {
	dir := checkpoint(t, "regression")
	srv := start(t, load(t, dir), func(o *Options) { o.Limits.MaxTexts = 3 })
	strict := start(t, load(t, dir), func(o *Options) { o.Limits.Truncate = false })
	u := srv.url + "/v1/rerank"
	long := strings.Repeat("word ", maxLen)
	for _, c := range []struct {
		url, body string
		code      int
		kind      string
		want      []string
	}{
		{u, `{"query": " ", "texts": ["a"]}`, 400, kindInvalid, []string{"query: empty text"}},
		{u, `{"texts": ["a"]}`, 400, kindInvalid, []string{"query: empty text"}},
		{u, `{"query": "q"}`, 400, kindInvalid, []string{"texts: at least one text"}},
		{u, `{"query": "q", "texts": ["a", ""]}`, 400, kindInvalid, []string{"texts[1]: empty text"}},
		{u, `{"query": "q", "texts": ["a", "b", "c", "d"]}`, 413, kindTooLarge, []string{"texts: 4 texts, more than the 3"}},
		{u, `{"query": "q", "texts": ["a"], "top_n": -1}`, 400, kindInvalid, []string{"top_n: -1"}},
		{u, `{"query": "q", "texts": ["a"], "top_k": 1}`, 400, kindInvalid, []string{`unknown field "top_k"`}},
		{strict.url + "/v1/rerank", `{"query": "q", "texts": ["a", "` + long[:len(long)/2] + `"]}`, 200, "", nil},
		{strict.url + "/v1/rerank", `{"query": "` + long[:len(long)/2] + `", "texts": ["a", "` + long[:len(long)/2] + `"]}`, 413, kindTooLarge, []string{"texts[1]: 35 tokens, more than the max length of 32"}},
		{strict.url + "/v1/rerank", `{"query": "` + long + `", "texts": ["a"]}`, 413, kindTooLarge, []string{"query: 34 tokens"}},
	} {
		if c.code == 200 {
			if got := post[rerankAnswer](t, c.url, c.body); len(got.Results) != 2 {
				t.Errorf("%s: %+v", c.body, got)
			}
			continue
		}
		wantError(t, "POST", c.url, c.body, c.code, c.kind, c.want...)
		if got := post[rerankAnswer](t, u, `{"query": "q", "texts": ["see you at 6?"]}`); len(got.Results) != 1 {
			t.Fatalf("after %q: %+v", c.body, got)
		}
	}
	// Truncation is the default: a long pair is cut as training cuts pairs.
	if got := post[rerankAnswer](t, u, fmt.Sprintf(`{"query": %q, "texts": [%q]}`, long, long)); len(got.Results) != 1 {
		t.Errorf("long pair: %+v", got)
	}
	for _, task := range []string{"multilabel", "ner"} {
		other := start(t, load(t, checkpoint(t, task)), nil)
		wantError(t, "POST", other.url+"/v1/rerank", `{"query": "q", "texts": ["a"]}`, 400, kindInvalid, "/v1/rerank needs a one-output regression", "is "+task)
	}
}
