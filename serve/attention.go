package serve

import (
	"net/http"

	"github.com/bertnode/bertnode/model"
)

type attentionRequest struct {
	Text string `json:"text"`
}

// attentionResponse is the text's tokens as the model sees them ([CLS] and [SEP]
// included) and each layer's and head's attention over them, [layer][head][from][to].
type attentionResponse struct {
	Tokens     []string        `json:"tokens"`
	Attentions [][][][]float32 `json:"attentions"`
}

// attention answers POST /v1/attention for one text (not for qa models, whose input is
// a question and a context), on the model's goroutine between batches.
func (s *Server) attention(w http.ResponseWriter, r *http.Request) (any, error) {
	if s.t.Spec.Task == string(model.QA) {
		return nil, s.wrongTask("/v1/attention", "classify, multilabel, regression or ner")
	}
	var req attentionRequest
	if err := s.opts.Limits.decode(w, r, &req); err != nil {
		return nil, err
	}
	if err := s.opts.Limits.checkText("text", req.Text, s.t.Spec.MaxLength, s.tokens); err != nil {
		return nil, err
	}
	var out attentionResponse
	err := s.batch.Do(r.Context(), func() error {
		var err error
		if out.Tokens, out.Attentions, err = s.t.Attention(req.Text); err != nil {
			return &RunError{Err: err}
		}
		return nil
	})
	return out, err
}
