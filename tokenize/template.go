package tokenize

import (
	"fmt"
	"strings"
)

// template is the post-processor: where special tokens go around the sequences and
// which token type each part gets. It covers HF's TemplateProcessing,
// BertProcessing ([CLS] A [SEP] B [SEP]) and RobertaProcessing (<s> A </s></s> B
// </s>, all type 0).
type template struct {
	single, pair []tmplItem
}

// tmplItem is a special token (id >= 0) or sequence seq (A: 0, B: 1).
type tmplItem struct {
	id  int32
	seq int8
	typ int32
}

func special(id, typ int32) tmplItem { return tmplItem{id: id, typ: typ} }
func sequence(seq int8, typ int32) tmplItem {
	return tmplItem{id: -1, seq: seq, typ: typ}
}

func bertTemplate(cls, sep int32) template {
	return template{
		single: []tmplItem{special(cls, 0), sequence(0, 0), special(sep, 0)},
		pair:   []tmplItem{special(cls, 0), sequence(0, 0), special(sep, 0), sequence(1, 1), special(sep, 1)},
	}
}

func robertaTemplate(cls, sep int32) template {
	return template{
		single: []tmplItem{special(cls, 0), sequence(0, 0), special(sep, 0)},
		pair:   []tmplItem{special(cls, 0), sequence(0, 0), special(sep, 0), special(sep, 0), sequence(1, 0), special(sep, 0)},
	}
}

// mpnetTemplate is MPNetConverter's <s> A </s></s> B </s>, B and its </s> of type 1.
func mpnetTemplate(cls, sep int32) template {
	return template{
		single: []tmplItem{special(cls, 0), sequence(0, 0), special(sep, 0)},
		pair:   []tmplItem{special(cls, 0), sequence(0, 0), special(sep, 0), special(sep, 0), sequence(1, 1), special(sep, 1)},
	}
}

// doubleSep says whether the pair layout separates its sequences with two special tokens,
// as RoBERTa's and MPNet's <s> A </s></s> B </s>.
func (t *template) doubleSep() bool {
	for i := 1; i+1 < len(t.pair); i++ {
		if t.pair[i].id >= 0 && t.pair[i+1].id >= 0 && t.pair[i-1].id < 0 {
			return true
		}
	}
	return false
}

// specials is the number of special tokens of the single or pair layout.
func (t *template) specials(pair bool) int {
	items := t.single
	if pair {
		items = t.pair
	}
	n := 0
	for _, it := range items {
		if it.id >= 0 {
			n++
		}
	}
	return n
}

// build lays out a's first na pieces (and for a pair b's pieces [bFrom, bTo)); it
// returns the encoding and where b's pieces start and end in it.
func (t *template) build(a *pieces, na int, b *pieces, bFrom, bTo int, labelled bool) (e Encoding, bStart, bEnd int) {
	items := t.single
	if b != nil {
		items = t.pair
	}
	e = newEncoding(na+bTo-bFrom+len(items), labelled)
	for _, it := range items {
		switch {
		case it.id >= 0:
			e.pushSpecial(it.id, it.typ)
		case it.seq == 0:
			e.pushPieces(a, 0, na, it.typ)
		default:
			bStart = e.Len()
			e.pushPieces(b, bFrom, bTo, it.typ)
			bEnd = e.Len()
		}
	}
	return e, bStart, bEnd
}

// String renders the layout as HF writes templates, for errors and tests.
func (t *template) String(vocab *Vocab) string {
	render := func(items []tmplItem) string {
		parts := make([]string, len(items))
		for i, it := range items {
			if it.id >= 0 {
				parts[i] = fmt.Sprintf("%s:%d", vocab.Token(int(it.id)), it.typ)
			} else {
				parts[i] = fmt.Sprintf("$%c:%d", 'A'+it.seq, it.typ)
			}
		}
		return strings.Join(parts, " ")
	}
	return render(t.single) + " | " + render(t.pair)
}
