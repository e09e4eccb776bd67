package serve

import (
	"cmp"
	"net/http"
	"slices"

	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/train"
)

type classifyRequest struct {
	Texts []string `json:"texts"`
	// TopK adds the k most probable labels, most probable first.
	TopK int `json:"top_k"`
	// Threshold (multilabel) keeps the labels whose probability reaches it; default 0.5.
	Threshold *float64 `json:"threshold"`
}

type classifyResponse struct {
	Predictions []classification `json:"predictions"`
}

// scoreResponse is /v1/classify's answer for a regression model: predict's lines.
type scoreResponse struct {
	Predictions []train.Score `json:"predictions"`
}

// classification is predict's line for a text, with the top k labels when asked.
type classification struct {
	train.Prediction
	Top []labelProb `json:"top,omitempty"`
}

type labelProb struct {
	Label string  `json:"label"`
	Prob  float64 `json:"prob"`
}

// classify answers POST /v1/classify for classify and multilabel models, and with each
// text's score for regression models.
func (s *Server) classify(w http.ResponseWriter, r *http.Request) (any, error) {
	task := model.Task(s.t.Spec.Task)
	if !task.Sequence() {
		return nil, s.wrongTask("/v1/classify", "classify, multilabel or regression")
	}
	var req classifyRequest
	if err := s.opts.Limits.decode(w, r, &req); err != nil {
		return nil, err
	}
	if err := s.opts.Limits.checkTexts("texts", req.Texts, s.t.Spec.MaxLength, s.tokens); err != nil {
		return nil, err
	}
	threshold := 0.5
	if req.Threshold != nil {
		switch th := *req.Threshold; {
		case task != model.MultiLabel:
			return nil, invalid("threshold: only for multilabel models; this one is %s", task)
		case !(th >= 0 && th <= 1):
			return nil, invalid("threshold: %v is not in [0, 1]", th)
		}
		threshold = *req.Threshold
	}
	if req.TopK < 0 {
		return nil, invalid("top_k: %d: must not be negative", req.TopK)
	}
	if task == model.Regression {
		if req.TopK > 0 {
			return nil, invalid("top_k: only for classify and multilabel models; this one is regression")
		}
		scores, err := s.via(r.Context()).PredictScores(req.Texts, nil)
		return scoreResponse{Predictions: scores}, err
	}
	preds, err := s.via(r.Context()).Predict(req.Texts, threshold)
	if err != nil {
		return nil, err
	}
	out := classifyResponse{Predictions: make([]classification, len(preds))}
	for i, p := range preds {
		out.Predictions[i].Prediction = p
		if req.TopK > 0 {
			out.Predictions[i].Top = top(p.Probs, req.TopK)
		}
	}
	return out, nil
}

// top is the k most probable labels (all when fewer), most probable first, ties in
// label order.
func top(probs map[string]float64, k int) []labelProb {
	all := make([]labelProb, 0, len(probs))
	for l, p := range probs {
		all = append(all, labelProb{l, p})
	}
	slices.SortFunc(all, func(a, b labelProb) int {
		return cmp.Or(cmp.Compare(b.Prob, a.Prob), cmp.Compare(a.Label, b.Label))
	})
	return all[:min(k, len(all))]
}
