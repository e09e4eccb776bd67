package serve

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/train"
)

// sameProbs fails unless two predictions agree: the same labels, probabilities within
// what batching with other sequences changes (padding is masked; BLAS sums differ).
func sameProbs(t *testing.T, what string, got, want train.Prediction) {
	t.Helper()
	if got.Text != want.Text || got.Label != want.Label || !slices.Equal(got.Labels, want.Labels) || len(got.Probs) != len(want.Probs) {
		t.Errorf("%s: %+v, predict says %+v", what, got, want)
		return
	}
	for k, p := range want.Probs {
		if math.Abs(got.Probs[k]-p) > 1e-5 {
			t.Errorf("%s: P(%s) = %v, predict says %v", what, k, got.Probs[k], p)
		}
	}
}

// /v1/classify answers what predict answers, texts longer than the max length cut as
// predict cuts them, with the top k labels when asked.
func TestClassifyAnswersAsPredict(t *testing.T) {
	dir := checkpoint(t, "classify")
	ref := load(t, dir)
	srv := start(t, load(t, dir), nil)
	texts := append(smsTexts(t, 20), "Zoë  visited Zürich, 北京\t☃ (again)!")
	if n := srv.tokens(texts[2]); n <= maxLen {
		t.Fatalf("setup: text 2 has %d tokens, want one over %d", n, maxLen)
	}
	want, err := ref.Predict(texts, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	got := post[classifyResponse](t, srv.url+"/v1/classify", jsonBody(t, map[string]any{"texts": texts}))
	if len(got.Predictions) != len(texts) {
		t.Fatalf("%d predictions for %d texts", len(got.Predictions), len(texts))
	}
	for i, p := range got.Predictions {
		sameProbs(t, fmt.Sprintf("text %d", i), p.Prediction, want[i])
		if p.Top != nil {
			t.Errorf("text %d: top without top_k: %v", i, p.Top)
		}
	}

	got = post[classifyResponse](t, srv.url+"/v1/classify", jsonBody(t, map[string]any{"texts": texts[:3], "top_k": 5}))
	for i, p := range got.Predictions {
		if len(p.Top) != 2 || p.Top[0].Label != p.Label || p.Top[0].Prob < p.Top[1].Prob || p.Top[1].Prob != p.Probs[p.Top[1].Label] {
			t.Errorf("text %d: top %+v of %v", i, p.Top, p.Probs)
		}
	}
	got = post[classifyResponse](t, srv.url+"/v1/classify", `{"texts": ["free prize"], "top_k": 1}`)
	if p := got.Predictions[0]; len(p.Top) != 1 || p.Top[0].Label != p.Label {
		t.Errorf("top 1: %+v", p)
	}
}

// A multilabel model keeps the labels at or over the request's threshold.
func TestClassifyMultiLabelThreshold(t *testing.T) {
	dir := checkpoint(t, "multilabel")
	ref := load(t, dir)
	srv := start(t, load(t, dir), nil)
	texts := []string{"cheap hotels", "a draw"}
	for _, th := range []float64{0, 0.5, 1} {
		want, err := ref.Predict(texts, th)
		if err != nil {
			t.Fatal(err)
		}
		got := post[classifyResponse](t, srv.url+"/v1/classify", jsonBody(t, map[string]any{"texts": texts, "threshold": th}))
		for i, p := range got.Predictions {
			sameProbs(t, fmt.Sprintf("threshold %v, text %d", th, i), p.Prediction, want[i])
			if th == 0 && len(p.Labels) != 3 || th == 1 && len(p.Labels) != 0 {
				t.Errorf("threshold %v: labels %v", th, p.Labels)
			}
		}
	}
	wantError(t, "POST", srv.url+"/v1/classify", `{"texts": ["x"], "threshold": 1.5}`, 400, kindInvalid, "threshold", "1.5")
}

// /v1/ner tags as predict does; a text over the max length is read in windows, every
// word tagged, where predict would tag its last words O.
func TestNERAnswersAsPredictAndWindowsLongTexts(t *testing.T) {
	dir := checkpoint(t, "ner")
	ref := load(t, dir)
	srv := start(t, load(t, dir), nil)
	long := strings.Repeat("Peter Blackburn visited Brussels, and Zoë stayed in Zürich. ", 10)
	texts := []string{"Peter Blackburn visited Brussels.", long, "EU rejects German call"}
	if n := srv.tokens(long); n < 3*maxLen {
		t.Fatalf("setup: %d tokens in the long text, want several windows of %d", n, maxLen)
	}
	short, err := ref.PredictTags(texts, false)
	if err != nil {
		t.Fatal(err)
	}
	windowed, err := ref.PredictTags(texts, true)
	if err != nil {
		t.Fatal(err)
	}
	got := post[nerResponse](t, srv.url+"/v1/ner", jsonBody(t, map[string]any{"texts": texts}))
	if len(got.Predictions) != 3 {
		t.Fatalf("%d predictions", len(got.Predictions))
	}
	for i, p := range got.Predictions {
		want := short[i]
		if i == 1 {
			want = windowed[i]
			if short[i].Truncated == 0 || p.Truncated != 0 || len(p.Tags) != len(p.Words) {
				t.Errorf("long text: predict truncates %d words; the server %d, %d tags for %d words", short[i].Truncated, p.Truncated, len(p.Tags), len(p.Words))
			}
		}
		if fmt.Sprint(p.Words, p.Tags, p.Entities) != fmt.Sprint(want.Words, want.Tags, want.Entities) || math.Abs(p.Confidence-want.Confidence) > 1e-5*want.Confidence {
			t.Errorf("text %d: %+v\npredict: %+v", i, p, want)
		}
		runes := []rune(p.Text)
		for _, e := range p.Entities {
			if e.Text != string(runes[e.Start:e.End]) {
				t.Errorf("text %d: entity %+v is not runes %d..%d", i, e, e.Start, e.End)
			}
		}
	}
}

// /v1/qa answers one question or a list as predict does, with the span's end.
func TestQAAnswersAsPredict(t *testing.T) {
	dir := checkpoint(t, "qa")
	ref := load(t, dir)
	srv := start(t, load(t, dir), nil)
	ctx := strings.Repeat("The Eiffel Tower is in Paris and was built in 1889. ", 4) // several windows
	qs := []train.Question{{ID: "a", Question: "Where is the tower?", Context: ctx}, {ID: "2", Question: "When was it built?", Context: "It was built in 1889."}}
	for _, allowEmpty := range []bool{false, true} {
		want, err := ref.PredictAnswers(qs, allowEmpty)
		if err != nil {
			t.Fatal(err)
		}
		got := post[qaResponse](t, srv.url+"/v1/qa", jsonBody(t, map[string]any{"allow_empty": allowEmpty, "questions": []map[string]string{
			{"id": "a", "question": qs[0].Question, "context": qs[0].Context}, {"question": qs[1].Question, "context": qs[1].Context}}}))
		if len(got.Answers) != 2 {
			t.Fatalf("%d answers", len(got.Answers))
		}
		for i, a := range got.Answers {
			w := want[i]
			if a.ID != w.ID || a.Answer != w.Answer || a.Start != w.Start || math.Abs(a.Score-w.Score) > 1e-5 {
				t.Errorf("allow_empty %v: question %d: %+v, predict says %+v", allowEmpty, i, a, w)
			}
			if runes := []rune(qs[i].Context); a.Start >= 0 && (a.End > len(runes) || string(runes[a.Start:a.End]) != a.Answer) || a.Start < 0 && a.End != -1 {
				t.Errorf("question %d: span %d..%d is not %q", i, a.Start, a.End, a.Answer)
			}
		}
	}
	one := post[qaResponse](t, srv.url+"/v1/qa", jsonBody(t, map[string]string{"question": qs[1].Question, "context": qs[1].Context}))
	if len(one.Answers) != 1 || one.Answers[0].ID != "1" {
		t.Errorf("one question: %+v", one)
	}
	wantError(t, "POST", srv.url+"/v1/qa", `{"question": "q", "context": "c", "questions": []}`, 400, kindInvalid, "not both")
	wantError(t, "POST", srv.url+"/v1/qa", `{"questions": [{"question": "q", "context": "c"}, {"question": "q", "context": " "}]}`, 400, kindInvalid, "questions[1].context: empty")
	wantError(t, "POST", srv.url+"/v1/qa", `{"context": "c"}`, 400, kindInvalid, "question: empty")
	wantError(t, "POST", srv.url+"/v1/qa", jsonBody(t, map[string]string{"question": strings.Repeat("why ", 40), "context": "c"}), 400, kindInvalid, "question of")
	small := start(t, load(t, dir), func(o *Options) { o.Batch.MaxQueue = 32 })
	wantError(t, "POST", small.url+"/v1/qa", jsonBody(t, map[string]string{"question": "Where?", "context": strings.Repeat(ctx, 10)}), 413, kindTooLarge,
		"more than the server queues at once (32)")
	wantError(t, "POST", srv.url+"/v1/classify", `{"texts": ["x"]}`, 400, kindInvalid, "/v1/classify needs a classify, multilabel or regression model", "is qa")
	wantError(t, "POST", srv.url+"/v1/attention", `{"text": "x"}`, 400, kindInvalid, "/v1/attention needs")
}

// /v1/attention gives predict's head view data: every layer's and head's attention
// over the text's word pieces.
func TestAttention(t *testing.T) {
	dir := checkpoint(t, "ner")
	ref := load(t, dir)
	srv := start(t, load(t, dir), nil)
	text := "Peter visited Zürich"
	tokens, attn, err := ref.Attention(text)
	if err != nil {
		t.Fatal(err)
	}
	got := post[attentionResponse](t, srv.url+"/v1/attention", jsonBody(t, map[string]string{"text": text}))
	if !slices.Equal(got.Tokens, tokens) || len(got.Attentions) != len(attn) || len(got.Attentions[0]) != len(attn[0]) {
		t.Fatalf("tokens %v, %d layers; want %v, %d", got.Tokens, len(got.Attentions), tokens, len(attn))
	}
	for l := range attn {
		for h := range attn[l] {
			for i, row := range attn[l][h] {
				var sum float64
				for j, v := range row {
					sum += float64(got.Attentions[l][h][i][j])
					if math.Abs(float64(got.Attentions[l][h][i][j]-v)) > 1e-6 {
						t.Fatalf("layer %d head %d [%d][%d]: %v, predict %v", l, h, i, j, got.Attentions[l][h][i][j], v)
					}
				}
				if len(got.Attentions[l][h][i]) != len(tokens) || math.Abs(sum-1) > 1e-4 {
					t.Fatalf("layer %d head %d row %d: %d weights summing to %v", l, h, i, len(row), sum)
				}
			}
		}
	}
}

// Bad requests get a clear 4xx JSON error naming the field, and the server serves on.
func TestBadRequestsAreRefusedClearly(t *testing.T) {
	srv := start(t, load(t, checkpoint(t, "classify")), func(o *Options) {
		o.Limits.MaxTexts, o.Limits.MaxBodyBytes = 3, 4096
	})
	strict := start(t, load(t, checkpoint(t, "classify")), func(o *Options) { o.Limits.Truncate = false })
	u := srv.url + "/v1/classify"
	long := strings.Repeat("word ", maxLen)
	for _, c := range []struct {
		method, url, body string
		code              int
		kind              string
		want              []string
	}{
		{"POST", u, `{"texts": ["a",]}`, 400, kindInvalid, []string{"invalid JSON at byte 16"}},
		{"POST", u, "{\"texts\": [\"caf\xe9\"]}", 400, kindInvalid, []string{"not valid UTF-8 (byte 15)"}},
		{"POST", u, `{"text": ["a"]}`, 400, kindInvalid, []string{`unknown field "text"`}},
		{"POST", u, `{"texts": "a"}`, 400, kindInvalid, []string{"texts: want []string"}},
		{"POST", u, `{"texts": ["a"]} {}`, 400, kindInvalid, []string{"more after the JSON object"}},
		{"POST", u, ``, 400, kindInvalid, []string{"empty"}},
		{"POST", u, `{}`, 400, kindInvalid, []string{"texts: at least one text"}},
		{"POST", u, `{"texts": ["a", " \t"]}`, 400, kindInvalid, []string{"texts[1]: empty text"}},
		{"POST", u, `{"texts": ["a"], "top_k": -1}`, 400, kindInvalid, []string{"top_k"}},
		{"POST", u, `{"texts": ["a"], "threshold": 0.3}`, 400, kindInvalid, []string{"threshold: only for multilabel", "classify"}},
		{"POST", u, `{"texts": ["a", "b", "c", "d"]}`, 413, kindTooLarge, []string{"4 texts, more than the 3"}},
		{"POST", u, `{"texts": ["` + strings.Repeat("a", 5000) + `"]}`, 413, kindTooLarge, []string{"over the limit of 4096 bytes"}},
		{"POST", strict.url + "/v1/classify", `{"texts": ["a", "` + long + `"]}`, 413, kindTooLarge, []string{"texts[1]: 34 tokens, more than the max length of 32"}},
		{"POST", strict.url + "/v1/attention", `{"text": "` + long + `"}`, 413, kindTooLarge, []string{"text: 34 tokens"}},
		{"POST", srv.url + "/v1/ner", `{"texts": ["a"]}`, 400, kindInvalid, []string{"/v1/ner needs a ner model", "is classify"}},
		{"POST", srv.url + "/v1/qa", `{"question": "a", "context": "b"}`, 400, kindInvalid, []string{"/v1/qa needs a qa model"}},
		{"GET", u, ``, 405, kindNotFound, []string{"POST, not GET"}},
		{"POST", srv.url + "/v1/model", ``, 405, kindNotFound, []string{"GET, not POST"}},
		{"GET", srv.url + "/v2/classify", ``, 404, kindNotFound, []string{"/v2/classify"}},
	} {
		wantError(t, c.method, c.url, c.body, c.code, c.kind, c.want...)
		// The server serves on after each.
		if got := post[classifyResponse](t, u, `{"texts": ["see you at 6?"]}`); len(got.Predictions) != 1 {
			t.Fatalf("after %q: %+v", c.body, got)
		}
	}
	// Truncation is the default: the long text is cut as predict cuts it.
	if got := post[classifyResponse](t, u, `{"texts": ["`+long+`"]}`); got.Predictions[0].Text != long {
		t.Errorf("long text: %+v", got)
	}
}

// GET /v1/model, /healthz, /readyz and /metrics.
func TestModelHealthAndMetrics(t *testing.T) {
	srv := start(t, load(t, checkpoint(t, "classify")), nil)
	code, b := call(t, "GET", srv.url+"/v1/model", "")
	var m struct {
		Task      string
		Labels    []string
		MaxLength int `json:"max_length"`
		Config    struct {
			VocabSize int `json:"vocab_size"`
		}
		Batching struct {
			MaxBatch int `json:"max_batch"`
		}
	}
	if err := json.Unmarshal(b, &m); code != 200 || err != nil {
		t.Fatalf("/v1/model: %d %s (%v)", code, b, err)
	}
	if m.Task != "classify" || !slices.Equal(m.Labels, []string{"ham", "spam"}) || m.MaxLength != maxLen || m.Config.VocabSize != 30522 || m.Batching.MaxBatch != 32 {
		t.Errorf("/v1/model: %s", b)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, b := call(t, "GET", srv.url+path, ""); code != 200 {
			t.Errorf("%s: %d %s", path, code, b)
		}
	}
	before := metric(t, srv.url, "bertnode_serve_sequences_total")
	post[classifyResponse](t, srv.url+"/v1/classify", `{"texts": ["one", "two two"]}`)
	wantError(t, "POST", srv.url+"/v1/classify", `{}`, 400, kindInvalid)
	if got := metric(t, srv.url, "bertnode_serve_sequences_total") - before; got != 2 {
		t.Errorf("sequences_total grew by %v, want 2", got)
	}
	for name, want := range map[string]float64{
		`bertnode_serve_requests_total{code="200",route="/v1/classify"}`:      1,
		`bertnode_serve_requests_total{code="400",route="/v1/classify"}`:      1,
		`bertnode_serve_tokens_total`:                                         7, // [CLS] one [SEP], [CLS] two two [SEP]
		`bertnode_serve_padding_tokens_total`:                                 1,
		`bertnode_serve_request_duration_seconds_count{route="/v1/classify"}`: 2,
		`bertnode_serve_queue_depth`:                                          0,
	} {
		if got := metric(t, srv.url, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if metric(t, srv.url, "bertnode_serve_batch_size_count") < 1 || metric(t, srv.url, "go_goroutines") < 1 {
		t.Error("batch size histogram or Go runtime metrics missing")
	}
}
