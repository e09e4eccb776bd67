package tokenize

import "fmt"

// EncodeWords encodes text that is already split into words (a CoNLL sentence) with
// the single-sequence special tokens, the way HF does with is_split_into_words: each
// word is tokenized on its own, WordIDs index words, and offsets count runes within
// each word. Byte-level BPE puts a space before every word, as transformers requires
// (add_prefix_space=True) for pre-split input. With labels (one per word; nil for inference) a word's first token carries
// its label and its other tokens IgnoreLabel, so only first sub-tokens count in the
// loss. Words that produce no token (only control characters, say) lose their label,
// as in HF; WordStarts finds them.
func (t *Tokenizer) EncodeWords(words []string, labels []int32, maxLen int) (Encoding, error) {
	if labels != nil && len(labels) != len(words) {
		return Encoding{}, fmt.Errorf("tokenize: %d words but %d labels", len(words), len(labels))
	}
	ns := t.post.specials(false)
	if maxLen < 0 || maxLen > 0 && maxLen < ns {
		return Encoding{}, fmt.Errorf("tokenize: max length %d leaves no room for the %d special tokens", maxLen, ns)
	}
	s := t.getScratch()
	defer t.putScratch(s)
	s.a.reset()
	algo := t.algo
	if t.words != nil {
		algo = t.words
	}
	for i, w := range words {
		algo.split(s, &s.a, w, int32(i))
	}
	n := len(s.a.ids)
	if maxLen > 0 {
		n = min(n, maxLen-ns)
	}
	e, _, _ := t.post.build(&s.a, n, nil, 0, 0, labels != nil)
	if labels != nil {
		e.Labels = e.Labels[:0]
		prev := int32(-1)
		for _, w := range e.WordIDs {
			switch {
			case w < 0 || w == prev:
				e.Labels = append(e.Labels, IgnoreLabel)
			default:
				e.Labels = append(e.Labels, labels[w])
			}
			if w >= 0 {
				prev = w
			}
		}
	}
	return e, nil
}

// WordStarts returns, for each of nWords words, the index of its first token in e,
// or -1 for a word that produced no token or was truncated away: how per-token
// predictions are read back as one prediction per word.
func WordStarts(e *Encoding, nWords int) []int {
	starts := make([]int, nWords)
	for i := range starts {
		starts[i] = -1
	}
	for i := len(e.WordIDs) - 1; i >= 0; i-- {
		if w := e.WordIDs[i]; w >= 0 && int(w) < nWords {
			starts[w] = i
		}
	}
	return starts
}
