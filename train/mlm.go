package train

import (
	"cmp"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/tokenize"
)

// DefaultMLMProbability is the share of tokens an mlm example masks, transformers'
// DataCollatorForLanguageModeling's mlm_probability.
const DefaultMLMProbability = 0.15

// evalMaskSeed seeds the evaluation's masks: with the record alone deciding them, every
// evaluation of a run, and of another run on the same data, scores the same masks.
const evalMaskSeed = 0

// mlmTask trains the masked-LM head on plain texts: each batch masks some of its tokens
// (mask) and labels them with the original ids; the model learns to restore them.
type mlmTask struct{ prob float64 }

// masker is a task whose batches are masked after collation, with the step's seed
// (evalMaskSeed in evaluation): mlm, whose inputs change with each step's masks.
type masker interface {
	mask(tok *tokenize.Tokenizer, b *model.Batch, exs []*Example, seed int64)
}

func (mlmTask) encode(tok *tokenize.Tokenizer, recs []shard.Record, _ *shard.LabelSet, maxLen int) ([]Example, error) {
	out := make([]Example, 0, len(recs))
	for i := range recs {
		rec := &recs[i]
		if strings.TrimSpace(rec.Text) == "" {
			return nil, fmt.Errorf("%s:%d: text: empty: nothing to mask", rec.Pos.File, rec.Pos.Line)
		}
		enc, err := tok.Encode(rec.Text, maxLen)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", rec.Pos.File, rec.Pos.Line, err)
		}
		out = append(out, Example{Enc: enc, Text: rec.Text, Pos: rec.Pos})
	}
	return out, nil
}

// label does nothing: mask labels the batch, with the seed it needs.
func (mlmTask) label(*model.Batch, []*Example) {}

func (t mlmTask) mask(tok *tokenize.Tokenizer, b *model.Batch, exs []*Example, seed int64) {
	b.Labels = make([]int64, len(b.InputIDs))
	for r, e := range exs {
		row := b.InputIDs[r*b.L : (r+1)*b.L]
		maskTokens(row[:e.Enc.Len()], b.Labels[r*b.L:(r+1)*b.L], e.Enc.WordIDs, recordRand(seed, e.Pos), t.prob, int64(tok.MaskID()), int64(tok.Vocab().Len()))
		for j := e.Enc.Len(); j < b.L; j++ {
			b.Labels[r*b.L+j] = model.IgnoreIndex
		}
	}
}

// recordRand is the random source of one record's masks: a function of the seed and the
// record's place in its file, so that a resumed run, or a replica given the record,
// draws the same masks. The file counts by its name alone: the same run from another
// directory masks the same tokens.
func recordRand(seed int64, pos shard.Pos) *rand.Rand {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%d\x00%d", filepath.Base(pos.File), pos.Offset, pos.Index)
	return rand.New(rand.NewPCG(uint64(seed), h.Sum64()))
}

// maskTokens is DataCollatorForLanguageModeling's masking of one sequence's ids, in
// place: each token that is not special (word id -1) is chosen with probability prob;
// a chosen token is labelled with its id and becomes the mask token (80%), a random id
// of [0, vocab) (10%) or stays (10%). Labels elsewhere are -100.
func maskTokens(ids, labels []int64, wordIDs []int32, r *rand.Rand, prob float64, maskID, vocab int64) {
	for j, id := range ids {
		labels[j] = model.IgnoreIndex
		if wordIDs[j] < 0 || r.Float64() >= prob {
			continue
		}
		labels[j] = id
		switch u := r.Float64(); {
		case u < 0.8:
			ids[j] = maskID
		case u < 0.9:
			ids[j] = r.Int64N(vocab)
		}
	}
}

func (mlmTask) scorer([]string) scorer { return &mlmScorer{} }

// mlmScorer scores the masked tokens: the cross-entropy of their original ids, whose
// mean's exponential is the perplexity, and how often the most likely id is the original.
type mlmScorer struct {
	n, correct int
	nll        float64
}

// add reads the masked tokens' rows, in order: the model computes only those when the
// batch has labels.
func (s *mlmScorer) add(_ []*Example, b *model.Batch, logits []float32) error {
	masked := 0
	for _, l := range b.Labels {
		if l != model.IgnoreIndex {
			masked++
		}
	}
	if masked == 0 {
		return nil
	}
	v, i := len(logits)/masked, 0
	for _, l := range b.Labels {
		if l == model.IgnoreIndex {
			continue
		}
		row := logits[i*v : (i+1)*v]
		i++
		best, _ := argmaxSoftmax(row)
		var z float64
		for _, x := range row {
			z += math.Exp(float64(x - row[best]))
		}
		s.nll += math.Log(z) - float64(row[l]-row[best])
		s.n++
		if int64(best) == l {
			s.correct++
		}
	}
	return nil
}

func (s *mlmScorer) result() (EvalResult, error) {
	if s.n == 0 {
		return EvalResult{}, fmt.Errorf("mlm: the evaluation set masked no token: too few or too short texts")
	}
	mean := s.nll / float64(s.n)
	return EvalResult{Metrics: map[string]float64{
		"perplexity": math.Exp(mean), "accuracy": float64(s.correct) / float64(s.n), "masked_loss": mean,
	}}, nil
}

// Fill is one candidate for a masked token, as transformers' fill-mask pipeline gives
// it: the token's probability, its id and text, and the text with the mask replaced.
type Fill struct {
	Score    float64 `json:"score"`
	Token    int     `json:"token"`
	TokenStr string  `json:"token_str"`
	Sequence string  `json:"sequence"`
}

// Filled is one text's candidates: per mask token, in order, the top k.
type Filled struct {
	Text  string   `json:"text"`
	Masks [][]Fill `json:"masks"`
}

// ErrNoMask is a text without the tokenizer's mask token.
var ErrNoMask = errors.New("no mask token")

// FillMask is the top k tokens at each mask token of each text (task mlm). Each
// sequence replaces one mask token's text with the candidate's, leaving any others.
func (t *Trainer) FillMask(texts []string, k int) ([]Filled, error) {
	if t.Spec.Task != string(model.MLM) {
		return nil, fmt.Errorf("fill-mask: the checkpoint's task is %s, not mlm", t.Spec.Task)
	}
	if k < 1 {
		return nil, fmt.Errorf("top_k: %d: must be positive", k)
	}
	maskID := t.Tok.MaskID()
	maskStr := t.Tok.Vocab().Token(int(maskID))
	exs, err := t.encodeTexts(texts, nil)
	if err != nil {
		return nil, err
	}
	for i, e := range exs {
		if !slices.Contains(e.Enc.InputIDs, maskID) {
			return nil, fmt.Errorf("text %d: %w %s within the max length of %d tokens", i+1, ErrNoMask, maskStr, t.Spec.MaxLength)
		}
	}
	out := make([]Filled, 0, len(texts))
	err = t.infer(exs, func(e *Example, logits []float32) error {
		v := len(logits) / e.Enc.Len()
		parts := strings.Split(e.Text, maskStr) // the text around its mask tokens
		f := Filled{Text: e.Text}
		for j, id := range e.Enc.InputIDs {
			if id != maskID {
				continue
			}
			var fills []Fill
			for _, c := range mostProbable(logits[j*v:(j+1)*v], k) {
				s := t.Tok.TokenText(int32(c.id))
				fills = append(fills, Fill{Score: c.p, Token: c.id, TokenStr: s, Sequence: fillSequence(parts, maskStr, len(f.Masks), s)})
			}
			f.Masks = append(f.Masks, fills)
		}
		out = append(out, f)
		return nil
	})
	return out, err
}

type candidate struct {
	id int
	p  float64
}

// mostProbable is the k most probable ids of a softmax over logits, most probable first.
func mostProbable(logits []float32, k int) []candidate {
	best, _ := argmaxSoftmax(logits)
	var z float64
	for _, x := range logits {
		z += math.Exp(float64(x - logits[best]))
	}
	c := make([]candidate, len(logits))
	for i, x := range logits {
		c[i] = candidate{i, math.Exp(float64(x-logits[best])) / z}
	}
	slices.SortStableFunc(c, func(a, b candidate) int { return cmp.Compare(b.p, a.p) })
	return c[:min(k, len(c))]
}

// fillSequence is the text whose parts surround its mask tokens with the n-th mask
// replaced by s; if the text does not spell the mask token as the vocabulary does
// (its count differs), s goes nowhere and the text stays.
func fillSequence(parts []string, maskStr string, n int, s string) string {
	if n >= len(parts)-1 {
		return strings.Join(parts, maskStr)
	}
	return strings.Join(parts[:n+1], maskStr) + s + strings.Join(parts[n+1:], maskStr)
}
