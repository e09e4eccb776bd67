package serve

import (
	"net/http"
	"strconv"

	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/train"
)

// choiceRequest is one question (text, choices) or a list of them (questions).
type choiceRequest struct {
	Text      *string                `json:"text"`
	Choices   []string               `json:"choices"`
	Questions []train.ChoiceQuestion `json:"questions"`
}

type choiceResponse struct {
	Answers []train.ChoiceAnswer `json:"answers"`
}

// choice answers POST /v1/choice for multiple-choice models: predict's pick and the
// probability of each choice.
func (s *Server) choice(w http.ResponseWriter, r *http.Request) (any, error) {
	if s.t.Spec.Task != string(model.Choice) {
		return nil, s.wrongTask("/v1/choice", "choice")
	}
	var req choiceRequest
	if err := s.opts.Limits.decode(w, r, &req); err != nil {
		return nil, err
	}
	qs := req.Questions
	switch {
	case req.Text != nil && qs != nil:
		return nil, invalid("text and questions: give one question or a list, not both")
	case req.Text != nil:
		qs = []train.ChoiceQuestion{{Text: *req.Text, Choices: req.Choices}}
	case req.Choices != nil:
		return nil, invalid("choices: give them with text")
	case len(qs) == 0:
		return nil, invalid("text and choices, or questions: required")
	case len(qs) > s.opts.Limits.MaxTexts:
		return nil, tooLarge("questions: %d, more than the %d a request may hold", len(qs), s.opts.Limits.MaxTexts)
	}
	maxLen := s.t.Spec.MaxLength
	for i, q := range qs {
		field := "questions[" + strconv.Itoa(i) + "]."
		if req.Text != nil {
			field = ""
		}
		if err := s.opts.Limits.checkText(field+"text", q.Text, maxLen, s.tokens); err != nil {
			return nil, err
		}
		if len(q.Choices) < 2 {
			return nil, invalid("%schoices: %d; want two or more", field, len(q.Choices))
		}
		if err := s.opts.Limits.checkTexts(field+"choices", q.Choices, maxLen, s.pairTokens(q.Text)); err != nil {
			return nil, err
		}
	}
	answers, err := s.via(r.Context()).PredictChoices(qs)
	if err != nil {
		return nil, err
	}
	return choiceResponse{Answers: answers}, nil
}
