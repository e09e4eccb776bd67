package tokenize

import "fmt"

// Truncation is which tokens of a text longer than the max length stay.
type Truncation struct {
	// Left cuts the text's start, so that its end stays: transformers'
	// truncation_side "left", as tokenizer_config.json records it.
	Left bool
	// Head, with Left, keeps the text's first Head tokens as well as its end: head+tail
	// truncation (Sun et al., 2019, "How to Fine-Tune BERT for Text Classification?":
	// 128 + 382 tokens classified long reviews best). Single texts only; each text of a
	// pair keeps its end. tokenizer_config.json records it as bertnode_truncation_head,
	// which transformers does not read (it truncates on the left alone).
	Head int
}

// SetTruncation sets which tokens of a text too long for the max length stay; set it
// before the tokenizer is shared.
func (t *Tokenizer) SetTruncation(tr Truncation) error {
	if tr.Head < 0 || tr.Head > 0 && !tr.Left {
		return fmt.Errorf("tokenize: truncation head %d: want 0, or a positive count with left truncation", tr.Head)
	}
	t.trunc = tr
	return nil
}

// Truncation is the tokenizer's truncation.
func (t *Tokenizer) Truncation() Truncation { return t.trunc }

// keep makes p's first n pieces the ones tr keeps (build takes the first n).
func (tr Truncation) keep(p *pieces, n int, single bool) {
	if !tr.Left || len(p.ids) <= n {
		return
	}
	head := 0
	if single {
		head = min(tr.Head, n)
	}
	from := len(p.ids) - (n - head)
	p.ids = append(p.ids[:head], p.ids[from:]...)
	p.spans = append(p.spans[:head], p.spans[from:]...)
	p.words = append(p.words[:head], p.words[from:]...)
}

// config records tr in a tokenizer_config.json.
func (tr Truncation) config(c map[string]any) {
	if tr.Left {
		c["truncation_side"] = "left"
	}
	if tr.Head > 0 {
		c["bertnode_truncation_head"] = tr.Head
	}
}
