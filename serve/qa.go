package serve

import (
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/train"
)

// qaRequest is one question (question, context, id) or a list of them (questions).
type qaRequest struct {
	ID        *string      `json:"id"`
	Question  *string      `json:"question"`
	Context   *string      `json:"context"`
	Questions []qaQuestion `json:"questions"`
	// AllowEmpty overrides the server's --allow-empty for this request.
	AllowEmpty *bool `json:"allow_empty"`
}

type qaQuestion struct {
	ID       string `json:"id"` // default: its place in the list, from 1
	Question string `json:"question"`
	Context  string `json:"context"`
}

type qaResponse struct {
	Answers []qaAnswer `json:"answers"`
}

// qaAnswer is predict's answer (train.Answer) with the end of its span: runes
// [start, end) of the context; both -1 with no answer.
type qaAnswer struct {
	ID     string  `json:"id"`
	Answer string  `json:"answer"`
	Start  int     `json:"start"`
	End    int     `json:"end"`
	Score  float64 `json:"score"`
}

// qa answers POST /v1/qa for qa models, with predict's windows and answer search.
func (s *Server) qa(w http.ResponseWriter, r *http.Request) (any, error) {
	if s.t.Spec.Task != string(model.QA) {
		return nil, s.wrongTask("/v1/qa", "qa")
	}
	var req qaRequest
	if err := s.opts.Limits.decode(w, r, &req); err != nil {
		return nil, err
	}
	qs, err := s.questions(&req)
	if err != nil {
		return nil, err
	}
	allowEmpty := s.opts.AllowEmpty
	if req.AllowEmpty != nil {
		allowEmpty = *req.AllowEmpty
	}
	answers, err := s.via(r.Context()).PredictAnswers(qs, allowEmpty)
	if err != nil && !fromServing(err) {
		// What else fails is encoding the input: a question too long for the windows.
		return nil, invalid("%v", err)
	} else if err != nil {
		return nil, err
	}
	out := qaResponse{Answers: make([]qaAnswer, len(answers))}
	for i, a := range answers {
		out.Answers[i] = qaAnswer{ID: a.ID, Answer: a.Answer, Start: a.Start, End: -1, Score: a.Score}
		if a.Start >= 0 {
			out.Answers[i].End = a.Start + utf8.RuneCountInString(a.Answer)
		}
	}
	return out, nil
}

// questions reads the request's questions, naming the field of the first bad one.
func (s *Server) questions(req *qaRequest) ([]train.Question, error) {
	single := req.Question != nil || req.Context != nil || req.ID != nil
	switch {
	case single && req.Questions != nil:
		return nil, invalid("give question and context, or questions, not both")
	case single:
		id := "1"
		if req.ID != nil {
			id = *req.ID
		}
		req.Questions = []qaQuestion{{ID: id, Question: deref(req.Question), Context: deref(req.Context)}}
	case len(req.Questions) == 0:
		return nil, invalid("question and context, or questions: at least one question is required")
	case len(req.Questions) > s.opts.Limits.MaxTexts:
		return nil, tooLarge("questions: %d questions, more than the %d a request may hold", len(req.Questions), s.opts.Limits.MaxTexts)
	}
	qs := make([]train.Question, len(req.Questions))
	for i, q := range req.Questions {
		field := "questions[" + strconv.Itoa(i) + "]."
		if single {
			field = ""
		}
		switch {
		case strings.TrimSpace(q.Question) == "":
			return nil, invalid("%squestion: empty", field)
		case strings.TrimSpace(q.Context) == "":
			return nil, invalid("%scontext: empty", field)
		}
		if q.ID == "" && !single {
			q.ID = strconv.Itoa(i + 1)
		}
		qs[i] = train.Question{ID: q.ID, Question: q.Question, Context: q.Context}
	}
	return qs, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
