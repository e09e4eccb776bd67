package tokenize

import (
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/sugarme/tokenizer"
	"github.com/sugarme/tokenizer/model/wordpiece"
	"github.com/sugarme/tokenizer/normalizer"
	"github.com/sugarme/tokenizer/pretokenizer"
)

// reference builds github.com/sugarme/tokenizer's BERT pipeline, the reference
// implementation. Its BertNormalizer strips accents without decomposing them first
// (so "é" survives), so for uncased the accent stripping is composed from its own
// NFD and StripAccents normalizers, in HF's order.
func reference(tb testing.TB, lowercase bool) *tokenizer.Tokenizer {
	tb.Helper()
	path := sharedData(tb, "vocab/bert-base-cased.vocab.txt")
	if lowercase {
		path = sharedData(tb, "vocab/bert-base-uncased.vocab.txt")
	}
	model, err := wordpiece.NewWordPieceFromFile(path, "[UNK]")
	if err != nil {
		tb.Fatal(err)
	}
	tk := tokenizer.NewTokenizer(model)
	norms := []normalizer.Normalizer{normalizer.NewBertNormalizer(true, false, true, false)}
	if lowercase {
		norms = append(norms, normalizer.NewNFD(), normalizer.NewStripAccents(), normalizer.Lowercase())
	}
	tk.WithNormalizer(normalizer.NewSequence(norms))
	tk.WithPreTokenizer(pretokenizer.NewBertPreTokenizer())
	for _, s := range []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"} {
		tk.AddSpecialTokens([]tokenizer.AddedToken{tokenizer.NewAddedToken(s, true)})
	}
	return tk
}

// TestMatchesReference is the licence for our own tokenizer: on thousands of real
// texts the ids equal sugarme's — uncased on the SST-2 dev sentences and the SQuAD
// dev paragraphs, cased on the SST-2 test sentences and the SQuAD paragraphs (the
// texts with accents, CJK and symbols). sugarme's offsets are byte offsets that
// drift after multi-byte characters (e.g. "næss": [60 62] [60 63]), so offsets are
// compared on ASCII texts only; TestOffsetsSelectTheirSource checks ours on all.
func TestMatchesReference(t *testing.T) {
	contexts := squadContexts(t)
	for _, c := range []struct {
		lowercase bool
		texts     []string
	}{
		{true, slices.Concat(sst2Sentences(t, "dev.tsv"), contexts)},
		{false, slices.Concat(sst2Sentences(t, "test.tsv"), contexts)},
	} {
		ours, ref := bert(t, c.lowercase), reference(t, c.lowercase)
		var ascii, tokens int
		for _, text := range c.texts {
			re, err := ref.EncodeSingle(text, false)
			if err != nil {
				t.Fatal(err)
			}
			e, err := ours.Encode(text, 0)
			if err != nil {
				t.Fatal(err)
			}
			body := e.InputIDs[1 : e.Len()-1]
			tokens += len(body)
			if !slices.EqualFunc(body, re.Ids, func(a int32, b int) bool { return int(a) == b }) {
				t.Fatalf("lowercase=%v %q:\n ours %q\n sugarme %q", c.lowercase, text, ours.Tokens(text), re.Tokens)
			}
			if !isASCII(text) {
				continue
			}
			ascii++
			for i, o := range re.Offsets {
				if got := e.Offsets[i+1]; int(got.Start) != o[0] || int(got.End) != o[1] {
					t.Fatalf("lowercase=%v %q token %d: offsets %v, sugarme %v", c.lowercase, text, i, got, o)
				}
			}
		}
		t.Logf("lowercase=%v: ids equal on %d texts (%d tokens), offsets too on the %d ASCII ones",
			c.lowercase, len(c.texts), tokens, ascii)
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
