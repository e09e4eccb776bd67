package tokenize

import "fmt"

// IgnoreLabel marks a token that does not count in the loss (PyTorch's ignore_index).
const IgnoreLabel = -100

// Span is a half-open range of runes in a source text.
type Span struct{ Start, End int32 }

// Encoding is one model input before padding. Its slices are parallel, one entry per
// token. They hold int32 to halve the memory of a cached dataset; Collate widens them
// into the int64 batch buffers libtorch takes.
type Encoding struct {
	InputIDs     []int32
	TokenTypeIDs []int32 // 0 for the first sequence and its special tokens, 1 for the second
	Offsets      []Span  // runes of the token in the text it came from; {0,0} for special tokens
	WordIDs      []int32 // word of the token within its sequence; -1 for special tokens
	Labels       []int32 // per-token labels, IgnoreLabel where unlabelled; nil for none
}

// Len is the number of tokens.
func (e *Encoding) Len() int { return len(e.InputIDs) }

// newEncoding allocates an empty encoding with room for n tokens: one block for the
// int32 columns and one for the offsets.
func newEncoding(n int, labelled bool) Encoding {
	cols := 3
	if labelled {
		cols = 4
	}
	block := make([]int32, 0, cols*n)
	col := func(i int) []int32 { return block[i*n : i*n : (i+1)*n] }
	e := Encoding{InputIDs: col(0), TokenTypeIDs: col(1), WordIDs: col(2), Offsets: make([]Span, 0, n)}
	if labelled {
		e.Labels = col(3)
	}
	return e
}

func (e *Encoding) pushSpecial(id, typ int32) {
	e.InputIDs = append(e.InputIDs, id)
	e.TokenTypeIDs = append(e.TokenTypeIDs, typ)
	e.Offsets = append(e.Offsets, Span{})
	e.WordIDs = append(e.WordIDs, -1)
	if e.Labels != nil {
		e.Labels = append(e.Labels, IgnoreLabel)
	}
}

// pushPieces appends p[from:to] as sequence typ.
func (e *Encoding) pushPieces(p *pieces, from, to int, typ int32) {
	e.InputIDs = append(e.InputIDs, p.ids[from:to]...)
	e.Offsets = append(e.Offsets, p.spans[from:to]...)
	e.WordIDs = append(e.WordIDs, p.words[from:to]...)
	for range to - from {
		e.TokenTypeIDs = append(e.TokenTypeIDs, typ)
	}
}

// Encode tokenizes one text with the special tokens of the tokenizer's family
// ([CLS] text [SEP] for BERT and ALBERT, <s> text </s> for RoBERTa), truncating the
// text as the tokenizer's Truncation says so the whole is at most maxLen tokens; maxLen
// 0 means no limit.
func (t *Tokenizer) Encode(text string, maxLen int) (Encoding, error) {
	ns := t.post.specials(false)
	if maxLen < 0 || maxLen > 0 && maxLen < ns {
		return Encoding{}, fmt.Errorf("tokenize: max length %d leaves no room for the %d special tokens", maxLen, ns)
	}
	s := t.getScratch()
	defer t.putScratch(s)
	s.a.reset()
	t.algo.split(s, &s.a, text, -1)
	n := len(s.a.ids)
	if maxLen > 0 {
		n = min(n, maxLen-ns)
	}
	t.trunc.keep(&s.a, n, true)
	e, _, _ := t.post.build(&s.a, n, nil, 0, 0, false)
	return e, nil
}

// EncodePair tokenizes a text pair ([CLS] a [SEP] b [SEP] for BERT, <s> a </s></s> b
// </s> for RoBERTa). When the pair is longer than maxLen (0: no limit) it truncates
// the longer text first, as HF's longest_first strategy does.
func (t *Tokenizer) EncodePair(a, b string, maxLen int) (Encoding, error) {
	ns := t.post.specials(true)
	if maxLen < 0 || maxLen > 0 && maxLen < ns {
		return Encoding{}, fmt.Errorf("tokenize: max length %d leaves no room for the %d special tokens of a pair", maxLen, ns)
	}
	s := t.getScratch()
	defer t.putScratch(s)
	s.a.reset()
	s.b.reset()
	t.algo.split(s, &s.a, a, -1)
	t.algo.split(s, &s.b, b, -1)
	na, nb := len(s.a.ids), len(s.b.ids)
	if maxLen > 0 {
		na, nb = longestFirst(na, nb, maxLen-ns)
	}
	t.trunc.keep(&s.a, na, false)
	t.trunc.keep(&s.b, nb, false)
	e, _, _ := t.post.build(&s.a, na, &s.b, 0, nb, false)
	return e, nil
}

// longestFirst returns how many tokens of each sequence to keep within budget, with
// the arithmetic of HF tokenizers' LongestFirst truncation.
func longestFirst(n1, n2, budget int) (int, int) {
	if n1+n2 <= budget {
		return n1, n2
	}
	swap := n1 > n2
	if swap {
		n1, n2 = n2, n1
	}
	if n1 > budget {
		n2 = n1
	} else {
		n2 = max(n1, budget-n1)
	}
	if n1+n2 > budget {
		n1 = budget / 2
		n2 = n1 + budget%2
	}
	if swap {
		n1, n2 = n2, n1
	}
	return n1, n2
}
