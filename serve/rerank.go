package serve

import (
	"cmp"
	"net/http"
	"slices"

	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/train"
)

// rerankRequest is text-embeddings-inference's /rerank request.
type rerankRequest struct {
	Query string   `json:"query"`
	Texts []string `json:"texts"`
	// TopN keeps the n best results; 0 keeps all.
	TopN       int  `json:"top_n"`
	ReturnText bool `json:"return_text"`
	// RawScores answers the logit instead of its sigmoid.
	RawScores bool `json:"raw_scores"`
}

type rerankResponse struct {
	Results []rerankResult `json:"results"`
}

type rerankResult struct {
	Index int     `json:"index"` // into the request's texts
	Score float64 `json:"score"`
	Text  string  `json:"text,omitempty"` // with return_text
}

// rerank answers POST /v1/rerank: each text scored against the query by a cross-encoder,
// the pair (query, text) encoded as predict and training encode text pairs, best first.
// A one-output model (regression, a cross-encoder reranker) scores sigmoid(logit), as
// text-embeddings-inference does; a two-label classify model the probability of its
// second label, which is the sigmoid of the difference of its logits (raw_scores).
func (s *Server) rerank(w http.ResponseWriter, r *http.Request) (any, error) {
	task, n := model.Task(s.t.Spec.Task), s.t.Labels.Len()
	if !(task == model.Regression && n == 1 || task == model.Classify && n == 2) {
		return nil, s.wrongTask("/v1/rerank", "one-output regression (a cross-encoder) or two-label classify")
	}
	var req rerankRequest
	if err := s.opts.Limits.decode(w, r, &req); err != nil {
		return nil, err
	}
	maxLen := s.t.Spec.MaxLength
	if err := s.opts.Limits.checkText("query", req.Query, maxLen, s.tokens); err != nil {
		return nil, err
	}
	if err := s.opts.Limits.checkTexts("texts", req.Texts, maxLen, s.pairTokens(req.Query)); err != nil {
		return nil, err
	}
	if req.TopN < 0 {
		return nil, invalid("top_n: %d: must not be negative", req.TopN)
	}
	queries := make([]string, len(req.Texts))
	for i := range queries {
		queries[i] = req.Query
	}
	rows, err := s.via(r.Context()).PairLogits(queries, req.Texts)
	if err != nil {
		return nil, err
	}
	out := rerankResponse{Results: make([]rerankResult, len(rows))}
	for i, row := range rows {
		logit := float64(row[0])
		if task == model.Classify {
			logit = float64(row[1]) - float64(row[0])
		}
		res := rerankResult{Index: i, Score: logit}
		if !req.RawScores {
			res.Score = train.Sigmoid(logit)
		}
		if req.ReturnText {
			res.Text = req.Texts[i]
		}
		out.Results[i] = res
	}
	sortResults(out.Results)
	if req.TopN > 0 {
		out.Results = out.Results[:min(req.TopN, len(out.Results))]
	}
	return out, nil
}

// sortResults orders results best first, equal scores by index.
func sortResults(rs []rerankResult) {
	slices.SortFunc(rs, func(a, b rerankResult) int {
		return cmp.Or(cmp.Compare(b.Score, a.Score), cmp.Compare(a.Index, b.Index))
	})
}
