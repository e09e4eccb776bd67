package tokenize

import "strings"

// TokenText is one vocabulary token as the text it stands for, trimmed, as a
// fill-mask candidate shows it: WordPiece's continuation mark "##" dropped, a byte-level
// BPE token's GPT-2 characters turned back into its bytes (a token that holds only part
// of a character's bytes shows U+FFFD for them), SentencePiece's ▁ as a space.
func (t *Tokenizer) TokenText(id int32) string {
	tok := t.vocab.Token(int(id))
	switch p, _ := t.algo.(*pipeline); {
	case t.kind == WordPiece:
		tok = strings.TrimPrefix(tok, "##")
	case p != nil && p.pre.byteLevel():
		if b, ok := fromByteChars(tok); ok { // added tokens (<mask>) are written as they are
			tok = strings.ToValidUTF8(string(b), "\uFFFD")
		}
	default:
		tok = strings.ReplaceAll(tok, "▁", " ")
	}
	return strings.TrimSpace(tok)
}
