package tokenize

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The shared bert-base-uncased tokenizer.json has no model "type" and
// "strip_accents": null; it must load as the uncased WordPiece tokenizer, accents
// stripped.
func TestFromTokenizerJSON(t *testing.T) {
	tj, err := FromTokenizerJSON(sharedData(t, "vocab/bert-base-uncased.tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	if want := BertConfig(true); tj.Config() != want {
		t.Errorf("config %+v, want %+v", tj.Config(), want)
	}
	sameEncodings(t, tj, bert(t, true), append(sst2Sentences(t, "test.tsv"), "Héllo naïve café [MASK]"))
}

// sameEncodings fails unless a and b encode every text identically.
func sameEncodings(t *testing.T, a, b *Tokenizer, texts []string) {
	t.Helper()
	for _, s := range texts {
		ea, _ := a.Encode(s, 0)
		eb, _ := b.Encode(s, 0)
		if !slices.Equal(ea.InputIDs, eb.InputIDs) || !slices.Equal(ea.Offsets, eb.Offsets) {
			t.Fatalf("%q: %v / %v", s, ea.InputIDs, eb.InputIDs)
		}
	}
}

func TestLoadVocabErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		content, want string
	}{
		{"", "vocab.txt: empty vocabulary"},
		{"[PAD]\n[UNK]\nfoo\n\nbar\n", "vocab.txt:4: empty token"},
		{"[PAD]\nfoo\r\nbar\nfoo\n", `vocab.txt:4: token "foo" already on line 2`},
		{"[PAD]\nf\xffo\n", "vocab.txt:2: token is not valid UTF-8"},
	} {
		path := filepath.Join(dir, "vocab.txt")
		if err := os.WriteFile(path, []byte(c.content), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadVocab(path); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.content, err, c.want)
		}
	}
	path := filepath.Join(dir, "vocab.txt")
	os.WriteFile(path, []byte("[PAD]\n[UNK]\n[CLS]\n[SEP]\n"), 0o644)
	if _, err := FromVocabFile(path, true); err == nil || !strings.Contains(err.Error(), `vocab.txt: tokenize: MaskToken "[MASK]" is not in the vocabulary`) {
		t.Errorf("missing [MASK]: %v", err)
	}
}

// tinyTokenizerJSON is a small valid tokenizer.json of a cased tokenizer.
const tinyTokenizerJSON = `{
  "version": "1.0",
  "added_tokens": [{"id": 0, "content": "[PAD]", "special": true}],
  "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": null, "lowercase": false},
  "pre_tokenizer": {"type": "BertPreTokenizer"},
  "post_processor": {"type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
    "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
             {"Sequence": {"id": "B", "type_id": 1}}, {"SpecialToken": {"id": "[SEP]", "type_id": 1}}]},
  "model": {"unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
    "vocab": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4, "A": 5, "##b": 6}}
}`

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTokenizerJSONErrors(t *testing.T) {
	tk, err := FromTokenizerJSON(writeFile(t, t.TempDir(), "tokenizer.json", tinyTokenizerJSON))
	if err != nil {
		t.Fatal(err)
	}
	if got := tk.Tokens("Ab a"); !slices.Equal(got, []string{"A", "##b", "[UNK]"}) {
		t.Errorf("cased tokens %q", got)
	}
	if tk.Config().StripAccents {
		t.Error(`strip_accents null with lowercase false must not strip`)
	}
	for _, c := range []struct {
		from, to, want string
	}{
		{`"##b": 6}`, `"##b": 6`, "tokenizer.json:12:2: unexpected end of JSON input"},
		{`"max_input_chars_per_word": 100`, `"max_input_chars_per_word": "100"`, "tokenizer.json:10:103: json: cannot unmarshal string into Go struct field .model.max_input_chars_per_word of type int"},
		{`"model": {`, `"model": {"type": "BPE", `, `normalizer.type "BertNormalizer": not supported`},
		{`"##b": 6`, `"##b": 7`, `model.vocab: "##b" has id 7, outside 0..6`},
		{`"##b": 6`, `"##b": 5`, "share id 5"},
		{`"id": 0, "content": "[PAD]"`, `"id": 3, "content": "[PAD]"`, `added_tokens[0]: "[PAD]" with id 3 is not that entry of model.vocab`},
		{`"BertNormalizer"`, `"NFC"`, `normalizer.type "NFC": only BertNormalizer is supported`},
		{`{"type": "BertPreTokenizer"}`, `{"type": "Whitespace"}`, "pre_tokenizer must be BertPreTokenizer"},
		{`"single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, `, `"single": [`, `template "$A:0 [SEP]:0 | [CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1": the single one must start and end with special tokens`},
		{`{"Sequence": {"id": "B", "type_id": 1}}, `, ``, `the pair template $A and $B once each`},
		{`"post_processor": {"type": "TemplateProcessing",`, `"post_processor": null, "x": {`, `post_processor: missing`},
		{`"[CLS]": 2`, `"[KLS]": 2`, `special token "[CLS]" is not in special_tokens or the vocabulary`},
	} {
		if !strings.Contains(tinyTokenizerJSON, c.from) {
			t.Fatalf("fixture lacks %q", c.from)
		}
		path := writeFile(t, t.TempDir(), "tokenizer.json", strings.Replace(tinyTokenizerJSON, c.from, c.to, 1))
		if _, err := FromTokenizerJSON(path); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s -> %s: error %v, want %q", c.from, c.to, err, c.want)
		}
	}
}
