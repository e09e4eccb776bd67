package tokenize

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// FromVocabFile loads a vocab.txt with the settings of the original BERT tokenizers;
// lowercase selects the uncased behaviour (and with it accent stripping).
func FromVocabFile(path string, lowercase bool) (*Tokenizer, error) {
	v, err := LoadVocab(path)
	if err != nil {
		return nil, err
	}
	t, err := New(v, BertConfig(lowercase))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// FromTokenizerJSON loads a Hugging Face tokenizers file (tokenizer.json): a BERT
// WordPiece, byte-level BPE (RoBERTa) or Unigram (ALBERT) tokenizer, by its
// model.type. A model object without "type" is WordPiece, as in the files HF writes
// for BERT; a normalizer's "strip_accents": null follows "lowercase", as in HF.
func FromTokenizerJSON(path string) (*Tokenizer, error) {
	return loadTokenizerJSON(path, nil)
}

func loadTokenizerJSON(path string, tc *hfTokenizerConfig) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var peek struct {
		Model hfModel `json:"model"`
	}
	if err := json.Unmarshal(data, &peek); err != nil {
		return nil, jsonError(path, data, err)
	}
	if modelKind(&peek.Model) != WordPiece {
		return fromDoc(path, data, tc)
	}
	v, cfg, post, added, err := parseTokenizerJSON(path, data)
	if err != nil {
		return nil, err
	}
	if tc != nil {
		tc.apply(&cfg)
	}
	t, err := New(v, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	t.post = post
	t.algo.(*wordPiece).setAdded(added)
	return t, nil
}

// Load loads the tokenizer of a Hugging Face model directory, by the files it has:
// tokenizer.json (any algorithm), else vocab.txt (BERT WordPiece), else vocab.json
// and merges.txt (RoBERTa's byte-level BPE), else spiece.model (ALBERT's Unigram), else
// spm.model (DeBERTa-v2/v3's Unigram).
// Settings and special tokens given in tokenizer_config.json and
// special_tokens_map.json take precedence, as in transformers; without them
// vocab.txt gets BertTokenizer's defaults (uncased).
func Load(dir string) (*Tokenizer, error) {
	var tc hfTokenizerConfig
	for _, name := range []string{"tokenizer_config.json", "special_tokens_map.json"} {
		if err := readJSONIfExists(filepath.Join(dir, name), &tc); err != nil {
			return nil, err
		}
	}
	tr, err := tc.truncation()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "tokenizer_config.json"), err)
	}
	t, err := load(dir, &tc)
	if err == nil {
		t.trunc = tr
	}
	return t, err
}

// load builds the tokenizer of dir from the files it has, with tc's settings.
func load(dir string, tc *hfTokenizerConfig) (*Tokenizer, error) {
	exists := func(name string) bool {
		_, err := os.Stat(filepath.Join(dir, name))
		return err == nil
	}
	switch {
	case exists("tokenizer.json"):
		t, err := loadTokenizerJSON(filepath.Join(dir, "tokenizer.json"), tc)
		for _, name := range []string{"spiece.model", "spm.model"} {
			if err == nil && t.kind == Unigram && exists(name) { // kept for Save, which slow tokenizers need
				sp, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil {
					return nil, err
				}
				t.legacy = map[string][]byte{name: sp}
			}
		}
		return t, err
	case exists("vocab.txt"):
		from := filepath.Join(dir, "vocab.txt")
		v, err := LoadVocab(from)
		if err != nil {
			return nil, err
		}
		cfg := BertConfig(true)
		mpnet := tc.TokenizerClass == "MPNetTokenizer" || tc.TokenizerClass == "MPNetTokenizerFast"
		if mpnet {
			cfg.ClsToken, cfg.SepToken, cfg.PadToken, cfg.MaskToken = "<s>", "</s>", "<pad>", "<mask>"
		}
		tc.apply(&cfg)
		t, err := New(v, cfg)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", from, err)
		}
		if mpnet { // as transformers' MPNetConverter makes it
			t.post = mpnetTemplate(t.cls, t.sep)
			wp := t.algo.(*wordPiece)
			for _, a := range wp.added.tokens {
				a.Lstrip = a.ID == t.mask
			}
			wp.setAdded(wp.added.tokens)
		}
		return t, nil
	case exists("vocab.json") && exists("merges.txt"):
		return loadVocabMerges(dir, tc)
	case exists("spiece.model"):
		return loadSPModel(filepath.Join(dir, "spiece.model"), tc, albertDoc)
	case exists("spm.model"):
		return loadSPModel(filepath.Join(dir, "spm.model"), tc, debertaDoc)
	}
	return nil, fmt.Errorf("%s: no tokenizer.json, vocab.txt, vocab.json with merges.txt, spiece.model or spm.model", dir)
}

// loadVocabMerges reads a slow RoBERTa/GPT-2 tokenizer's vocab.json and merges.txt.
func loadVocabMerges(dir string, tc *hfTokenizerConfig) (*Tokenizer, error) {
	vocabPath, mergesPath := filepath.Join(dir, "vocab.json"), filepath.Join(dir, "merges.txt")
	vocab, err := os.ReadFile(vocabPath)
	if err != nil {
		return nil, err
	}
	var check map[string]int
	if err := json.Unmarshal(vocab, &check); err != nil {
		return nil, jsonError(vocabPath, vocab, err)
	}
	data, err := os.ReadFile(mergesPath)
	if err != nil {
		return nil, err
	}
	var merges []string
	for i, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if i == 0 && strings.HasPrefix(line, "#version") || line == "" {
			continue
		}
		a, b, ok := strings.Cut(line, " ")
		if !ok || a == "" || b == "" || strings.Contains(b, " ") {
			return nil, fmt.Errorf("%s:%d: %q is not two tokens separated by a space", mergesPath, i+1, line)
		}
		// Checked here, as the model checks them, to name the line.
		for _, tok := range []string{a, b, a + b} {
			if _, ok := check[tok]; !ok {
				return nil, fmt.Errorf("%s:%d: merge %q: %q is not in vocab.json", mergesPath, i+1, line, tok)
			}
		}
		merges = append(merges, line)
	}
	doc, err := robertaDoc(vocab, merges, tc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", vocabPath, err)
	}
	t, err := fromDoc(vocabPath, doc, tc)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// loadSPModel reads a SentencePiece model as transformers converts it with convert:
// ALBERT's spiece.model (albertDoc), DeBERTa-v2/v3's spm.model (debertaDoc).
func loadSPModel(path string, tc *hfTokenizerConfig, convert func(*spModel, *hfTokenizerConfig) ([]byte, error)) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	sp, err := parseSPModel(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	doc, err := convert(sp, tc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	t, err := fromDoc(path, doc, tc)
	if err != nil {
		return nil, err
	}
	t.legacy = map[string][]byte{filepath.Base(path): data}
	return t, nil
}

// hfTokenizerConfig is what we read of tokenizer_config.json and special_tokens_map.json.
type hfTokenizerConfig struct {
	TokenizerClass       string  `json:"tokenizer_class"`
	DoLowerCase          *bool   `json:"do_lower_case"`
	KeepAccents          *bool   `json:"keep_accents"`     // ALBERT
	SplitByPunct         *bool   `json:"split_by_punct"`   // DeBERTa-v2
	AddPrefixSpace       *bool   `json:"add_prefix_space"` // RoBERTa
	StripAccents         *bool   `json:"strip_accents"`
	TokenizeChineseChars *bool   `json:"tokenize_chinese_chars"`
	UnkToken             hfToken `json:"unk_token"`
	SepToken             hfToken `json:"sep_token"`
	PadToken             hfToken `json:"pad_token"`
	ClsToken             hfToken `json:"cls_token"`
	MaskToken            hfToken `json:"mask_token"`
	TruncationSide       string  `json:"truncation_side"`
	TruncationHead       int     `json:"bertnode_truncation_head"`
}

func (tc *hfTokenizerConfig) truncation() (Truncation, error) {
	tr := Truncation{Left: tc.TruncationSide == "left", Head: tc.TruncationHead}
	switch {
	case tc.TruncationSide != "" && tc.TruncationSide != "left" && tc.TruncationSide != "right":
		return tr, fmt.Errorf("truncation_side: %q: want left or right", tc.TruncationSide)
	case tr.Head < 0 || tr.Head > 0 && !tr.Left:
		return tr, fmt.Errorf("bertnode_truncation_head: %d: want a positive count with truncation_side left", tr.Head)
	}
	return tr, nil
}

func (tc *hfTokenizerConfig) apply(cfg *Config) {
	if tc.DoLowerCase != nil {
		cfg.Lowercase = *tc.DoLowerCase
		cfg.StripAccents = cfg.Lowercase
	}
	if tc.StripAccents != nil {
		cfg.StripAccents = *tc.StripAccents
	}
	if tc.TokenizeChineseChars != nil {
		cfg.HandleChineseChars = *tc.TokenizeChineseChars
	}
	for _, f := range []struct {
		tok hfToken
		dst *string
	}{{tc.UnkToken, &cfg.UnkToken}, {tc.SepToken, &cfg.SepToken}, {tc.PadToken, &cfg.PadToken},
		{tc.ClsToken, &cfg.ClsToken}, {tc.MaskToken, &cfg.MaskToken}} {
		if f.tok != "" {
			*f.dst = string(f.tok)
		}
	}
}

// hfToken is a special token as transformers writes it: a string or {"content": ...}.
type hfToken string

func (t *hfToken) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '{' {
		var o struct {
			Content string `json:"content"`
		}
		err := json.Unmarshal(b, &o)
		*t = hfToken(o.Content)
		return err
	}
	var s *string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if s != nil {
		*t = hfToken(*s)
	}
	return nil
}

// hfTokenizerJSON is the part of the tokenizers format a BERT tokenizer uses.
type hfTokenizerJSON struct {
	AddedTokens []*addedToken `json:"added_tokens"`
	Normalizer  *struct {
		Type               string `json:"type"`
		CleanText          *bool  `json:"clean_text"`
		HandleChineseChars *bool  `json:"handle_chinese_chars"`
		StripAccents       *bool  `json:"strip_accents"`
		Lowercase          *bool  `json:"lowercase"`
	} `json:"normalizer"`
	PreTokenizer *struct {
		Type string `json:"type"`
	} `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Padding       *struct {
		PadToken string `json:"pad_token"`
	} `json:"padding"`
	Model struct {
		Type                    string         `json:"type"`
		UnkToken                string         `json:"unk_token"`
		ContinuingSubwordPrefix *string        `json:"continuing_subword_prefix"`
		MaxInputCharsPerWord    *int           `json:"max_input_chars_per_word"`
		Vocab                   map[string]int `json:"vocab"`
	} `json:"model"`
}

type hfPostProcessor struct {
	Type   string    `json:"type"`
	Single []hfPiece `json:"single"`
	Pair   []hfPiece `json:"pair"`
	Cls    []any     `json:"cls"` // BertProcessing: ["[CLS]", 101]
	Sep    []any     `json:"sep"`
}

type hfPiece struct {
	SpecialToken *hfTemplateItem `json:"SpecialToken"`
	Sequence     *hfTemplateItem `json:"Sequence"`
}

type hfTemplateItem struct {
	ID     string `json:"id"`
	TypeID int    `json:"type_id"`
}

// parseTokenizerJSON reads a WordPiece tokenizer.json: its vocabulary, settings and
// special-token layout (BERT's [CLS] A [SEP] B [SEP], MPNet's <s> A </s></s> B </s>, or
// any other the post-processor gives).
func parseTokenizerJSON(path string, data []byte) (*Vocab, Config, template, []*addedToken, error) {
	var (
		tj   hfTokenizerJSON
		cfg  = BertConfig(true)
		post template
	)
	if err := json.Unmarshal(data, &tj); err != nil {
		return nil, cfg, post, nil, jsonError(path, data, err)
	}
	fail := func(format string, args ...any) (*Vocab, Config, template, []*addedToken, error) {
		return nil, cfg, post, nil, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...))
	}

	m := tj.Model
	if len(m.Vocab) == 0 {
		return fail("model.vocab is missing or empty")
	}
	tokens := make([]string, len(m.Vocab))
	for tok, id := range m.Vocab {
		switch {
		case id < 0 || id >= len(tokens):
			return fail("model.vocab: %q has id %d, outside 0..%d", tok, id, len(tokens)-1)
		case tokens[id] != "":
			return fail("model.vocab: %q and %q share id %d", tokens[id], tok, id)
		}
		tokens[id] = tok
	}
	v, err := NewVocab(tokens)
	if err != nil {
		return fail("model.%v", err)
	}
	for i, at := range tj.AddedTokens {
		if id, ok := v.ID(at.Content); !ok || id != at.ID {
			return fail("added_tokens[%d]: %q with id %d is not that entry of model.vocab (added vocabularies are not supported)", i, at.Content, at.ID)
		}
		// WordPiece normalizes word by word as it splits, after added tokens are cut out:
		// a token marked normalized is matched as written, which differs from HF only where
		// the normalizer would change it (case, accents).
		at.Normalized = false
	}
	// The file does not say which added token masks or pads: BERT's [MASK] and [PAD]
	// when it has them, else the special one so named (MPNet's <mask> and <pad>).
	for _, role := range []struct {
		name string
		tok  *string
	}{{"mask", &cfg.MaskToken}, {"pad", &cfg.PadToken}} {
		if slices.ContainsFunc(tj.AddedTokens, func(a *addedToken) bool { return a.Content == *role.tok }) {
			continue
		}
		if i := slices.IndexFunc(tj.AddedTokens, func(a *addedToken) bool {
			return a.Special && strings.Contains(strings.ToLower(a.Content), role.name)
		}); i >= 0 {
			*role.tok = tj.AddedTokens[i].Content
		}
	}
	if m.UnkToken != "" {
		cfg.UnkToken = m.UnkToken
	}
	if m.ContinuingSubwordPrefix != nil {
		cfg.ContinuingSubwordPrefix = *m.ContinuingSubwordPrefix
	}
	if m.MaxInputCharsPerWord != nil {
		cfg.MaxInputCharsPerWord = *m.MaxInputCharsPerWord
	}

	switch n := tj.Normalizer; {
	case n == nil:
		cfg.CleanText, cfg.HandleChineseChars, cfg.StripAccents, cfg.Lowercase = false, false, false, false
	case n.Type != "BertNormalizer":
		return fail("normalizer.type %q: only BertNormalizer is supported", n.Type)
	default:
		cfg.CleanText = n.CleanText == nil || *n.CleanText
		cfg.HandleChineseChars = n.HandleChineseChars == nil || *n.HandleChineseChars
		cfg.Lowercase = n.Lowercase == nil || *n.Lowercase
		cfg.StripAccents = cfg.Lowercase
		if n.StripAccents != nil {
			cfg.StripAccents = *n.StripAccents
		}
	}
	if p := tj.PreTokenizer; p == nil || p.Type != "BertPreTokenizer" {
		return fail("pre_tokenizer must be BertPreTokenizer")
	}
	if isNull(tj.PostProcessor) {
		return fail("post_processor: missing; a WordPiece tokenizer's template ([CLS] A [SEP]) is required")
	}
	if post, _, _, err = parsePostProcessor(tj.PostProcessor, v); err != nil {
		return fail("%v", err)
	}
	// The template's first and last tokens are the tokenizer's [CLS] and [SEP].
	if s := post.single; s[0].id < 0 || s[len(s)-1].id < 0 {
		return fail("post_processor: template %q: the single one must start and end with special tokens ([CLS] and [SEP])", post.String(v))
	}
	cfg.ClsToken, cfg.SepToken = v.Token(int(post.single[0].id)), v.Token(int(post.single[len(post.single)-1].id))
	if tj.Padding != nil && tj.Padding.PadToken != "" {
		cfg.PadToken = tj.Padding.PadToken
	}
	return v, cfg, post, tj.AddedTokens, nil
}

func readJSONIfExists(path string, v any) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return jsonError(path, data, err)
	}
	return nil
}

// jsonError places a decoding error at its line and column in the file.
func jsonError(path string, data []byte, err error) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
		off int64
	)
	switch {
	case errors.As(err, &syn):
		off = syn.Offset
	case errors.As(err, &typ):
		off = typ.Offset
	default:
		return fmt.Errorf("%s: %w", path, err)
	}
	off = min(max(off, 0), int64(len(data)))
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	col := int(off) - bytes.LastIndexByte(data[:off], '\n')
	return fmt.Errorf("%s:%d:%d: %w", path, line, col, err)
}
