package tokenize

import (
	"bytes"
	"regexp"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// The normalizers of tokenizer.json that BPE and Unigram models use (ALBERT's
// Sequence of Replace, NFKD, StripAccents, Lowercase, Precompiled). Each one leaves
// the text untouched, without rebuilding it, when it would not change it: the common
// case on ASCII text, and what keeps these pipelines fast.

type normStep interface {
	normalize(n *normStr, s *pipeScratch)
}

type seqNormalizer []normStep

func (q seqNormalizer) normalize(n *normStr, s *pipeScratch) {
	for _, x := range q {
		x.normalize(n, s)
	}
}

// replaceNormalizer is HF's Replace with a literal ("String") or regular expression
// ("Regex") pattern.
type replaceNormalizer struct {
	literal   string
	re        *regexp.Regexp
	spaceRuns bool // the pattern is ALBERT's " {2,}", matched without the regexp engine
	content   string
}

func (r *replaceNormalizer) normalize(n *normStr, s *pipeScratch) {
	s.matches = s.matches[:0]
	switch {
	case r.spaceRuns:
		for i := 0; i < len(n.b); i++ {
			if n.b[i] != ' ' {
				continue
			}
			j := i + 1
			for j < len(n.b) && n.b[j] == ' ' {
				j++
			}
			if j-i >= 2 {
				s.matches = append(s.matches, [2]int{i, j})
			}
			i = j
		}
	case r.re != nil:
		for _, m := range r.re.FindAllIndex(n.b, -1) {
			if m[1] > m[0] {
				s.matches = append(s.matches, [2]int{m[0], m[1]})
			}
		}
	default:
		for at := 0; ; {
			i := bytes.Index(n.b[at:], []byte(r.literal))
			if i < 0 {
				break
			}
			s.matches = append(s.matches, [2]int{at + i, at + i + len(r.literal)})
			at += i + len(r.literal)
		}
	}
	if len(s.matches) > 0 {
		n.replaceAt(s.matches, r.content, &s.tmp)
	}
}

// formNormalizer is NFD or NFKD: each character is decomposed in place, the new
// characters sharing its alignment. (HF's canonical reordering of combining marks
// across characters is not reproduced: input is rarely out of order.)
type formNormalizer struct{ form norm.Form }

func (f formNormalizer) normalize(n *normStr, s *pipeScratch) {
	if f.form.IsNormal(n.b) {
		return
	}
	s.runes = n.mapRunes(func(dst []rune, r rune) []rune {
		s.dec = f.form.AppendString(s.dec[:0], string(r))
		for _, d := range string(s.dec) {
			dst = append(dst, d)
		}
		return dst
	}, &s.tmp, s.runes)
}

// stripAccents removes combining marks (general category M), as HF's StripAccents.
type stripAccents struct{}

func (stripAccents) normalize(n *normStr, s *pipeScratch) {
	found := false
	for i := 0; i < len(n.b); {
		if n.b[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRune(n.b[i:])
		if unicode.Is(unicode.M, r) {
			found = true
			break
		}
		i += size
	}
	if found {
		n.filter(func(r rune) bool { return !unicode.Is(unicode.M, r) }, s)
	}
}

// filter keeps the characters for which keep is true, with the transformation HF's
// NormalizedString::filter builds: removed characters are charged to the kept
// character before them, or to the start.
func (n *normStr) filter(keep func(rune) bool, s *pipeScratch) {
	s.changes = s.changes[:0]
	removed, removedStart := int32(0), 0
	var last rune
	haveLast := false
	for _, c := range string(n.b) {
		if !keep(c) {
			removed++
			continue
		}
		if haveLast {
			s.changes = append(s.changes, rchange{last, -removed})
		} else {
			removedStart = int(removed)
		}
		last, haveLast, removed = c, true, 0
	}
	if haveLast {
		s.changes = append(s.changes, rchange{last, -removed})
	}
	n.transform(s.changes, removedStart, &s.tmp)
}

// lowercase is HF's Lowercase: Rust's char::to_lowercase, whose one multi-character
// mapping is İ.
type lowercase struct{}

func (lowercase) normalize(n *normStr, s *pipeScratch) {
	changed := false
	for i := 0; i < len(n.b); {
		c := n.b[i]
		if c < utf8.RuneSelf {
			if 'A' <= c && c <= 'Z' {
				changed = true
				break
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(n.b[i:])
		if unicode.ToLower(r) != r || r == 'İ' {
			changed = true
			break
		}
		i += size
	}
	if !changed {
		return
	}
	s.runes = n.mapRunes(func(dst []rune, r rune) []rune {
		if r == 'İ' {
			return append(dst, 'i', '\u0307')
		}
		return append(dst, unicode.ToLower(r))
	}, &s.tmp, s.runes)
}

// strip is HF's Strip: leading and/or trailing whitespace removed.
type strip struct{ left, right bool }

func (st strip) normalize(n *normStr, s *pipeScratch) {
	text := string(n.b)
	lead, trail := 0, 0
	if st.left {
		for _, r := range text {
			if !unicode.IsSpace(r) {
				break
			}
			lead++
		}
	}
	total := utf8.RuneCountInString(text)
	if st.right && lead < total {
		for i := len(text); i > 0; {
			r, size := utf8.DecodeLastRuneInString(text[:i])
			if !unicode.IsSpace(r) {
				break
			}
			trail++
			i -= size
		}
	}
	if lead == 0 && trail == 0 {
		return
	}
	s.changes = s.changes[:0]
	i := 0
	for _, r := range text {
		if i >= lead && i < total-trail {
			s.changes = append(s.changes, rchange{r, 0})
		}
		i++
	}
	n.transform(s.changes, lead, &s.tmp)
}
