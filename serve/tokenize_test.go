package serve

import (
	"strings"
	"testing"
)

// /v1/tokenize answers the tokens the model reads: the tokenizer's ids, [CLS] and
// [SEP] marked special, each word piece's runes in the text, cut at the max length.
func TestTokenize(t *testing.T) {
	dir := checkpoint(t, "classify")
	srv := start(t, load(t, dir), nil)
	tok := load(t, dir).Tok
	text := "Zoë visited Zürich twice"
	long := strings.Repeat("word ", maxLen)
	got := post[tokenizeResponse](t, srv.url+"/v1/tokenize", jsonBody(t, map[string]any{"texts": []string{text, long}}))
	if len(got.Tokens) != 2 {
		t.Fatalf("%d token lists for 2 texts", len(got.Tokens))
	}
	enc, err := tok.Encode(text, maxLen)
	if err != nil {
		t.Fatal(err)
	}
	toks := got.Tokens[0]
	if len(toks) != enc.Len() || !toks[0].Special || toks[0].Token != "[CLS]" || !toks[len(toks)-1].Special || toks[len(toks)-1].Token != "[SEP]" {
		t.Fatalf("tokens %+v", toks)
	}
	runes := []rune(text)
	for k, tk := range toks {
		if tk.ID != enc.InputIDs[k] {
			t.Errorf("token %d: id %d, the tokenizer's %d", k, tk.ID, enc.InputIDs[k])
		}
		if tk.Special {
			continue
		}
		// Uncased WordPiece: the piece, less its ##, is its span lowercased and unaccented.
		span := strings.ToLower(string(runes[tk.Start:tk.End]))
		span = strings.NewReplacer("ë", "e", "ü", "u").Replace(span)
		if piece := strings.TrimPrefix(tk.Token, "##"); piece != span {
			t.Errorf("token %d %q covers %q", k, tk.Token, span)
		}
	}
	if n := len(got.Tokens[1]); n != maxLen {
		t.Errorf("the long text has %d tokens, want the max length %d", n, maxLen)
	}
	wantError(t, "POST", srv.url+"/v1/tokenize", `{"texts": []}`, 400, kindInvalid, "texts: at least one text")
}
