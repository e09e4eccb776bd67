package train

import (
	"fmt"
	"math"

	"github.com/bertnode/bertnode/model"
)

// Embedding is an embedding model's vector for one text.
type Embedding struct {
	Text      string    `json:"text"`
	Embedding []float32 `json:"embedding"`
	Tokens    int       `json:"-"` // the text's tokens the model read, specials included
}

// Embed is each text's vector from an embedding model (task embed), scaled to unit
// length when normalize is set.
func (t *Trainer) Embed(texts []string, normalize bool) ([]Embedding, error) {
	if t.Spec.Task != string(model.Embed) {
		return nil, fmt.Errorf("embed: the checkpoint's task is %s; give --pooling to read its encoder as an embedding model", t.Spec.Task)
	}
	exs, err := t.encodeTexts(texts)
	if err != nil {
		return nil, err
	}
	out := make([]Embedding, 0, len(texts))
	err = t.infer(exs, func(e *Example, row []float32) error {
		v := make([]float32, len(row))
		copy(v, row)
		if normalize {
			Normalize(v)
		}
		out = append(out, Embedding{Text: e.Text, Embedding: v, Tokens: e.Enc.Len()})
		return nil
	})
	return out, err
}

// Normalize scales v to unit Euclidean length, as torch.nn.functional.normalize does
// (sentence-transformers' Normalize module): a zero vector stays zero.
func Normalize(v []float32) {
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	n := max(math.Sqrt(ss), 1e-12)
	for i := range v {
		v[i] = float32(float64(v[i]) / n)
	}
}

// encodeTexts encodes single texts for prediction, truncated to the max length.
func (t *Trainer) encodeTexts(texts []string) ([]Example, error) {
	if len(texts) == 0 {
		return nil, fmt.Errorf("predict: no texts")
	}
	exs := make([]Example, len(texts))
	for i, text := range texts {
		enc, err := t.Tok.Encode(text, t.Spec.MaxLength)
		if err != nil {
			return nil, fmt.Errorf("text %d: %w", i+1, err)
		}
		exs[i] = Example{Enc: enc, Text: text}
	}
	return exs, nil
}
