package tokenize

import "testing"

// Each family's tokens read as the text they stand for: byte-level BPE's GPT-2
// characters as UTF-8 (a partial character as U+FFFD), ▁ and ## gone, added tokens kept.
func TestTokenText(t *testing.T) {
	for _, c := range []struct {
		tk        *Tokenizer
		tok, want string
	}{
		{tinyRoberta(t), "Ġto", "to"},
		{tinyRoberta(t), "ĠÂ£", "£"},
		{tinyRoberta(t), "ĠÃ¼", "ü"},
		{tinyRoberta(t), "âĢĺ", "\u2018"},
		{tinyRoberta(t), "âĢ", "\uFFFD"},
		{tinyRoberta(t), "ĠĊ", ""},
		{tinyRoberta(t), "<mask>", "<mask>"},
		{tinyAlbert(t), "▁to", "to"},
		{tinyAlbert(t), "ing", "ing"},
		{tinyAlbert(t), "[MASK]", "[MASK]"},
		{bert(t, true), "##ing", "ing"},
		{bert(t, true), "the", "the"},
	} {
		id, ok := c.tk.Vocab().ID(c.tok)
		if !ok {
			t.Fatalf("%s: no token %q", c.tk.Algorithm(), c.tok)
		}
		if got := c.tk.TokenText(id); got != c.want {
			t.Errorf("%s %q: %q, want %q", c.tk.Algorithm(), c.tok, got, c.want)
		}
	}
}
