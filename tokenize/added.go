package tokenize

import (
	"bytes"
	"slices"
	"unicode"
	"unicode/utf8"
)

// addedToken is an entry of tokenizer.json's added_tokens: a token matched whole in
// the text before the model sees it (special tokens such as <s> and [MASK]).
type addedToken struct {
	ID         int32  `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	Lstrip     bool   `json:"lstrip"`
	Rstrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`

	match []byte // what is searched: Content, or what the normalizer makes of it
}

// addedVocab finds added tokens in text the way HF's AddedVocabulary does: leftmost
// longest matches, first of the tokens that match raw text, then, in each normalized
// segment between them, of the tokens marked normalized.
type addedVocab struct {
	tokens    []*addedToken
	raw, norm addedMatcher
}

type addedMatcher struct {
	toks []*addedToken // longest first
	lead [256]bool     // first bytes of toks
	// only is the first byte of every token where they share one (BERT's '[',
	// RoBERTa's '<'), else -1: find then jumps to its next occurrence (IndexByte)
	// instead of looking at every byte.
	only int
}

// addedMatch is a piece of text: an added token, or (tok nil) text between them.
type addedMatch struct {
	from, to int
	tok      *addedToken
}

// newAddedVocab indexes tokens; normalized tokens are searched as the pipeline's
// normalizer (nil: none) writes them.
func newAddedVocab(tokens []*addedToken, nz normStep) *addedVocab {
	a := &addedVocab{tokens: tokens}
	var s pipeScratch
	for _, t := range tokens {
		if t.Content == "" {
			continue
		}
		t.match = []byte(t.Content)
		m := &a.raw
		if t.Normalized {
			m = &a.norm
			if nz != nil {
				s.seg.reset(t.Content, 0)
				nz.normalize(&s.seg, &s)
				t.match = slices.Clone(s.seg.b)
			}
		}
		if len(t.match) == 0 {
			continue
		}
		m.toks = append(m.toks, t)
		m.lead[t.match[0]] = true
	}
	for _, m := range []*addedMatcher{&a.raw, &a.norm} {
		slices.SortStableFunc(m.toks, func(x, y *addedToken) int { return len(y.match) - len(x.match) })
		m.only = -1
		if len(m.toks) > 0 && !slices.ContainsFunc(m.toks, func(t *addedToken) bool { return t.match[0] != m.toks[0].match[0] }) {
			m.only = int(m.toks[0].match[0])
		}
	}
	return a
}

// find appends the pieces of text to dst: the raw tokens' matches, or with
// normalized the normalized tokens' ones.
func (a *addedVocab) find(dst []addedMatch, text []byte, normalized bool) []addedMatch {
	m := &a.raw
	if normalized {
		m = &a.norm
	}
	if len(text) == 0 {
		return dst
	}
	if len(m.toks) == 0 {
		return append(dst, addedMatch{0, len(text), nil})
	}
	startOffset := 0
	for i := 0; i < len(text); {
		if m.only >= 0 {
			k := bytes.IndexByte(text[i:], byte(m.only))
			if k < 0 {
				break
			}
			i += k
		} else if !m.lead[text[i]] {
			i++
			continue
		}
		var t *addedToken
		for _, c := range m.toks {
			if bytes.HasPrefix(text[i:], c.match) {
				t = c
				break
			}
		}
		if t == nil {
			i++
			continue
		}
		start, stop := i, i+len(t.match)
		i = stop
		if t.SingleWord && (start > 0 && endsWithWord(text[:start]) || stop < len(text) && startsWithWord(text[stop:])) {
			continue
		}
		if t.Lstrip {
			start = max(trailingSpaceStart(text[:start]), startOffset)
		}
		if t.Rstrip {
			stop += leadingSpaceLen(text[stop:])
		}
		if startOffset < start {
			dst = append(dst, addedMatch{startOffset, start, nil})
		}
		dst = append(dst, addedMatch{start, stop, t})
		startOffset = stop
	}
	if startOffset < len(text) {
		dst = append(dst, addedMatch{startOffset, len(text), nil})
	}
	return dst
}

// isWordRune is the regex class \w of Rust's regex crate.
func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.Is(unicode.M, r) || unicode.Is(unicode.Nd, r) ||
		unicode.Is(unicode.Pc, r) || r == 0x200C || r == 0x200D
}

func endsWithWord(b []byte) bool {
	r, _ := utf8.DecodeLastRune(b)
	return isWordRune(r)
}

func startsWithWord(b []byte) bool {
	r, _ := utf8.DecodeRune(b)
	return isWordRune(r)
}

func trailingSpaceStart(b []byte) int {
	i := len(b)
	for i > 0 {
		r, size := utf8.DecodeLastRune(b[:i])
		if !unicode.IsSpace(r) {
			break
		}
		i -= size
	}
	return i
}

func leadingSpaceLen(b []byte) int {
	i := 0
	for i < len(b) {
		r, size := utf8.DecodeRune(b[i:])
		if !unicode.IsSpace(r) {
			break
		}
		i += size
	}
	return i
}
