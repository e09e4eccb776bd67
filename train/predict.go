package train

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/bertnode/bertnode/metrics"
	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/tokenize"
)

// Prediction is the model's answer for one text.
type Prediction struct {
	Text string `json:"text"`
	// Label is the most probable class (classify).
	Label string `json:"label,omitempty"`
	// Labels are the predicted classes: Label alone (classify), or every class whose
	// probability reaches the threshold, possibly none (multilabel).
	Labels []string `json:"labels"`
	// Probs is each class's probability: softmax over the classes (classify), or an
	// independent sigmoid per class (multilabel).
	Probs map[string]float64 `json:"probs"`
}

// Predict classifies texts (and, for multilabel, keeps the classes whose probability is
// at least threshold).
func (t *Trainer) Predict(texts []string, threshold float64) ([]Prediction, error) {
	multi := t.Spec.Task == string(model.MultiLabel)
	if !multi && t.Spec.Task != string(model.Classify) {
		return nil, fmt.Errorf("predict: task %s is not supported (classify and multilabel are; regression has PredictScores)", t.Spec.Task)
	}
	exs, err := t.encodeTexts(texts, nil)
	if err != nil {
		return nil, err
	}
	names := t.Labels.Names()
	n := len(names)
	out := make([]Prediction, 0, len(texts))
	probs := make([]float64, n)
	err = t.infer(exs, func(e *Example, row []float32) error {
		p := Prediction{Text: e.Text, Probs: make(map[string]float64, n)}
		if multi {
			p.Labels = []string{}
			for k, v := range row {
				probs[k] = Sigmoid(float64(v))
				if probs[k] >= threshold {
					p.Labels = append(p.Labels, names[k])
				}
			}
		} else {
			softmax(probs, row)
			p.Label = names[slices.Index(probs, slices.Max(probs))]
			p.Labels = []string{p.Label}
		}
		for k, name := range names {
			p.Probs[name] = probs[k]
		}
		out = append(out, p)
		return nil
	})
	return out, err
}

// softmax writes the softmax of logits into dst.
func softmax(dst []float64, logits []float32) {
	top := float64(slices.Max(logits))
	var z float64
	for k, v := range logits {
		dst[k] = math.Exp(float64(v) - top)
		z += dst[k]
	}
	for k := range dst {
		dst[k] /= z
	}
}

// Infer runs encoded sequences through a model and returns each one's logits without
// padding, row-major: classify and multilabel [labels]; ner [tokens, labels]; qa
// [tokens, 2]. InferBatch is one; a server batching sequences across requests is another.
type Infer func(encs []*tokenize.Encoding) ([][]float32, error)

// WithInfer returns a copy of t whose Predict, PredictTags and PredictAnswers hand all
// their encodings to infer at once instead of running them through t.Model
// Spec.BatchSize at a time. The copy's prediction methods touch the model only through
// infer, so they are safe for concurrent use when infer is.
func (t *Trainer) WithInfer(infer Infer) *Trainer {
	c := *t
	c.run = infer
	return &c
}

// InferBatch runs encs through the model as one batch, padded as Spec.Padding says, and
// returns each one's logits without padding (see Infer). It is safe for concurrent use
// from goroutines locked to their OS threads (package model): the weights are only read,
// and each call pads into buffers of its own.
func (t *Trainer) InferBatch(encs []*tokenize.Encoding) ([][]float32, error) {
	cb, err := t.coll.Clone().Collate(encs)
	if err != nil {
		return nil, err
	}
	b := &model.Batch{B: cb.Size, L: cb.Len, InputIDs: cb.InputIDs, TokenTypeIDs: cb.TokenTypeIDs, AttentionMask: cb.AttentionMask}
	logits, _, err := t.Model.Infer(b)
	if err != nil {
		return nil, err
	}
	out := make([][]float32, len(encs))
	perToken := t.Model.Opts.Task == model.NER || t.Model.Opts.Task == model.QA || t.Model.Opts.Task == model.MLM
	row := len(logits) / b.B
	for r, e := range encs {
		n := row
		if perToken {
			n = e.Len() * row / b.L
		}
		out[r] = logits[r*row : r*row+n : r*row+n]
	}
	return out, nil
}

// infer runs exs through the model without gold labels (so without a loss), through
// the Infer of WithInfer all at once, else Spec.BatchSize at a time, and hands each
// example's logits (see Infer) to read in order.
func (t *Trainer) infer(exs []Example, read func(e *Example, logits []float32) error) error {
	run, step := t.run, len(exs)
	if run == nil {
		run, step = t.InferBatch, t.Spec.BatchSize
	}
	encs := make([]*tokenize.Encoding, 0, min(step, len(exs)))
	for i := 0; i < len(exs); i += step {
		encs = encs[:0]
		for j := i; j < min(i+step, len(exs)); j++ {
			encs = append(encs, &exs[j].Enc)
		}
		logits, err := run(encs)
		if err != nil {
			return err
		}
		if len(logits) != len(encs) {
			return fmt.Errorf("predict: %d logits for %d sequences", len(logits), len(encs))
		}
		for k, l := range logits {
			if err := read(&exs[i+k], l); err != nil {
				return err
			}
		}
	}
	return nil
}

// inferRecords is infer over the examples of records (qa's windows, choice's text and
// choice pairs), rec(i) being exs[i]'s record, nondecreasing: without WithInfer, a
// forward pass holds examples of one run of Spec.BatchSize records, so that a block of
// records whose size is a multiple of it batches as the whole file does (a predict
// job's units, bertnode infer, print predict's bytes).
func (t *Trainer) inferRecords(exs []Example, rec func(i int) int, read func(e *Example, logits []float32) error) error {
	if t.run != nil {
		return t.infer(exs, read)
	}
	for i := 0; i < len(exs); {
		j := i + 1
		for j < len(exs) && rec(j)/t.Spec.BatchSize == rec(i)/t.Spec.BatchSize {
			j++
		}
		if err := t.infer(exs[i:j], read); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// Tagged is the ner model's reading of one text.
type Tagged struct {
	Text string `json:"text"`
	// Words are the text split as the tokenizer's pre-tokenizer splits it: whitespace
	// ends a word and every punctuation character is a word of its own.
	Words []string `json:"words"`
	Tags  []string `json:"tags"` // one per word
	// Entities are read from Tags as the ner scorer reads them (seqeval, lenient BIO).
	Entities []Entity `json:"entities"`
	// Confidence is the probability of Tags: the product of each word's.
	Confidence float64 `json:"confidence"`
	// Truncated counts the last words that did not fit in Spec.MaxLength (PredictTags
	// without windows): they are tagged O unread.
	Truncated int `json:"truncated,omitempty"`
}

// Entity is one entity found in a text.
type Entity struct {
	Type string `json:"type"`
	Text string `json:"text"` // the text's runes [Start, End)
	// Start and End are rune offsets in the text, End exclusive.
	Start int `json:"start"`
	End   int `json:"end"`
	// Words are the entity's words [first, last+1) in Tagged.Words.
	Words [2]int `json:"words"`
}

// PredictTags tags the words of each text with a ner checkpoint. Words are first
// sub-tokens as in training (EncodeWords) and are read back as the scorer reads them.
// A text longer than Spec.MaxLength tokens is cut short, its last words tagged O and
// counted in Truncated; with windows it is read instead in windows of whole words that
// share up to Spec.DocStride tokens (default min(128, MaxLength/3)), each word tagged
// from the window where it has the most context on its shorter side.
func (t *Trainer) PredictTags(texts []string, windows bool) ([]Tagged, error) {
	if t.Spec.Task != string(model.NER) {
		return nil, fmt.Errorf("predict: tags need a ner checkpoint, not %s", t.Spec.Task)
	}
	if len(texts) == 0 {
		return nil, fmt.Errorf("predict: no texts")
	}
	tags := t.Labels.Names()
	if _, err := metrics.Entities(tags, nerScheme, nerMode); err != nil {
		return nil, fmt.Errorf("predict: the checkpoint's tags %q: %w", tags, err)
	}
	stride := t.Spec.DocStride
	if stride == 0 {
		stride = docStride(t.Spec.MaxLength)
	}
	var exs []Example
	spans := make([][]tokenize.Span, len(texts)) // each word's runes in its text
	wins := make([][][2]int, len(texts))         // each window's words
	for i, text := range texts {
		words, sp, err := t.splitWords(text)
		if err != nil {
			return nil, fmt.Errorf("text %d: %w", i+1, err)
		}
		spans[i] = sp
		maxLen := t.Spec.MaxLength
		if windows {
			maxLen = 0
		}
		enc, err := t.Tok.EncodeWords(words, nil, maxLen)
		if err != nil {
			return nil, fmt.Errorf("text %d: %w", i+1, err)
		}
		if enc.Len() <= t.Spec.MaxLength {
			wins[i] = [][2]int{{0, len(words)}}
			exs = append(exs, Example{Enc: enc, Text: text, Words: words})
			continue
		}
		wins[i] = planWindows(wordCounts(&enc, len(words)), t.Spec.MaxLength-2, stride)
		for _, w := range wins[i] {
			enc, err := t.Tok.EncodeWords(words[w[0]:w[1]], nil, t.Spec.MaxLength)
			if err != nil {
				return nil, fmt.Errorf("text %d: %w", i+1, err)
			}
			exs = append(exs, Example{Enc: enc, Text: text, Words: words})
		}
	}
	out := make([]Tagged, 0, len(texts))
	var read []nerWindow // the windows of the text being read
	var rows [][]float32
	err := t.infer(exs, func(e *Example, logits []float32) error {
		i := len(out)
		w := wins[i][len(read)]
		read = append(read, nerWindow{from: w[0], starts: tokenize.WordStarts(&e.Enc, w[1]-w[0]), n: e.Enc.Len()})
		rows = append(rows, logits)
		if len(read) < len(wins[i]) {
			return nil
		}
		p := Tagged{Text: e.Text, Words: e.Words, Entities: []Entity{}}
		p.Tags, p.Confidence = readTags(make([]string, 0, len(e.Words)), tags, read, rows, len(e.Words))
		p.Truncated = len(e.Words) - w[0] // of the last window's words, those past its end
		if e.Enc.Len() > 2 {
			p.Truncated -= 1 + int(e.Enc.WordIDs[e.Enc.Len()-2])
		}
		read, rows = read[:0], rows[:0]
		ents, err := metrics.Entities(p.Tags, nerScheme, nerMode)
		if err != nil {
			return err
		}
		sp := spans[i]
		runes := []rune(e.Text)
		for _, en := range ents {
			from, to := sp[en.Start].Start, sp[en.End-1].End
			p.Entities = append(p.Entities, Entity{Type: en.Type, Text: string(runes[from:to]),
				Start: int(from), End: int(to), Words: [2]int{en.Start, en.End}})
		}
		out = append(out, p)
		return nil
	})
	return out, err
}

// wordCounts is the number of tokens of each of nWords words in enc.
func wordCounts(enc *tokenize.Encoding, nWords int) []int {
	counts := make([]int, nWords)
	for _, w := range enc.WordIDs {
		if w >= 0 {
			counts[w]++
		}
	}
	return counts
}

// planWindows cuts words of counts[i] tokens into windows of whole words [from, to) of
// at most budget tokens (a longer word alone), each after the first starting at the
// earliest word from which the previous window's end is at most stride tokens away,
// and at least one word after the previous window's start.
func planWindows(counts []int, budget, stride int) [][2]int {
	var out [][2]int
	for from := 0; ; {
		to, used := from, 0
		for to < len(counts) && (to == from || used+counts[to] <= budget) {
			used += counts[to]
			to++
		}
		out = append(out, [2]int{from, to})
		if to == len(counts) {
			return out
		}
		next, shared := to, 0
		for next-1 > from && shared+counts[next-1] <= stride {
			next--
			shared += counts[next]
		}
		from = next
	}
}

// splitWords splits text into the words of the tokenizer's pre-tokenizer, with the runes
// each spans in text: from its first token's first rune to its last token's last, so a
// word's dropped characters (control characters, or accents stripped off as combining
// marks) are left out at its edges.
func (t *Trainer) splitWords(text string) ([]string, []tokenize.Span, error) {
	enc, err := t.Tok.Encode(text, 0)
	if err != nil {
		return nil, nil, err
	}
	// Word ids count up from 0 in token order: each pre-tokenized word has a token.
	var spans []tokenize.Span
	for i, w := range enc.WordIDs {
		switch {
		case w < 0:
		case int(w) == len(spans):
			spans = append(spans, enc.Offsets[i])
		default:
			spans[w].End = enc.Offsets[i].End
		}
	}
	runes := []rune(text)
	words := make([]string, len(spans))
	for i, sp := range spans {
		words[i] = string(runes[sp.Start:sp.End])
	}
	return words, spans, nil
}

// Question is a question to answer from a context.
type Question struct {
	ID       string
	Question string
	Context  string
	Pos      shard.Pos // where it was read, for errors
}

// Answer is the qa model's answer to one question.
type Answer struct {
	ID     string `json:"id"`
	Answer string `json:"answer"` // empty: no answer
	// Start is the answer's first rune in the context; -1 with no answer.
	Start int `json:"start"`
	// Score is the answer's probability within its window: softmax start times softmax
	// end (with no answer, [CLS]'s).
	Score float64 `json:"score"`
}

// PredictAnswers answers each question from its context with a qa checkpoint, with the
// evaluator's sliding windows (Spec.DocStride) and n-best span search; allowEmpty lets
// the answer be empty where [CLS] outscores every span, as for SQuAD v2.0.
func (t *Trainer) PredictAnswers(qs []Question, allowEmpty bool) ([]Answer, error) {
	if t.Spec.Task != string(model.QA) {
		return nil, fmt.Errorf("predict: questions need a qa checkpoint, not %s", t.Spec.Task)
	}
	if len(qs) == 0 {
		return nil, fmt.Errorf("predict: no questions")
	}
	recs := make([]shard.Record, len(qs))
	for i, q := range qs {
		switch {
		case strings.TrimSpace(q.Question) == "":
			return nil, fmt.Errorf("%s:%d: question %q has no question text", q.Pos.File, q.Pos.Line, q.ID)
		case strings.TrimSpace(q.Context) == "":
			return nil, fmt.Errorf("%s:%d: question %q has no context", q.Pos.File, q.Pos.Line, q.ID)
		}
		recs[i] = shard.Record{Pos: q.Pos, ID: q.ID, Question: q.Question, Context: q.Context}
	}
	task := &qaTask{stride: t.Spec.DocStride, v2: allowEmpty}
	exs, err := task.encode(t.Tok, recs, nil, t.Spec.MaxLength)
	if err != nil {
		return nil, err
	}
	sc := &qaScorer{v2: allowEmpty}
	if err := t.inferRecords(exs, func(i int) int { return exs[i].Window.Example }, func(e *Example, logits []float32) error {
		return sc.add([]*Example{e}, &model.Batch{B: 1, L: e.Enc.Len()}, logits)
	}); err != nil {
		return nil, err
	}
	out := make([]Answer, len(qs))
	for i, q := range qs {
		text, start, prob, err := sc.best[i].answer(allowEmpty)
		if err != nil {
			return nil, err
		}
		out[i] = Answer{ID: q.ID, Answer: text, Start: start, Score: prob}
	}
	return out, nil
}

// Attention returns text's tokens as the model sees them (word pieces, special tokens
// included, truncated to Spec.MaxLength) and every layer's attention over them,
// [layer][head][from][to].
func (t *Trainer) Attention(text string) ([]string, [][][][]float32, error) {
	enc, err := t.Tok.Encode(text, t.Spec.MaxLength)
	if err != nil {
		return nil, nil, err
	}
	b := &model.Batch{B: 1, L: enc.Len(), InputIDs: make([]int64, enc.Len()), TokenTypeIDs: make([]int64, enc.Len()),
		AttentionMask: make([]int64, enc.Len())}
	tokens := make([]string, enc.Len())
	for i, id := range enc.InputIDs {
		b.InputIDs[i], b.TokenTypeIDs[i], b.AttentionMask[i] = int64(id), int64(enc.TokenTypeIDs[i]), 1
		tokens[i] = t.Tok.Vocab().Token(int(id))
	}
	attn, err := t.Model.Attentions(b)
	return tokens, attn, err
}
