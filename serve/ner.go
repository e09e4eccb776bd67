package serve

import (
	"net/http"

	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/train"
)

type nerRequest struct {
	Texts []string `json:"texts"`
}

type nerResponse struct {
	Predictions []train.Tagged `json:"predictions"`
}

// ner answers POST /v1/ner for ner models: predict's words, tags and entities, texts
// longer than the max length read in windows (or refused, without Limits.Truncate).
func (s *Server) ner(w http.ResponseWriter, r *http.Request) (any, error) {
	if s.t.Spec.Task != string(model.NER) {
		return nil, s.wrongTask("/v1/ner", "ner")
	}
	var req nerRequest
	if err := s.opts.Limits.decode(w, r, &req); err != nil {
		return nil, err
	}
	if err := s.opts.Limits.checkTexts("texts", req.Texts, s.t.Spec.MaxLength, s.tokens); err != nil {
		return nil, err
	}
	tagged, err := s.via(r.Context()).PredictTags(req.Texts, true)
	if err != nil {
		return nil, err
	}
	return nerResponse{Predictions: tagged}, nil
}
