package tokenize

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// mpnetTokenizerJSON is a WordPiece tokenizer.json laid out as transformers'
// MPNetConverter writes MPNet's (sentence-transformers/all-mpnet-base-v2's): MPNet's
// specials first, [UNK] among BERT's tokens, the pair template <s> A </s></s> B </s>.
const mpnetTokenizerJSON = `{
  "version": "1.0",
  "added_tokens": [{"id": 0, "content": "<s>", "special": true}, {"id": 1, "content": "<pad>", "special": true},
    {"id": 2, "content": "</s>", "special": true}, {"id": 4, "content": "[UNK]", "special": true},
    {"id": 11, "content": "<mask>", "special": true, "lstrip": true}],
  "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
  "pre_tokenizer": {"type": "BertPreTokenizer"},
  "post_processor": {"type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
    "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}},
             {"SpecialToken": {"id": "</s>", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}, {"SpecialToken": {"id": "</s>", "type_id": 1}}],
    "special_tokens": {"<s>": {"id": "<s>", "ids": [0], "tokens": ["<s>"]}, "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}},
  "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
  "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
    "vocab": {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "[UNK]": 4, "hello": 5, "world": 6, "##s": 7, "how": 8, "are": 9, "you": 10, "<mask>": 11}}
}`

// mpnetConfig is the tokenizer_config.json MPNetTokenizerFast saves beside it.
const mpnetConfig = `{"tokenizer_class": "MPNetTokenizer", "do_lower_case": true, "bos_token": "<s>", "eos_token": "</s>",
  "cls_token": "<s>", "sep_token": "</s>", "unk_token": "[UNK]", "pad_token": "<pad>",
  "mask_token": {"content": "<mask>", "lstrip": true, "normalized": false, "rstrip": false, "single_word": false, "special": true}}`

// An MPNet tokenizer.json loads, as transformers' converter or as RobertaProcessing
// writes its template, and encodes as MPNetTokenizer.build_inputs_with_special_tokens
// lays inputs out (ids checked by hand against the vocabulary above): <s> A </s> and
// <s> A </s></s> B </s>, padding with <pad> 1. It saves as MPNetTokenizer with the
// same layout and loads back to the same ids.
func TestMPNetTokenizer(t *testing.T) {
	roberta := strings.Replace(mpnetTokenizerJSON, mpnetTokenizerJSON[strings.Index(mpnetTokenizerJSON, `{"type": "TemplateProcessing"`):strings.Index(mpnetTokenizerJSON, `,
  "decoder"`)],
		`{"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0], "trim_offsets": true, "add_prefix_space": false}`, 1)
	for name, doc := range map[string]string{"template": mpnetTokenizerJSON, "roberta": roberta} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, "tokenizer.json", doc)
			writeFile(t, dir, "tokenizer_config.json", mpnetConfig)
			tok, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			check := func(tok *Tokenizer, when string) {
				t.Helper()
				if tok.Algorithm() != WordPiece || tok.ClsID() != 0 || tok.SepID() != 2 || tok.PadID() != 1 || tok.UnkID() != 4 || tok.MaskID() != 11 {
					t.Fatalf("%s: %s, cls %d sep %d pad %d unk %d mask %d", when, tok.Algorithm(), tok.ClsID(), tok.SepID(), tok.PadID(), tok.UnkID(), tok.MaskID())
				}
				e, err := tok.Encode("Hello worlds, <mask>!", 64)
				if err != nil {
					t.Fatal(err)
				}
				if want := []int32{0, 5, 6, 7, 4, 11, 4, 2}; !slices.Equal(e.InputIDs, want) {
					t.Errorf("%s: single %v, want %v", when, e.InputIDs, want)
				}
				p, err := tok.EncodePair("How are you?", "Hello world", 64)
				if err != nil {
					t.Fatal(err)
				}
				if want := []int32{0, 8, 9, 10, 4, 2, 2, 5, 6, 2}; !slices.Equal(p.InputIDs, want) {
					t.Errorf("%s: pair %v, want %v", when, p.InputIDs, want)
				}
			}
			check(tok, "loaded")
			out := t.TempDir()
			if err := tok.Save(out); err != nil {
				t.Fatal(err)
			}
			var cfg struct {
				Class string `json:"tokenizer_class"`
			}
			b, err := os.ReadFile(filepath.Join(out, "tokenizer_config.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &cfg); err != nil || cfg.Class != "MPNetTokenizer" {
				t.Errorf("saved as tokenizer_class %q (%v), want MPNetTokenizer", cfg.Class, err)
			}
			back, err := Load(out)
			if err != nil {
				t.Fatal(err)
			}
			check(back, "saved and reloaded")
		})
	}
}
