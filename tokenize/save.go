package tokenize

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/bertnode/bertnode/internal/atomicfile"
	"os"
	"path/filepath"
)

// Save writes the tokenizer into dir in Hugging Face's layout — tokenizer.json,
// tokenizer_config.json, special_tokens_map.json and the algorithm's own files
// (vocab.txt for WordPiece; vocab.json and merges.txt for BPE; spiece.model for a
// Unigram tokenizer loaded from one) — so that the directory loads with Load and
// with transformers' AutoTokenizer. Each file is written atomically.
func (t *Tokenizer) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if t.kind != WordPiece {
		return t.saveDoc(dir)
	}
	var vocab bytes.Buffer
	for _, tok := range t.vocab.tokens {
		vocab.WriteString(tok)
		vocab.WriteByte('\n')
	}
	tj, err := t.tokenizerJSON()
	if err != nil {
		return err
	}
	c := t.cfg
	specials := map[string]string{
		"unk_token": c.UnkToken, "sep_token": c.SepToken, "pad_token": c.PadToken,
		"cls_token": c.ClsToken, "mask_token": c.MaskToken,
	}
	class := "BertTokenizer"
	if t.post.doubleSep() { // MPNetTokenizer is BertTokenizer with <s> A </s></s> B </s>
		class = "MPNetTokenizer"
	}
	config := map[string]any{
		"tokenizer_class":        class,
		"do_lower_case":          c.Lowercase,
		"strip_accents":          c.StripAccents,
		"tokenize_chinese_chars": c.HandleChineseChars,
	}
	for k, v := range specials {
		config[k] = v
	}
	t.trunc.config(config)
	files := []namedFile{
		{"vocab.txt", vocab.Bytes()},
		{"tokenizer.json", tj},
		{"tokenizer_config.json", config},
		{"special_tokens_map.json", specials},
	}
	return writeFiles(dir, files)
}

type namedFile struct {
	name string
	data any // []byte as it is, anything else as indented JSON
}

func writeFiles(dir string, files []namedFile) error {
	for _, f := range files {
		data, ok := f.data.([]byte)
		if !ok {
			var err error
			if data, err = json.MarshalIndent(f.data, "", "  "); err != nil {
				return err
			}
			data = append(data, '\n')
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, f.name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// saveDoc saves a BPE or Unigram tokenizer: the tokenizer.json it was built from and
// the files transformers' slow tokenizers read.
func (t *Tokenizer) saveDoc(dir string) error {
	var doc hfDoc
	if err := json.Unmarshal(t.doc, &doc); err != nil {
		return err
	}
	specials := map[string]string{}
	for k, id := range map[string]int32{"unk_token": t.unk, "sep_token": t.sep, "pad_token": t.pad, "cls_token": t.cls, "mask_token": t.mask} {
		if id >= 0 {
			specials[k] = t.vocab.Token(int(id))
		}
	}
	config := map[string]any{}
	for k, v := range specials {
		config[k] = v
	}
	t.trunc.config(config)
	files := []namedFile{{"tokenizer.json", t.doc}}
	switch t.kind {
	case BPE:
		config["tokenizer_class"] = "RobertaTokenizer"
		config["add_prefix_space"] = t.algo.(*pipeline).pre.(byteLevel).addPrefixSpace
		config["trim_offsets"] = t.algo.(*pipeline).trim
		if t.mask >= 0 { // RoBERTa's mask takes the space before it
			config["mask_token"] = map[string]any{"content": specials["mask_token"], "lstrip": true, "rstrip": false,
				"normalized": false, "single_word": false, "special": true, "__type": "AddedToken"}
		}
		merges, err := parseMerges(doc.Model.Merges)
		if err != nil {
			return err
		}
		var m bytes.Buffer
		m.WriteString("#version: 0.2\n")
		for _, mg := range merges {
			m.WriteString(mg[0] + " " + mg[1] + "\n")
		}
		files = append(files, namedFile{"vocab.json", []byte(doc.Model.Vocab)}, namedFile{"merges.txt", m.Bytes()})
	case Unigram:
		config["tokenizer_class"] = "AlbertTokenizer"
		if sp, ok := t.legacy["spiece.model"]; ok {
			files = append(files, namedFile{"spiece.model", sp})
		}
		if sp, ok := t.legacy["spm.model"]; ok {
			config["tokenizer_class"] = "DebertaV2Tokenizer"
			files = append(files, namedFile{"spm.model", sp})
		}
	}
	files = append(files, namedFile{"tokenizer_config.json", config}, namedFile{"special_tokens_map.json", specials})
	return writeFiles(dir, files)
}

// tokenizerJSON renders the tokenizers-format description of t. Vocab entries are
// written in id order, as HF writes them.
func (t *Tokenizer) tokenizerJSON() ([]byte, error) {
	type item map[string]any
	c := t.cfg
	specialTokens := item{}
	layout := func(items []tmplItem) []item { // as TemplateProcessing writes its template
		out := make([]item, len(items))
		for i, it := range items {
			if it.id < 0 {
				out[i] = item{"Sequence": item{"id": string(rune('A' + it.seq)), "type_id": it.typ}}
				continue
			}
			tok := t.vocab.Token(int(it.id))
			out[i] = item{"SpecialToken": item{"id": tok, "type_id": it.typ}}
			specialTokens[tok] = item{"id": tok, "ids": []int32{it.id}, "tokens": []string{tok}}
		}
		return out
	}
	doc := struct {
		Version       string        `json:"version"`
		Truncation    any           `json:"truncation"`
		Padding       any           `json:"padding"`
		AddedTokens   []*addedToken `json:"added_tokens"`
		Normalizer    item          `json:"normalizer"`
		PreTokenizer  item          `json:"pre_tokenizer"`
		PostProcessor item          `json:"post_processor"`
		Decoder       item          `json:"decoder"`
		Model         struct {
			Type                    string          `json:"type"`
			UnkToken                string          `json:"unk_token"`
			ContinuingSubwordPrefix string          `json:"continuing_subword_prefix"`
			MaxInputCharsPerWord    int             `json:"max_input_chars_per_word"`
			Vocab                   json.RawMessage `json:"vocab"`
		} `json:"model"`
	}{
		Version:     "1.0",
		AddedTokens: t.algo.(*wordPiece).added.tokens,
		Normalizer: item{"type": "BertNormalizer", "clean_text": c.CleanText, "handle_chinese_chars": c.HandleChineseChars,
			"strip_accents": c.StripAccents, "lowercase": c.Lowercase},
		PreTokenizer: item{"type": "BertPreTokenizer"},
		PostProcessor: item{"type": "TemplateProcessing", "single": layout(t.post.single), "pair": layout(t.post.pair),
			"special_tokens": specialTokens},
		Decoder: item{"type": "WordPiece", "prefix": c.ContinuingSubwordPrefix, "cleanup": true},
	}
	doc.Model.Type = "WordPiece"
	doc.Model.UnkToken = c.UnkToken
	doc.Model.ContinuingSubwordPrefix = c.ContinuingSubwordPrefix
	doc.Model.MaxInputCharsPerWord = c.MaxInputCharsPerWord
	var vocab bytes.Buffer
	vocab.WriteByte('{')
	for id, tok := range t.vocab.tokens {
		if id > 0 {
			vocab.WriteByte(',')
		}
		key, err := json.Marshal(tok)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&vocab, "%s:%d", key, id)
	}
	vocab.WriteByte('}')
	doc.Model.Vocab = vocab.Bytes()
	return json.MarshalIndent(doc, "", "  ")
}
