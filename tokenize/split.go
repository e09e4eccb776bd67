package tokenize

import (
	"unicode"
	"unicode/utf8"
	"unsafe"

	"golang.org/x/text/unicode/norm"
)

// This file is the BertNormalizer and BertPreTokenizer of Hugging Face tokenizers,
// fused into one pass over the text: each source rune is cleaned, normalized and
// classified (word character, whitespace, punctuation) and word characters are
// collected with the index of the source rune they came from, which is what makes
// offsets exact when normalization changes the text (accents, case, CJK spacing).

type asciiAction uint8

const (
	asciiWord asciiAction = iota
	asciiSpace
	asciiPunct
	asciiDrop
)

func asciiActions(cfg Config) (a [utf8.RuneSelf]asciiAction) {
	for c := range a {
		r := rune(c)
		switch {
		case unicode.IsSpace(r) && !(cfg.CleanText && isControl(r)):
			a[c] = asciiSpace
		case cfg.CleanText && (r == 0 || isControl(r)):
			a[c] = asciiDrop
		case isPunct(r):
			a[c] = asciiPunct
		default:
			a[c] = asciiWord
		}
	}
	return a
}

// isControl is HF tokenizers' is_control: the categories Cc, Cf and Co (its
// unicode_categories "is_other"; Cs cannot occur in a Go string), except tab,
// newline and carriage return. Unassigned code points are not control there,
// unlike in transformers' Python tokenizer.
func isControl(r rune) bool {
	switch r {
	case '\t', '\n', '\r':
		return false
	}
	return unicode.Is(unicode.C, r)
}

// isPunct is HF's is_punctuation: ASCII punctuation (which includes symbols like $ and
// ^) or any Unicode punctuation category.
func isPunct(r rune) bool {
	if r < utf8.RuneSelf {
		return r >= '!' && r <= '/' || r >= ':' && r <= '@' || r >= '[' && r <= '`' || r >= '{' && r <= '~'
	}
	return unicode.IsPunct(r)
}

// isCJK reports a CJK Unified Ideograph, with the ranges of HF's BertNormalizer.
func isCJK(r rune) bool {
	return r >= 0x4E00 && r <= 0x9FFF ||
		r >= 0x3400 && r <= 0x4DBF ||
		r >= 0x20000 && r <= 0x2A6DF ||
		r >= 0x2A700 && r <= 0x2B73F ||
		r >= 0x2B740 && r <= 0x2B81F ||
		r >= 0x2B920 && r <= 0x2CEAF ||
		r >= 0xF900 && r <= 0xFAFF ||
		r >= 0x2F800 && r <= 0x2FA1F
}

// wordCursor hands out word ids: the caller's when the input was pre-split into
// words, else one per pre-tokenized word.
type wordCursor struct {
	fixed int32
	next  int32
}

func (w *wordCursor) take() int32 {
	if w.fixed >= 0 {
		return w.fixed
	}
	w.next++
	return w.next - 1
}

// split appends the word pieces of text to dst. Word ids are fixedWord when it is
// not negative, else the index of each pre-tokenized word.
func (t *wordPiece) split(s *scratch, dst *pieces, text string, fixedWord int32) {
	w := wordCursor{fixed: fixedWord}
	s.word, s.origin, s.nrunes = s.word[:0], s.origin[:0], 0
	var at int32                                                                                   // rune index of the segment's start
	s.p.segs = t.added.find(s.p.segs[:0], unsafe.Slice(unsafe.StringData(text), len(text)), false) // read only
	for _, m := range s.p.segs {
		seg := text[m.from:m.to]
		if m.tok != nil {
			n := int32(utf8.RuneCountInString(seg))
			dst.push(m.tok.ID, Span{at, at + n}, w.take())
			at += n
			continue
		}
		at = t.splitWords(s, dst, &w, seg, at)
	}
}

// splitWords appends the word pieces of text, which holds no added token and starts
// at rune index at; it returns the rune index of its end.
func (t *wordPiece) splitWords(s *scratch, dst *pieces, w *wordCursor, text string, at int32) int32 {
	for i := 0; i < len(text); {
		c := text[i]
		if c < utf8.RuneSelf {
			switch t.ascii[c] {
			case asciiWord:
				if t.cfg.Lowercase && 'A' <= c && c <= 'Z' {
					c += 'a' - 'A'
				}
				s.word = append(s.word, c)
				s.origin = append(s.origin, at)
				s.nrunes++
			case asciiSpace:
				t.flush(s, dst, w)
			case asciiPunct:
				t.flush(s, dst, w)
				s.appendRune(rune(c), at)
				t.flush(s, dst, w)
			}
			i++
			at++
			continue
		}
		r, size := utf8.DecodeRuneInString(text[i:])
		t.addRune(s, dst, w, text[i:i+size], r, at)
		i += size
		at++
	}
	t.flush(s, dst, w)
	return at
}

// addRune handles one non-ASCII source rune r, whose UTF-8 is src.
func (t *wordPiece) addRune(s *scratch, dst *pieces, w *wordCursor, src string, r rune, at int32) {
	if t.cfg.CleanText && (r == utf8.RuneError || isControl(r)) {
		return
	}
	if t.cfg.HandleChineseChars && isCJK(r) {
		t.flush(s, dst, w)
		t.normalize(s, dst, w, src, r, at)
		t.flush(s, dst, w)
		return
	}
	t.normalize(s, dst, w, src, r, at)
}

// normalize strips accents and lowercases r in HF's order, then classifies the result.
func (t *wordPiece) normalize(s *scratch, dst *pieces, w *wordCursor, src string, r rune, at int32) {
	if !t.cfg.StripAccents {
		if t.cfg.Lowercase {
			if r == 'İ' { // the one unconditional multi-rune lowercase mapping
				t.classify(s, dst, w, 'i', at)
				t.classify(s, dst, w, '\u0307', at)
				return
			}
			r = unicode.ToLower(r)
		}
		t.classify(s, dst, w, r, at)
		return
	}
	s.dec = norm.NFD.AppendString(s.dec[:0], src)
	for j := 0; j < len(s.dec); {
		d, n := utf8.DecodeRune(s.dec[j:])
		j += n
		if unicode.Is(unicode.Mn, d) {
			continue
		}
		if t.cfg.Lowercase {
			d = unicode.ToLower(d)
		}
		t.classify(s, dst, w, d, at)
	}
}

// classify is the pre-tokenizer: whitespace ends a word, punctuation is a word of its own.
func (t *wordPiece) classify(s *scratch, dst *pieces, w *wordCursor, r rune, at int32) {
	switch {
	case unicode.IsSpace(r):
		t.flush(s, dst, w)
	case isPunct(r):
		t.flush(s, dst, w)
		s.appendRune(r, at)
		t.flush(s, dst, w)
	default:
		s.appendRune(r, at)
	}
}

func (s *scratch) appendRune(r rune, at int32) {
	n := len(s.word)
	s.word = utf8.AppendRune(s.word, r)
	for range len(s.word) - n {
		s.origin = append(s.origin, at)
	}
	s.nrunes++
}

// flush turns the collected word into word pieces.
func (t *wordPiece) flush(s *scratch, dst *pieces, w *wordCursor) {
	if len(s.word) == 0 {
		return
	}
	t.wordPiece(dst, s.word, s.origin, s.nrunes, w.take())
	s.word, s.origin, s.nrunes = s.word[:0], s.origin[:0], 0
}
