package train

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/report"
	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/tokenize"
)

// choiceTask is multiple choice (SWAG, RACE, CommonsenseQA...): each record's text
// read with each of its choices as a text pair, the label the right choice's index.
type choiceTask struct{}

func (choiceTask) encode(tok *tokenize.Tokenizer, recs []shard.Record, _ *shard.LabelSet, maxLen int) ([]Example, error) {
	out := make([]Example, 0, len(recs))
	for i := range recs {
		rec := &recs[i]
		at := fmt.Sprintf("%s:%d", rec.Pos.File, rec.Pos.Line)
		if n := len(recs[0].Choices); len(rec.Choices) != n {
			return nil, fmt.Errorf("%s: choices: %d, where the first record has %d: every example needs as many (batches hold whole examples)", at, len(rec.Choices), n)
		}
		if len(rec.Labels) != 1 {
			return nil, fmt.Errorf("%s: label: %d labels; want the right choice's index", at, len(rec.Labels))
		}
		label, err := strconv.Atoi(rec.Labels[0])
		if err != nil || label < 0 || label >= len(rec.Choices) {
			return nil, fmt.Errorf("%s: label: %q is not a choice's index in [0, %d)", at, rec.Labels[0], len(rec.Choices))
		}
		ex := Example{Text: rec.Text, Label: label, Pos: rec.Pos, ChoiceTexts: rec.Choices}
		if ex.ChoiceEncs, err = encodeChoices(tok, rec.Text, rec.Choices, maxLen); err != nil {
			return nil, fmt.Errorf("%s: %w", at, err)
		}
		ex.Enc = ex.ChoiceEncs[0]
		out = append(out, ex)
	}
	return out, nil
}

// encodeChoices encodes text with each choice as its pair, as transformers' run_swag.
func encodeChoices(tok *tokenize.Tokenizer, text string, choices []string, maxLen int) ([]tokenize.Encoding, error) {
	encs := make([]tokenize.Encoding, len(choices))
	for k, c := range choices {
		if strings.TrimSpace(c) == "" {
			return nil, fmt.Errorf("choices[%d]: empty", k)
		}
		var err error
		if encs[k], err = tok.EncodePair(text, c, maxLen); err != nil {
			return nil, fmt.Errorf("choices[%d]: %w", k, err)
		}
	}
	return encs, nil
}

func (choiceTask) label(b *model.Batch, exs []*Example) {
	b.Labels = make([]int64, len(exs))
	for i, e := range exs {
		b.Labels[i] = int64(e.Label)
	}
}

func (choiceTask) scorer([]string) scorer { return &choiceScorer{} }

// choiceScorer is multiple choice's accuracy; a wrong choice is a mistake.
type choiceScorer struct {
	right, n int
	mistakes []report.Mistake
}

func (s *choiceScorer) add(exs []*Example, b *model.Batch, logits []float32) error {
	c := b.Choices
	if c*len(exs) != len(logits) {
		return fmt.Errorf("choice: %d scores for %d examples of %d choices", len(logits), len(exs), c)
	}
	for i, e := range exs {
		p, prob := argmaxSoftmax(logits[i*c : (i+1)*c])
		s.n++
		if p == e.Label {
			s.right++
			continue
		}
		s.mistakes = append(s.mistakes, report.Mistake{Text: e.Text, Gold: e.ChoiceTexts[e.Label], Pred: e.ChoiceTexts[p],
			Confidence: prob, Source: fmt.Sprintf("%s:%d", e.Pos.File, e.Pos.Line)})
	}
	return nil
}

func (s *choiceScorer) result() (EvalResult, error) {
	return EvalResult{Metrics: map[string]float64{"accuracy": float64(s.right) / math.Max(1, float64(s.n))}, Mistakes: s.mistakes}, nil
}

// ChoiceQuestion is a multiple-choice question to answer: a text and its choices.
type ChoiceQuestion struct {
	Text    string   `json:"text"`
	Choices []string `json:"choices"`
}

// ChoiceAnswer is the model's pick: the choice, its index, and the softmax over the
// choices.
type ChoiceAnswer struct {
	Text   string    `json:"text"`
	Choice string    `json:"choice"`
	Index  int       `json:"index"`
	Probs  []float64 `json:"probs"`
}

// PredictChoices answers multiple-choice questions, any number of choices each.
func (t *Trainer) PredictChoices(qs []ChoiceQuestion) ([]ChoiceAnswer, error) {
	if t.Spec.Task != string(model.Choice) {
		return nil, fmt.Errorf("predict: task %s does not choose (choice does)", t.Spec.Task)
	}
	var exs []Example // every (text, choice) pair, question by question
	var question []int
	for i, q := range qs {
		if len(q.Choices) < 2 {
			return nil, fmt.Errorf("question %d: choices: %d; want two or more", i+1, len(q.Choices))
		}
		encs, err := encodeChoices(t.Tok, q.Text, q.Choices, t.Spec.MaxLength)
		if err != nil {
			return nil, fmt.Errorf("question %d: %w", i+1, err)
		}
		for _, e := range encs {
			exs = append(exs, Example{Enc: e})
			question = append(question, i)
		}
	}
	scores := make([]float32, 0, len(exs))
	if err := t.inferRecords(exs, func(i int) int { return question[i] }, func(_ *Example, row []float32) error {
		scores = append(scores, row[0])
		return nil
	}); err != nil {
		return nil, err
	}
	out := make([]ChoiceAnswer, len(qs))
	for i, q := range qs {
		row := scores[:len(q.Choices)]
		scores = scores[len(q.Choices):]
		best, _ := argmaxSoftmax(row)
		out[i] = ChoiceAnswer{Text: q.Text, Choice: q.Choices[best], Index: best, Probs: make([]float64, len(row))}
		softmax(out[i].Probs, row)
	}
	return out, nil
}
