package tokenize

import "unicode/utf8"

// This file is the NormalizedString of Hugging Face tokenizers, reduced to what the
// BPE and Unigram pipelines use: a normalized UTF-8 text in which every byte keeps the
// byte range of the original text it came from. Token offsets are read off these
// alignments, so each normalizer must move them exactly as HF's does, including its
// quirks (a replacement takes the alignment of the last byte it replaces).

// bspan is a half-open byte range of the original text.
type bspan struct{ s, e int32 }

// normStr is a normalized text and, for each of its bytes, the original bytes it
// stands for. Alignments are absolute offsets into the text given to the tokenizer.
type normStr struct {
	b     []byte
	align []bspan
	orig  int32 // original byte offset where this piece starts (HF's original_shift)
}

// rchange is one character of a transformation's output, as in HF's transform:
// change 0 replaces the next original character, 1 inserts a new one, and -n
// replaces the next character and removes the n after it.
type rchange struct {
	r      rune
	change int32
}

// reset makes n the identity normalization of src, which starts at byte base of the
// original text.
func (n *normStr) reset(src string, base int32) {
	n.b = append(n.b[:0], src...)
	n.align = n.align[:0]
	n.orig = base
	for i := 0; i < len(src); {
		size := 1
		if src[i] >= utf8.RuneSelf {
			_, size = utf8.DecodeRuneInString(src[i:])
		}
		sp := bspan{base + int32(i), base + int32(i+size)}
		for range size {
			n.align = append(n.align, sp)
		}
		i += size
	}
}

// slice copies the normalized bytes [from, to) of src into n.
func (n *normStr) slice(src *normStr, from, to int) {
	n.b = append(n.b[:0], src.b[from:to]...)
	n.align = append(n.align[:0], src.align[from:to]...)
	n.orig = src.orig
	if to > from {
		n.orig = src.align[from].s
	}
}

// span is the original range of the normalized bytes [from, to).
func (n *normStr) span(from, to int) bspan {
	return bspan{n.align[from].s, n.align[to-1].e}
}

// transform replaces the whole normalized text with dest, with the arithmetic of
// HF's NormalizedString::transform_range; initialOffset original characters at the
// start are removed. tmp is scratch space and is left holding the old text.
func (n *normStr) transform(dest []rchange, initialOffset int, tmp *normStr) {
	old := n.b
	pos := 0 // byte in old of the next character to replace
	for range initialOffset {
		_, size := utf8.DecodeRune(old[pos:])
		pos += size
	}
	tmp.b, tmp.align = tmp.b[:0], tmp.align[:0]
	for _, d := range dest {
		var al bspan
		switch {
		case d.change > 0 && pos < 1:
			al = bspan{n.orig, n.orig}
		case d.change > 0:
			al = n.align[pos-1]
		case pos < len(n.align):
			al = n.align[pos]
		default: // more replacements than characters: HF would panic
			al = n.align[len(n.align)-1]
		}
		if d.change <= 0 && pos < len(old) {
			_, size := utf8.DecodeRune(old[pos:])
			pos += size
		}
		for k := int32(0); k < -d.change && pos < len(old); k++ {
			_, size := utf8.DecodeRune(old[pos:])
			pos += size
		}
		before := len(tmp.b)
		tmp.b = utf8.AppendRune(tmp.b, d.r)
		for range len(tmp.b) - before {
			tmp.align = append(tmp.align, al)
		}
	}
	n.b, tmp.b = tmp.b, n.b
	n.align, tmp.align = tmp.align, n.align
}

// mapRunes replaces every character by f's output, each new character keeping the
// alignment of the one it came from: what HF's lowercase, NFD and NFKD amount to
// when a character maps to one or more characters in place. f appends to dst.
func (n *normStr) mapRunes(f func(dst []rune, r rune) []rune, tmp *normStr, buf []rune) []rune {
	tmp.b, tmp.align = tmp.b[:0], tmp.align[:0]
	for i := 0; i < len(n.b); {
		r, size := utf8.DecodeRune(n.b[i:])
		al := n.align[i]
		buf = f(buf[:0], r)
		for _, o := range buf {
			before := len(tmp.b)
			tmp.b = utf8.AppendRune(tmp.b, o)
			for range len(tmp.b) - before {
				tmp.align = append(tmp.align, al)
			}
		}
		i += size
	}
	n.b, tmp.b = tmp.b, n.b
	n.align, tmp.align = tmp.align, n.align
	return buf
}

// replaceAt replaces the matches [start, end) (sorted, disjoint) with content, as
// HF's NormalizedString::replace: every character of content takes the alignment of
// the last byte it replaces.
func (n *normStr) replaceAt(matches [][2]int, content string, tmp *normStr) {
	tmp.b, tmp.align = tmp.b[:0], tmp.align[:0]
	last := 0
	for _, m := range matches {
		tmp.b = append(tmp.b, n.b[last:m[0]]...)
		tmp.align = append(tmp.align, n.align[last:m[0]]...)
		al := bspan{n.orig, n.orig}
		if m[1] > 0 {
			al = n.align[m[1]-1]
		}
		tmp.b = append(tmp.b, content...)
		for range len(content) {
			tmp.align = append(tmp.align, al)
		}
		last = m[1]
	}
	tmp.b = append(tmp.b, n.b[last:]...)
	tmp.align = append(tmp.align, n.align[last:]...)
	n.b, tmp.b = tmp.b, n.b
	n.align, tmp.align = tmp.align, n.align
}

// prepend puts s before the text, aligned with its first character, as HF's prepend.
func (n *normStr) prepend(s string, tmp *normStr) {
	if len(n.b) == 0 {
		return
	}
	al := n.align[0]
	tmp.b = append(append(tmp.b[:0], s...), n.b...)
	tmp.align = tmp.align[:0]
	for range len(s) {
		tmp.align = append(tmp.align, al)
	}
	tmp.align = append(tmp.align, n.align...)
	n.b, tmp.b = tmp.b, n.b
	n.align, tmp.align = tmp.align, n.align
}
