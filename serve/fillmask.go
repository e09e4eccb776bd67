package serve

import (
	"errors"
	"net/http"

	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/train"
)

type fillMaskRequest struct {
	Texts []string `json:"texts"`
	TopK  *int     `json:"top_k"` // default 5, as transformers' fill-mask pipeline
}

type fillMaskResponse struct {
	Predictions []train.Filled `json:"predictions"`
}

// fillMask answers POST /v1/fill-mask for mlm models: the most probable tokens at each
// mask token of each text, as predict prints them.
func (s *Server) fillMask(w http.ResponseWriter, r *http.Request) (any, error) {
	if s.t.Spec.Task != string(model.MLM) {
		return nil, s.wrongTask("/v1/fill-mask", "mlm")
	}
	var req fillMaskRequest
	if err := s.opts.Limits.decode(w, r, &req); err != nil {
		return nil, err
	}
	if err := s.opts.Limits.checkTexts("texts", req.Texts, s.t.Spec.MaxLength, s.tokens); err != nil {
		return nil, err
	}
	k := 5
	if req.TopK != nil {
		if k = *req.TopK; k < 1 || k > s.t.Tok.Vocab().Len() {
			return nil, invalid("top_k: %d is not in [1, %d], the vocabulary's size", k, s.t.Tok.Vocab().Len())
		}
	}
	preds, err := s.via(r.Context()).FillMask(req.Texts, k)
	if errors.Is(err, train.ErrNoMask) { // found before any text reaches the model
		return nil, invalid("texts: %v", err)
	} else if err != nil {
		return nil, err
	}
	return fillMaskResponse{Predictions: preds}, nil
}
