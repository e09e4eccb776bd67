package tokenize

import (
	"unicode"
	"unicode/utf8"
	"unsafe"
)

// pipeline is Hugging Face tokenizers' encoding of one sequence for the models that
// are not WordPiece: added tokens are cut out of the raw text, the rest is
// normalized, cut again at added tokens that match normalized text, split into
// words by the pre-tokenizer, and each word into model pieces. Offsets come from
// the alignments the normalizer keeps, converted to runes at the end.
type pipeline struct {
	added *addedVocab
	norm  normStep // nil: none
	pre   preTokenizer
	model subwordModel

	// The ByteLevel post-processing of RobertaProcessing (or a ByteLevel processor):
	// offsets lose the spaces at the edges of their token.
	trim, trimPrefixSpace bool
}

// preTokenizer splits one normalized piece of text into words, appending their
// [from, to) byte ranges in n to s.words. It may change n (prefix space, ▁).
type preTokenizer interface {
	split(n *normStr, s *pipeScratch)
	// byteLevel reports whether pieces are bytes shown as GPT-2's characters, where
	// only byte 0x20 (Ġ) counts as a space when offsets are trimmed.
	byteLevel() bool
}

// subwordModel splits one word into tokens, appended to s.toks with byte ranges
// relative to the word.
type subwordModel interface {
	tokenize(word []byte, s *pipeScratch)
}

// tok is one model token within a word.
type tok struct {
	id         int32
	start, end int32
}

// pipeScratch is the working memory of one pipeline call.
type pipeScratch struct {
	seg, sub, tmp normStr
	runeAt        []int32 // rune index of each byte of the text, for non-ASCII text
	ascii         bool
	runes         []rune
	dec           []byte
	changes       []rchange
	matches       [][2]int
	words         [][2]int
	toks          []tok
	best          []viterbiNode
	syms          []tok
	links         []bpeLink
	queue         bpeQueue
	segs, subs    []addedMatch
}

func (p *pipeline) split(s *scratch, dst *pieces, text string, fixedWord int32) {
	ps := &s.p
	w := wordCursor{fixed: fixedWord}
	ps.setText(text)
	ps.segs = p.added.find(ps.segs[:0], unsafe.Slice(unsafe.StringData(text), len(text)), false) // read only
	for _, m := range ps.segs {
		if m.tok != nil {
			p.push(dst, ps, m.tok.ID, bspan{int32(m.from), int32(m.to)}, text[m.from:m.to], false, w.take())
			continue
		}
		ps.seg.reset(text[m.from:m.to], int32(m.from))
		if p.norm != nil {
			p.norm.normalize(&ps.seg, ps)
		}
		p.splitNormalized(dst, ps, &w)
	}
}

// splitNormalized handles the normalized segment ps.seg: added tokens that match
// normalized text, then words.
func (p *pipeline) splitNormalized(dst *pieces, ps *pipeScratch, w *wordCursor) {
	seg := &ps.seg
	if len(seg.b) == 0 {
		return
	}
	ps.subs = p.added.find(ps.subs[:0], seg.b, true)
	for _, m := range ps.subs {
		if m.tok != nil {
			p.push(dst, ps, m.tok.ID, seg.span(m.from, m.to), string(seg.b[m.from:m.to]), false, w.take())
			continue
		}
		ps.sub.slice(seg, m.from, m.to)
		p.words(dst, ps, w)
	}
}

func (p *pipeline) words(dst *pieces, ps *pipeScratch, w *wordCursor) {
	sub := &ps.sub
	ps.words = ps.words[:0]
	p.pre.split(sub, ps)
	byteLevel := p.pre.byteLevel()
	for _, wd := range ps.words {
		if wd[1] <= wd[0] {
			continue
		}
		word := sub.b[wd[0]:wd[1]]
		ps.toks = ps.toks[:0]
		p.model.tokenize(word, ps)
		wid := w.take()
		for _, t := range ps.toks {
			from, to := wd[0]+int(t.start), wd[0]+int(t.end)
			p.push(dst, ps, t.id, sub.span(from, to), string(sub.b[from:to]), byteLevel, wid)
		}
	}
}

// push appends one token whose original bytes are sp and whose text is value.
func (p *pipeline) push(dst *pieces, ps *pipeScratch, id int32, sp bspan, value string, byteLevel bool, wid int32) {
	r := ps.runeSpan(sp)
	if p.trim {
		r = trimOffsets(r, value, byteLevel, len(dst.ids) == 0, p.trimPrefixSpace)
	}
	dst.push(id, r, wid)
}

// trimOffsets is HF's process_offsets: the offsets of a token lose its leading and
// trailing spaces, except the one space add_prefix_space put before the first word.
func trimOffsets(r Span, value string, byteLevel, first, addPrefixSpace bool) Span {
	isSpace := func(c rune) bool { return c == 'Ġ' || unicode.IsSpace(c) }
	if byteLevel {
		isSpace = func(c rune) bool { return c == ' ' }
	}
	lead, trail := 0, 0
	for _, c := range value {
		if !isSpace(c) {
			break
		}
		lead++
	}
	for i := len(value); i > 0; {
		c, size := utf8.DecodeLastRuneInString(value[:i])
		if !isSpace(c) {
			break
		}
		trail++
		i -= size
	}
	if lead > 0 {
		if (first || r.Start == 0) && addPrefixSpace && lead == 1 {
			lead = 0
		}
		r.Start = min(r.Start+int32(lead), r.End)
	}
	if trail > 0 && int(r.End) >= trail {
		r.End = max(r.End-int32(trail), r.Start)
	}
	return r
}

// setText prepares the byte-to-rune map of text.
func (ps *pipeScratch) setText(text string) {
	ps.ascii = true
	for i := 0; i < len(text); i++ {
		if text[i] >= utf8.RuneSelf {
			ps.ascii = false
			break
		}
	}
	if ps.ascii {
		return
	}
	ps.runeAt = ps.runeAt[:0]
	n := int32(0)
	for i := 0; i < len(text); {
		_, size := utf8.DecodeRuneInString(text[i:])
		for range size {
			ps.runeAt = append(ps.runeAt, n)
		}
		n++
		i += size
	}
	ps.runeAt = append(ps.runeAt, n) // the end of the text
}

// runeSpan converts original bytes to runes as HF's BytesToCharOffsetConverter.
func (ps *pipeScratch) runeSpan(sp bspan) Span {
	if ps.ascii {
		return Span{sp.s, sp.e}
	}
	if sp.e <= sp.s {
		return Span{ps.runeAt[sp.s], ps.runeAt[sp.s]}
	}
	return Span{ps.runeAt[sp.s], ps.runeAt[sp.e-1] + 1}
}
