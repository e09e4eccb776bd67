package tokenize

import (
	"fmt"
	"unicode/utf8"
)

// QAExample is one extractive question answering example.
type QAExample struct {
	ID       string // named in errors
	Question string
	Context  string
	Answers  []Answer // none: unanswerable (SQuAD v2 is_impossible)
}

// Answer is a gold answer. Start counts runes in the context, as SQuAD's answer_start does.
type Answer struct {
	Text  string
	Start int
}

// QAFeature is one window of an example laid out as a pair: [CLS] question [SEP]
// context-window [SEP] (<s> question </s></s> context-window </s> for RoBERTa).
// Question tokens have offsets into the question, context tokens into the context.
type QAFeature struct {
	Encoding
	Example      int // index of its example in EncodeQA's input (HF's overflow_to_sample_mapping)
	ContextStart int // the context tokens of this window are [ContextStart, ContextEnd)
	ContextEnd   int
	// Token span of the first answer; 0, 0 ([CLS]) when the example has no answer
	// or the answer is not wholly inside this window.
	StartPosition, EndPosition int
}

// EncodeQA encodes examples for extractive QA with HF's sliding window: the question
// is kept whole, the context is cut into windows so that each feature has at most
// maxLen tokens, and consecutive windows share stride context tokens.
func (t *Tokenizer) EncodeQA(examples []QAExample, maxLen, stride int) ([]QAFeature, error) {
	if stride < 0 {
		return nil, fmt.Errorf("tokenize: negative doc stride %d", stride)
	}
	s := t.getScratch()
	defer t.putScratch(s)
	var feats []QAFeature
	for ei := range examples {
		ex := &examples[ei]
		if err := checkAnswers(ex); err != nil {
			return nil, err
		}
		s.a.reset()
		s.b.reset()
		t.algo.split(s, &s.a, ex.Question, -1)
		t.algo.split(s, &s.b, ex.Context, -1)
		nq, nc := len(s.a.ids), len(s.b.ids)
		window := maxLen - nq - t.post.specials(true)
		if window <= stride {
			return nil, fmt.Errorf("tokenize: example %q: question of %d tokens leaves %d of max length %d for the context, not more than doc stride %d",
				ex.ID, nq, max(window, 0), maxLen, stride)
		}
		for from := 0; ; from += window - stride {
			to := min(from+window, nc)
			f := QAFeature{Example: ei}
			f.Encoding, f.ContextStart, f.ContextEnd = t.post.build(&s.a, nq, &s.b, from, to, false)
			if len(ex.Answers) > 0 {
				a := ex.Answers[0]
				f.StartPosition, f.EndPosition, _ = f.TokenSpan(a.Start, a.Start+utf8.RuneCountInString(a.Text))
			}
			feats = append(feats, f)
			if to == nc {
				break
			}
		}
	}
	return feats, nil
}

func checkAnswers(ex *QAExample) error {
	for i, a := range ex.Answers {
		n := utf8.RuneCountInString(a.Text)
		got, ok := runeSlice(ex.Context, a.Start, a.Start+n)
		switch {
		case n == 0:
			return fmt.Errorf("tokenize: example %q: answer %d is empty", ex.ID, i)
		case !ok:
			return fmt.Errorf("tokenize: example %q: answer %d at rune %d runs past the context (%d runes)",
				ex.ID, i, a.Start, utf8.RuneCountInString(ex.Context))
		case got != a.Text:
			return fmt.Errorf("tokenize: example %q: answer %d is %q but the context has %q at rune %d",
				ex.ID, i, a.Text, got, a.Start)
		}
	}
	return nil
}

// TokenSpan maps the context runes [startRune, endRune) to the tokens that cover them
// in this window, with the rules of HF's run_qa.py. ok is false, and the span 0, 0
// ([CLS]), when the runes are not wholly inside the window.
func (f *QAFeature) TokenSpan(startRune, endRune int) (start, end int, ok bool) {
	if f.ContextStart == f.ContextEnd ||
		int(f.Offsets[f.ContextStart].Start) > startRune || int(f.Offsets[f.ContextEnd-1].End) < endRune {
		return 0, 0, false
	}
	// The last token starting at or before the answer, and the first ending at or
	// after it. Unlike run_qa.py the scan stays inside the context, which fixes its
	// edge case of an answer in the window's last token.
	start = f.ContextStart
	for start+1 < f.ContextEnd && int(f.Offsets[start+1].Start) <= startRune {
		start++
	}
	end = f.ContextEnd - 1
	for end-1 >= f.ContextStart && int(f.Offsets[end-1].End) >= endRune {
		end--
	}
	// Crossed scans (which run_qa.py leaves, an end before the start) mean the
	// tokens from end to start each cover the whole answer: the bytes of one
	// character in byte-level BPE. The answer is all of them.
	if start > end {
		start, end = end, start
	}
	return start, end, true
}

// AnswerText is the inverse map for evaluation: the context text from the start of
// token start to the end of token end, both inclusive. ok is false unless both are
// context tokens of this window with start <= end.
func (f *QAFeature) AnswerText(context string, start, end int) (string, bool) {
	if start < f.ContextStart || end >= f.ContextEnd || start > end {
		return "", false
	}
	return runeSlice(context, int(f.Offsets[start].Start), int(f.Offsets[end].End))
}

// runeSlice returns the runes [from, to) of s.
func runeSlice(s string, from, to int) (string, bool) {
	if from < 0 || to < from {
		return "", false
	}
	bFrom := -1
	i := 0
	for b := range s {
		if i == from {
			bFrom = b
		}
		if i == to {
			return s[bFrom:b], true
		}
		i++
	}
	if i == to {
		if bFrom < 0 {
			bFrom = len(s)
		}
		return s[bFrom:], true
	}
	return "", false
}
