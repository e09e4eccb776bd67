package train

import (
	"fmt"
	"math"
	"slices"

	"github.com/bertnode/bertnode/metrics"
	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/tokenize"
)

// regressionTask predicts numbers for a text or a text pair (STS-B's similarity, a
// cross-encoder's relevance): transformers' problem_type regression. The labels are
// the scores as written (no normalisation); labels names the outputs.
type regressionTask struct{}

func (regressionTask) encode(tok *tokenize.Tokenizer, recs []shard.Record, labels *shard.LabelSet, maxLen int) ([]Example, error) {
	out := make([]Example, 0, len(recs))
	for i := range recs {
		rec := &recs[i]
		enc, err := encodeText(tok, rec.Text, rec.TextPair, maxLen)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", rec.Pos.File, rec.Pos.Line, err)
		}
		if len(rec.Labels) != labels.Len() {
			return nil, &shard.Error{Pos: rec.Pos, Field: "label", Msg: fmt.Sprintf("%d scores; the model has %d outputs", len(rec.Labels), labels.Len())}
		}
		ex := Example{Enc: enc, Text: rec.Text, Pos: rec.Pos, Target: make([]float32, len(rec.Labels))}
		for k, l := range rec.Labels {
			// The readers checked the scores (shard.Spec.Scores); records made elsewhere
			// are checked here.
			if ex.Target[k], err = shard.ParseScore(l); err != nil {
				return nil, &shard.Error{Pos: rec.Pos, Field: "label", Msg: err.Error()}
			}
		}
		out = append(out, ex)
	}
	return out, nil
}

func (regressionTask) label(b *model.Batch, exs []*Example) {
	multiLabelTask{}.label(b, exs) // the same Targets, scores instead of 0/1
}

func (regressionTask) scorer(labels []string) scorer { return &regressionScorer{n: len(labels)} }

// regressionScorer pools every output's gold and predicted values.
type regressionScorer struct {
	n          int
	gold, pred []float64
}

func (s *regressionScorer) add(exs []*Example, _ *model.Batch, logits []float32) error {
	if len(logits) != len(exs)*s.n {
		return fmt.Errorf("regression: %d outputs for %d examples of %d", len(logits), len(exs), s.n)
	}
	for r, e := range exs {
		for k := range s.n {
			s.gold = append(s.gold, float64(e.Target[k]))
			s.pred = append(s.pred, float64(logits[r*s.n+k]))
		}
	}
	return nil
}

func (s *regressionScorer) result() (EvalResult, error) {
	r, err := metrics.Regression(s.gold, s.pred)
	if err != nil {
		return EvalResult{}, err
	}
	return EvalResult{Metrics: map[string]float64{
		"mse": r.MSE, "rmse": r.RMSE, "mae": r.MAE, "pearson": r.Pearson, "spearman": r.Spearman,
		// run_glue's STS-B combined_score
		"pearson_spearman": (r.Pearson + r.Spearman) / 2,
	}}, nil
}

// Score is a regression model's prediction for a text or a text pair.
type Score struct {
	Text     string `json:"text"`
	TextPair string `json:"text_pair,omitempty"`
	// Score is the output of a one-output model (the usual regression head); Scores
	// every output of a model with several.
	Score  *float64  `json:"score,omitempty"`
	Scores []float64 `json:"scores,omitempty"`
}

// PredictScores runs a regression model over texts, each paired with pairs[i] when
// pairs is set and pairs[i] is not empty.
func (t *Trainer) PredictScores(texts, pairs []string) ([]Score, error) {
	if t.Spec.Task != string(model.Regression) {
		return nil, fmt.Errorf("predict: scores are a regression model's; this one is %s", t.Spec.Task)
	}
	rows, err := t.PairLogits(texts, pairs)
	if err != nil {
		return nil, err
	}
	out := make([]Score, len(rows))
	for i, row := range rows {
		out[i].Text = texts[i]
		if pairs != nil {
			out[i].TextPair = pairs[i]
		}
		v := make([]float64, len(row))
		for k, x := range row {
			v[k] = float64(x)
		}
		if len(v) == 1 {
			out[i].Score = &v[0]
		} else {
			out[i].Scores = v
		}
	}
	return out, nil
}

// PairLogits runs a sequence model (classify, multilabel, regression) over texts, each
// encoded with pairs[i] as its second sequence when pairs is set and pairs[i] is not
// empty, as training encodes text pairs, and returns each one's logits.
func (t *Trainer) PairLogits(texts, pairs []string) ([][]float32, error) {
	if !model.Task(t.Spec.Task).Sequence() {
		return nil, fmt.Errorf("predict: task %s has no sequence head (classify, multilabel and regression have)", t.Spec.Task)
	}
	exs, err := t.encodeTexts(texts, pairs)
	if err != nil {
		return nil, err
	}
	out := make([][]float32, 0, len(exs))
	err = t.infer(exs, func(_ *Example, row []float32) error {
		out = append(out, slices.Clone(row))
		return nil
	})
	return out, err
}

// encodeTexts encodes texts (with pairs, as PairLogits says) for prediction.
func (t *Trainer) encodeTexts(texts, pairs []string) ([]Example, error) {
	switch {
	case len(texts) == 0:
		return nil, fmt.Errorf("predict: no texts")
	case pairs != nil && len(pairs) != len(texts):
		return nil, fmt.Errorf("predict: %d texts, %d pairs", len(texts), len(pairs))
	}
	exs := make([]Example, len(texts))
	for i, text := range texts {
		var pair string
		if pairs != nil {
			pair = pairs[i]
		}
		enc, err := encodeText(t.Tok, text, pair, t.Spec.MaxLength)
		if err != nil {
			return nil, fmt.Errorf("text %d: %w", i+1, err)
		}
		exs[i] = Example{Enc: enc, Text: text}
	}
	return exs, nil
}

// encodeText encodes text, with pair as its second sequence unless it is empty.
func encodeText(tok *tokenize.Tokenizer, text, pair string, maxLen int) (tokenize.Encoding, error) {
	if pair != "" {
		return tok.EncodePair(text, pair, maxLen)
	}
	return tok.Encode(text, maxLen)
}

// Sigmoid is the logistic function, a one-output model's logit as a probability.
func Sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
