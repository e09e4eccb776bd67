package train

import (
	"fmt"
	"slices"
	"strings"

	"github.com/bertnode/bertnode/metrics"
	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/report"
	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/tokenize"
)

// nerTask is token classification: one tag per word (CoNLL, or jsonl tokens and tags).
// The tag goes on a word's first sub-token; the others and the specials are ignored in
// the loss, and predictions are read back from first sub-tokens.
type nerTask struct{}

// Entities are decoded as seqeval does by default (lenient, conlleval compatible), which
// reads BIO and IOB1 alike, so the scheme needs no setting.
const (
	nerScheme = metrics.BIO
	nerMode   = metrics.Lenient
)

func (nerTask) encode(tok *tokenize.Tokenizer, recs []shard.Record, labels *shard.LabelSet, maxLen int) ([]Example, error) {
	out := make([]Example, 0, len(recs))
	var ids []int32
	for i := range recs {
		rec := &recs[i]
		at := func(format string, args ...any) error {
			return fmt.Errorf("%s:%d: %s", rec.Pos.File, rec.Pos.Line, fmt.Sprintf(format, args...))
		}
		switch {
		case len(rec.Tokens) == 0:
			return nil, at("no tokens (the ner task reads tokens and tags: conll, or jsonl with data.tokens)")
		case len(rec.Tags) != len(rec.Tokens):
			return nil, at("%d tokens but %d tags", len(rec.Tokens), len(rec.Tags))
		}
		// A malformed tag is an error now rather than in the middle of an evaluation.
		if _, err := metrics.Entities(rec.Tags, nerScheme, nerMode); err != nil {
			return nil, at("tags: %v", err)
		}
		ids = ids[:0]
		for _, tag := range rec.Tags {
			id, ok := labels.ID(tag)
			if !ok {
				// Only an evaluation file can hold a tag the training data lacks: the
				// model cannot predict it, so it stays out of the loss but counts as
				// gold in the scores.
				id = tokenize.IgnoreLabel
			}
			ids = append(ids, int32(id))
		}
		enc, err := tok.EncodeWords(rec.Tokens, ids, maxLen)
		if err != nil {
			return nil, at("%v", err)
		}
		out = append(out, Example{Enc: enc, Words: rec.Tokens, Tags: rec.Tags, Pos: rec.Pos})
	}
	return out, nil
}

// label has nothing to add: the collator pads the encodings' token labels into b.Labels.
func (nerTask) label(*model.Batch, []*Example) {}

func (nerTask) scorer(labels []string) scorer {
	return &nerScorer{tags: labels, counts: metrics.NewEntityCounts(nerScheme, nerMode)}
}

// nerScorer reads one tag per word from the first sub-token's logits and counts
// entities as seqeval does. Words truncated away are predicted O.
type nerScorer struct {
	tags     []string // by label id
	counts   *metrics.EntityCounts
	pred     []string
	mistakes []report.Mistake
}

func (s *nerScorer) add(exs []*Example, b *model.Batch, logits []float32) error {
	n := len(s.tags)
	if len(logits) != b.B*b.L*n {
		return fmt.Errorf("ner: %d logits for a batch of %d x %d tokens x %d tags", len(logits), b.B, b.L, n)
	}
	for r, e := range exs {
		var conf float64
		s.pred, conf = wordTags(s.pred[:0], s.tags, &e.Enc, len(e.Words), logits[r*b.L*n:(r+1)*b.L*n])
		if err := s.counts.Add(e.Tags, s.pred); err != nil {
			return fmt.Errorf("%s:%d: %w", e.Pos.File, e.Pos.Line, err)
		}
		if !slices.Equal(e.Tags, s.pred) && !sameEntities(e.Tags, s.pred) {
			s.mistakes = append(s.mistakes, report.Mistake{Text: strings.Join(e.Words, " "),
				Gold: strings.Join(e.Tags, " "), Pred: strings.Join(s.pred, " "), Confidence: conf,
				Source: fmt.Sprintf("%s:%d", e.Pos.File, e.Pos.Line)})
		}
	}
	return nil
}

// wordTags appends to dst the tag of each of nWords words, read from the logits of its
// first sub-token in rows (the sequence's [L, len(tags)] block), and returns the
// sequence's probability, the product of its words'. Words without a token are O.
func wordTags(dst, tags []string, enc *tokenize.Encoding, nWords int, rows []float32) ([]string, float64) {
	return readTags(dst, tags, []nerWindow{{starts: tokenize.WordStarts(enc, nWords), n: enc.Len()}}, [][]float32{rows}, nWords)
}

// nerWindow is one window of a text's words: words [from, from+len(starts)), starts[i]
// being the token of word from+i's first piece in the window's n tokens (-1: none).
type nerWindow struct {
	from   int
	starts []int
	n      int
}

// readTags is wordTags over windows whose logits are rows: each word is read from the
// window where its first piece has the most tokens on its shorter side (the first such
// window on a tie), as SQuAD's "max context" reads overlapping windows.
func readTags(dst, tags []string, wins []nerWindow, rows [][]float32, nWords int) ([]string, float64) {
	n := len(tags)
	conf := 1.0
	for w := range nWords {
		best, at, most := -1, 0, -1
		for k, win := range wins {
			if w < win.from || w >= win.from+len(win.starts) || win.starts[w-win.from] < 0 {
				continue
			}
			tok := win.starts[w-win.from]
			if c := min(tok-1, win.n-2-tok); c > most {
				best, at, most = k, tok, c
			}
		}
		if best < 0 {
			dst = append(dst, "O")
			continue
		}
		p, prob := argmaxSoftmax(rows[best][at*n : (at+1)*n])
		dst = append(dst, tags[p])
		conf *= prob
	}
	return dst, conf
}

// sameEntities says whether two tag sequences, already checked by counts.Add, decode to
// the same entities (B-X and I-X after O are the same entity to a lenient reader).
func sameEntities(gold, pred []string) bool {
	g, _ := metrics.Entities(gold, nerScheme, nerMode)
	p, _ := metrics.Entities(pred, nerScheme, nerMode)
	return slices.Equal(g, p)
}

func (s *nerScorer) result() (EvalResult, error) {
	r := EvalResult{Report: s.counts.Report(), Mistakes: s.mistakes}
	r.Metrics = r.Report.Named()
	r.Metrics["f1"] = r.Report.Micro.F1
	r.Metrics["precision"] = r.Report.Micro.Precision
	r.Metrics["recall"] = r.Report.Micro.Recall
	r.Metrics["accuracy"] = r.Report.Accuracy
	return r, nil
}
