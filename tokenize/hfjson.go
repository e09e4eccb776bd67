package tokenize

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// This file builds BPE and Unigram tokenizers from the tokenizers format
// (tokenizer.json): the model, normalizer, pre-tokenizer, post-processor and
// added tokens that RoBERTa's and ALBERT's files use. Anything else is an error
// naming its field, never a silent approximation.

// hfDoc is a tokenizer.json of a BPE or Unigram model.
type hfDoc struct {
	AddedTokens   []*addedToken   `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Padding       *struct {
		PadToken string `json:"pad_token"`
	} `json:"padding"`
	Model hfModel `json:"model"`
}

type hfModel struct {
	Type                    string          `json:"type"`
	Vocab                   json.RawMessage `json:"vocab"`
	Merges                  json.RawMessage `json:"merges"`
	UnkToken                *string         `json:"unk_token"`
	UnkID                   *int            `json:"unk_id"`
	ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
	Dropout                 *float64        `json:"dropout"`
	FuseUnk                 bool            `json:"fuse_unk"`
	ByteFallback            bool            `json:"byte_fallback"`
	IgnoreMerges            bool            `json:"ignore_merges"`
}

// modelKind tells the algorithm of a tokenizer.json model: its "type", or, for files
// without one, its shape (merges: BPE; a list of [piece, score]: Unigram).
func modelKind(m *hfModel) string {
	switch {
	case m.Type != "":
		return m.Type
	case len(m.Merges) > 0:
		return BPE
	case len(m.Vocab) > 0 && m.Vocab[0] == '[':
		return Unigram
	}
	return WordPiece
}

// fromDoc builds a BPE or Unigram tokenizer from a tokenizer.json document; tc
// holds the settings of tokenizer_config.json and special_tokens_map.json.
func fromDoc(path string, data []byte, tc *hfTokenizerConfig) (*Tokenizer, error) {
	var doc hfDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, jsonError(path, data, err)
	}
	t, err := buildFromDoc(&doc, tc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	t.doc = data
	return t, nil
}

func buildFromDoc(doc *hfDoc, tc *hfTokenizerConfig) (*Tokenizer, error) {
	t := &Tokenizer{kind: modelKind(&doc.Model)}
	t.scratch.New = func() any { return new(scratch) }
	var (
		tokens []string
		p      = &pipeline{}
		err    error
	)
	if p.norm, err = parseNormalizer(doc.Normalizer, "normalizer"); err != nil {
		return nil, err
	}
	if p.pre, err = parsePreTokenizer(doc.PreTokenizer); err != nil {
		return nil, err
	}
	switch t.kind {
	case BPE:
		tokens, p.model, err = buildBPE(&doc.Model, p.pre)
	case Unigram:
		tokens, p.model, err = buildUnigram(&doc.Model)
	default:
		return nil, fmt.Errorf("model.type %q: want WordPiece, BPE or Unigram", t.kind)
	}
	if err != nil {
		return nil, err
	}
	// Added tokens are in the model's vocabulary or extend it, in id order.
	for i, at := range doc.AddedTokens {
		switch {
		case at.ID < 0:
			return nil, fmt.Errorf("added_tokens[%d]: %q has a negative id %d", i, at.Content, at.ID)
		case int(at.ID) < len(tokens) && tokens[at.ID] != at.Content:
			return nil, fmt.Errorf("added_tokens[%d]: %q has id %d, which the model gives to %q", i, at.Content, at.ID, tokens[at.ID])
		case int(at.ID) == len(tokens):
			tokens = append(tokens, at.Content)
		case int(at.ID) > len(tokens):
			return nil, fmt.Errorf("added_tokens[%d]: %q has id %d, past the vocabulary of %d tokens", i, at.Content, at.ID, len(tokens))
		}
	}
	if t.vocab, err = newVocabLenient(tokens); err != nil {
		return nil, fmt.Errorf("model.vocab: %w", err)
	}
	p.added = newAddedVocab(doc.AddedTokens, p.norm)
	if t.post, p.trim, p.trimPrefixSpace, err = parsePostProcessor(doc.PostProcessor, t.vocab); err != nil {
		return nil, err
	}
	if bl, ok := p.pre.(byteLevel); ok {
		if tc != nil && tc.AddPrefixSpace != nil { // transformers rewrites both, as RobertaTokenizerFast does
			bl.addPrefixSpace, p.trimPrefixSpace = *tc.AddPrefixSpace, *tc.AddPrefixSpace
			p.pre = bl
		}
		words := *p
		bl.addPrefixSpace, words.trimPrefixSpace = true, true
		words.pre = bl
		t.words = &words
	}
	t.algo = p

	// Special tokens: the template's first and last, the model's unknown, and the
	// names transformers uses for the family unless the configs say otherwise.
	t.cls, t.sep = -1, -1
	if s := t.post.single; len(s) > 0 && s[0].id >= 0 {
		t.cls = s[0].id
	}
	if s := t.post.single; len(s) > 0 && s[len(s)-1].id >= 0 {
		t.sep = s[len(s)-1].id
	}
	t.unk = -1
	switch m := p.model.(type) {
	case *unigram:
		t.unk = m.unk
	case *bpe:
		t.unk = m.unk
	}
	pad := []string{"<pad>", "[PAD]"}
	if doc.Padding != nil && doc.Padding.PadToken != "" {
		pad = []string{doc.Padding.PadToken}
	}
	mask := []string{"<mask>", "[MASK]"}
	if tc != nil {
		if tc.PadToken != "" {
			pad = []string{string(tc.PadToken)}
		}
		if tc.MaskToken != "" {
			mask = []string{string(tc.MaskToken)}
		}
		for _, f := range []struct {
			tok hfToken
			id  *int32
		}{{tc.UnkToken, &t.unk}, {tc.ClsToken, &t.cls}, {tc.SepToken, &t.sep}} {
			if f.tok == "" {
				continue
			}
			id, ok := t.vocab.ID(string(f.tok))
			if !ok {
				return nil, fmt.Errorf("special token %q of the tokenizer config is not in the vocabulary", f.tok)
			}
			*f.id = id
		}
	}
	t.pad, t.mask = firstID(t.vocab, pad), firstID(t.vocab, mask)
	if t.pad < 0 {
		return nil, fmt.Errorf("no pad token: none of %q is in the vocabulary", pad)
	}
	t.cfg = Config{UnkToken: t.vocab.Token(int(t.unk)), ClsToken: t.vocab.Token(int(t.cls)), SepToken: t.vocab.Token(int(t.sep)),
		PadToken: t.vocab.Token(int(t.pad)), MaskToken: t.vocab.Token(int(t.mask))}
	return t, nil
}

func firstID(v *Vocab, names []string) int32 {
	for _, n := range names {
		if id, ok := v.ID(n); ok {
			return id
		}
	}
	return -1
}

// newVocabLenient is NewVocab for model vocabularies, where a token may repeat
// (Unigram pieces): the id of a repeated token is its last.
func newVocabLenient(tokens []string) (*Vocab, error) {
	v := &Vocab{tokens: tokens, ids: make(map[string]int32, len(tokens))}
	if len(tokens) == 0 {
		return nil, fmt.Errorf("no tokens")
	}
	for i, tok := range tokens {
		v.ids[tok] = int32(i)
	}
	return v, nil
}

func buildBPE(m *hfModel, pre preTokenizer) ([]string, *bpe, error) {
	if _, ok := pre.(byteLevel); !ok {
		return nil, nil, fmt.Errorf("model.type BPE: only byte-level BPE (pre_tokenizer ByteLevel) is supported")
	}
	switch {
	case m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "":
		return nil, nil, fmt.Errorf("model.continuing_subword_prefix %q: not supported", *m.ContinuingSubwordPrefix)
	case m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "":
		return nil, nil, fmt.Errorf("model.end_of_word_suffix %q: not supported", *m.EndOfWordSuffix)
	case m.Dropout != nil && *m.Dropout != 0:
		return nil, nil, fmt.Errorf("model.dropout %v: sampling is not supported", *m.Dropout)
	}
	var vocab map[string]int
	if err := json.Unmarshal(m.Vocab, &vocab); err != nil || len(vocab) == 0 {
		return nil, nil, fmt.Errorf("model.vocab: want a non-empty object of token ids (%v)", err)
	}
	tokens := make([]string, len(vocab))
	for tok, id := range vocab {
		switch {
		case id < 0 || id >= len(tokens):
			return nil, nil, fmt.Errorf("model.vocab: %q has id %d, outside 0..%d", tok, id, len(tokens)-1)
		case tokens[id] != "":
			return nil, nil, fmt.Errorf("model.vocab: %q and %q share id %d", tokens[id], tok, id)
		}
		tokens[id] = tok
	}
	merges, err := parseMerges(m.Merges)
	if err != nil {
		return nil, nil, err
	}
	asBytes := func(s string) []byte {
		if b, ok := fromByteChars(s); ok {
			return b
		}
		return []byte(s) // a token outside GPT-2's alphabet (an added one): never merged into
	}
	raw := make([][]byte, len(tokens))
	for i, tok := range tokens {
		raw[i] = asBytes(tok)
	}
	rawMerges := make([][2][]byte, len(merges))
	for i, mg := range merges {
		rawMerges[i] = [2][]byte{asBytes(mg[0]), asBytes(mg[1])}
	}
	unk := int32(-1)
	if m.UnkToken != nil {
		id, ok := vocab[*m.UnkToken]
		if !ok {
			return nil, nil, fmt.Errorf("model.unk_token %q is not in model.vocab", *m.UnkToken)
		}
		unk = int32(id)
	}
	model, err := newBPE(raw, rawMerges, unk)
	if err != nil {
		return nil, nil, fmt.Errorf("model.merges: %w", err)
	}
	model.fuseUnk, model.ignoreMerges = m.FuseUnk, m.IgnoreMerges
	return tokens, model, nil
}

// parseMerges reads merges written as "a b" strings or as [a, b] pairs.
func parseMerges(raw json.RawMessage) ([][2]string, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("model.merges: want a list (%v)", err)
	}
	out := make([][2]string, len(items))
	for i, it := range items {
		var s string
		var pair []string
		switch {
		case json.Unmarshal(it, &s) == nil:
			a, b, ok := strings.Cut(s, " ")
			if !ok || strings.Contains(b, " ") {
				return nil, fmt.Errorf("model.merges[%d]: %q is not two tokens", i, s)
			}
			out[i] = [2]string{a, b}
		case json.Unmarshal(it, &pair) == nil && len(pair) == 2:
			out[i] = [2]string{pair[0], pair[1]}
		default:
			return nil, fmt.Errorf("model.merges[%d]: want \"a b\" or [a, b], got %s", i, it)
		}
	}
	return out, nil
}

func buildUnigram(m *hfModel) ([]string, *unigram, error) {
	var vocab [][2]json.RawMessage
	if err := json.Unmarshal(m.Vocab, &vocab); err != nil || len(vocab) == 0 {
		return nil, nil, fmt.Errorf("model.vocab: want a non-empty list of [piece, score] (%v)", err)
	}
	tokens := make([]string, len(vocab))
	scores := make([]float64, len(vocab))
	for i, e := range vocab {
		if json.Unmarshal(e[0], &tokens[i]) != nil || json.Unmarshal(e[1], &scores[i]) != nil {
			return nil, nil, fmt.Errorf("model.vocab[%d]: want [piece, score], got [%s, %s]", i, e[0], e[1])
		}
	}
	if m.UnkID == nil {
		return nil, nil, fmt.Errorf("model.unk_id: missing (a Unigram model needs its unknown piece)")
	}
	model, err := newUnigram(tokens, scores, int32(*m.UnkID), m.ByteFallback)
	if err != nil {
		return nil, nil, fmt.Errorf("model: %w", err)
	}
	return tokens, model, nil
}

type hfTyped struct {
	Type string `json:"type"`
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

func parseNormalizer(raw json.RawMessage, field string) (normStep, error) {
	if isNull(raw) {
		return nil, nil
	}
	var n struct {
		Type        string            `json:"type"`
		Normalizers []json.RawMessage `json:"normalizers"`
		Pattern     struct {
			String *string `json:"String"`
			Regex  *string `json:"Regex"`
		} `json:"pattern"`
		Content   string `json:"content"`
		Charsmap  string `json:"precompiled_charsmap"`
		StripLeft bool   `json:"strip_left"`
		StripRght bool   `json:"strip_right"`
	}
	if err := json.Unmarshal(raw, &n); err != nil {
		return nil, fmt.Errorf("%s: %v", field, err)
	}
	switch n.Type {
	case "Sequence":
		var seq seqNormalizer
		for i, sub := range n.Normalizers {
			x, err := parseNormalizer(sub, fmt.Sprintf("%s.normalizers[%d]", field, i))
			if err != nil {
				return nil, err
			}
			if x != nil {
				seq = append(seq, x)
			}
		}
		return seq, nil
	case "Replace":
		switch {
		case n.Pattern.String != nil && *n.Pattern.String != "":
			return &replaceNormalizer{literal: *n.Pattern.String, content: n.Content}, nil
		case n.Pattern.Regex != nil:
			re, err := regexp.Compile(*n.Pattern.Regex)
			if err != nil {
				return nil, fmt.Errorf("%s.pattern.Regex %q: %v", field, *n.Pattern.Regex, err)
			}
			return &replaceNormalizer{re: re, spaceRuns: *n.Pattern.Regex == " {2,}", content: n.Content}, nil
		}
		return nil, fmt.Errorf("%s.pattern: want a non-empty String or a Regex", field)
	case "NFKD":
		return formNormalizer{norm.NFKD}, nil
	case "NFD":
		return formNormalizer{norm.NFD}, nil
	case "StripAccents":
		return stripAccents{}, nil
	case "Lowercase":
		return lowercase{}, nil
	case "Strip":
		return strip{n.StripLeft, n.StripRght}, nil
	case "Precompiled":
		data, err := base64.StdEncoding.DecodeString(n.Charsmap)
		if err != nil {
			return nil, fmt.Errorf("%s.precompiled_charsmap: %v", field, err)
		}
		if len(data) == 0 { // HF treats an empty charsmap as no rules
			return nil, nil
		}
		p, err := newPrecompiled(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", field, err)
		}
		return p, nil
	}
	return nil, fmt.Errorf("%s.type %q: not supported (Sequence, Replace, NFD, NFKD, StripAccents, Lowercase, Strip, Precompiled are)", field, n.Type)
}

func parsePreTokenizer(raw json.RawMessage) (preTokenizer, error) {
	var p struct {
		Type           string            `json:"type"`
		PreTokenizers  []json.RawMessage `json:"pretokenizers"`
		AddPrefixSpace *bool             `json:"add_prefix_space"`
		UseRegex       *bool             `json:"use_regex"`
		Replacement    string            `json:"replacement"`
		PrependScheme  string            `json:"prepend_scheme"`
		Split          *bool             `json:"split"`
	}
	if isNull(raw) {
		return nil, fmt.Errorf("pre_tokenizer: missing (ByteLevel or Metaspace is required)")
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("pre_tokenizer: %v", err)
	}
	if p.Type == "Sequence" && len(p.PreTokenizers) == 1 {
		return parsePreTokenizer(p.PreTokenizers[0])
	}
	switch p.Type {
	case "ByteLevel":
		return byteLevel{addPrefixSpace: p.AddPrefixSpace == nil || *p.AddPrefixSpace, useRegex: p.UseRegex == nil || *p.UseRegex}, nil
	case "Metaspace":
		m := &metaspace{replacement: p.Replacement, prepend: prependAlways, splitWords: p.Split == nil || *p.Split}
		if utf8.RuneCountInString(m.replacement) != 1 {
			return nil, fmt.Errorf("pre_tokenizer.replacement %q: want one character", p.Replacement)
		}
		if p.PrependScheme != "" {
			m.prepend = p.PrependScheme
		}
		if p.AddPrefixSpace != nil && !*p.AddPrefixSpace {
			m.prepend = prependNever
		}
		if m.prepend != prependAlways && m.prepend != prependFirst && m.prepend != prependNever {
			return nil, fmt.Errorf("pre_tokenizer.prepend_scheme %q: want always, first or never", p.PrependScheme)
		}
		return m, nil
	}
	return nil, fmt.Errorf("pre_tokenizer.type %q: not supported with BPE or Unigram (ByteLevel and Metaspace are)", p.Type)
}

// parsePostProcessor reads the special-token layout, and whether offsets are trimmed
// as RobertaProcessing and ByteLevel do.
func parsePostProcessor(raw json.RawMessage, v *Vocab) (tp template, trim, trimPrefix bool, err error) {
	if isNull(raw) {
		return template{single: []tmplItem{sequence(0, 0)}, pair: []tmplItem{sequence(0, 0), sequence(1, 1)}}, false, false, nil
	}
	var pp struct {
		hfPostProcessor
		Processors     []json.RawMessage `json:"processors"`
		TrimOffsets    *bool             `json:"trim_offsets"`
		AddPrefixSpace *bool             `json:"add_prefix_space"`
		SpecialTokens  map[string]struct {
			IDs []int32 `json:"ids"`
		} `json:"special_tokens"`
	}
	if err := json.Unmarshal(raw, &pp); err != nil {
		return tp, false, false, fmt.Errorf("post_processor: %v", err)
	}
	pairID := func(field string, x []any) (int32, error) {
		if len(x) != 2 {
			return 0, fmt.Errorf("post_processor.%s: want [token, id]", field)
		}
		tok, _ := x[0].(string)
		id, ok := v.ID(tok)
		if !ok {
			return 0, fmt.Errorf("post_processor.%s: %q is not in the vocabulary", field, tok)
		}
		return id, nil
	}
	trim = pp.TrimOffsets == nil || *pp.TrimOffsets
	trimPrefix = pp.AddPrefixSpace == nil || *pp.AddPrefixSpace
	switch pp.Type {
	case "RobertaProcessing", "BertProcessing":
		cls, err := pairID("cls", pp.Cls)
		if err != nil {
			return tp, false, false, err
		}
		sep, err := pairID("sep", pp.Sep)
		if err != nil {
			return tp, false, false, err
		}
		if pp.Type == "BertProcessing" {
			return bertTemplate(cls, sep), false, false, nil
		}
		return robertaTemplate(cls, sep), trim, trimPrefix, nil
	case "ByteLevel":
		tp, _, _, err := parsePostProcessor(nil, v)
		return tp, trim, trimPrefix, err
	case "TemplateProcessing":
		items := func(field string, ps []hfPiece) ([]tmplItem, error) {
			var out []tmplItem
			for i, p := range ps {
				switch {
				case p.Sequence != nil && (p.Sequence.ID == "A" || p.Sequence.ID == "B"):
					out = append(out, sequence(int8(p.Sequence.ID[0]-'A'), int32(p.Sequence.TypeID)))
				case p.SpecialToken != nil:
					ids := pp.SpecialTokens[p.SpecialToken.ID].IDs
					for _, id := range ids {
						if id < 0 || int(id) >= v.Len() {
							return nil, fmt.Errorf("post_processor.special_tokens[%q].ids: %d is not in the vocabulary of %d tokens", p.SpecialToken.ID, id, v.Len())
						}
					}
					if len(ids) == 0 {
						id, ok := v.ID(p.SpecialToken.ID)
						if !ok {
							return nil, fmt.Errorf("post_processor.%s[%d]: special token %q is not in special_tokens or the vocabulary", field, i, p.SpecialToken.ID)
						}
						ids = []int32{id}
					}
					for _, id := range ids {
						out = append(out, special(id, int32(p.SpecialToken.TypeID)))
					}
				default:
					return nil, fmt.Errorf("post_processor.%s[%d]: want a SpecialToken or Sequence A or B", field, i)
				}
			}
			return out, nil
		}
		if tp.single, err = items("single", pp.Single); err != nil {
			return tp, false, false, err
		}
		if tp.pair, err = items("pair", pp.Pair); err != nil {
			return tp, false, false, err
		}
		seqs := func(its []tmplItem) (n [2]int) {
			for _, it := range its {
				if it.id < 0 {
					n[it.seq]++
				}
			}
			return n
		}
		if seqs(tp.single) != [2]int{1, 0} || seqs(tp.pair) != [2]int{1, 1} {
			return tp, false, false, fmt.Errorf("post_processor: the single template must hold $A once, the pair template $A and $B once each")
		}
		return tp, false, false, nil
	case "Sequence":
		// A ByteLevel step (offset trimming) and one step that places the special tokens.
		var out template
		found := false
		for i, sub := range pp.Processors {
			st, tr, tps, err := parsePostProcessor(sub, v)
			if err != nil {
				return tp, false, false, fmt.Errorf("post_processor.processors[%d]: %w", i, err)
			}
			var typed hfTyped
			json.Unmarshal(sub, &typed)
			if typed.Type == "ByteLevel" {
				trim, trimPrefix = tr, tps
				continue
			}
			if found {
				return tp, false, false, fmt.Errorf("post_processor.processors[%d]: only one step may add special tokens", i)
			}
			out, found = st, true
		}
		if !found {
			out, _, _, _ = parsePostProcessor(nil, v)
		}
		return out, trim, trimPrefix, nil
	}
	return tp, false, false, fmt.Errorf("post_processor.type %q: not supported", pp.Type)
}

// robertaDoc is the tokenizer.json transformers' RobertaConverter makes of a slow
// RoBERTa tokenizer's vocab.json and merges.txt.
func robertaDoc(vocab json.RawMessage, merges []string, tc *hfTokenizerConfig) ([]byte, error) {
	var ids map[string]int
	if err := json.Unmarshal(vocab, &ids); err != nil {
		return nil, err
	}
	name := func(tok hfToken, def string) string {
		if tok != "" {
			return string(tok)
		}
		return def
	}
	cls, sep := name(tc.ClsToken, "<s>"), name(tc.SepToken, "</s>")
	aps := tc.AddPrefixSpace != nil && *tc.AddPrefixSpace
	var added []*addedToken
	for _, s := range []string{cls, name(tc.PadToken, "<pad>"), sep, name(tc.UnkToken, "<unk>"), name(tc.MaskToken, "<mask>")} {
		if id, ok := ids[s]; ok && !slices.ContainsFunc(added, func(a *addedToken) bool { return a.Content == s }) {
			added = append(added, &addedToken{ID: int32(id), Content: s, Special: true, Lstrip: s == name(tc.MaskToken, "<mask>")})
		}
	}
	slices.SortFunc(added, func(a, b *addedToken) int { return int(a.ID - b.ID) })
	if _, ok := ids[cls]; !ok {
		return nil, fmt.Errorf("cls token %q is not in vocab.json", cls)
	}
	if _, ok := ids[sep]; !ok {
		return nil, fmt.Errorf("sep token %q is not in vocab.json", sep)
	}
	doc := map[string]any{
		"version":        "1.0",
		"truncation":     nil,
		"padding":        nil,
		"added_tokens":   added,
		"normalizer":     nil,
		"pre_tokenizer":  map[string]any{"type": "ByteLevel", "add_prefix_space": aps, "trim_offsets": true, "use_regex": true},
		"post_processor": map[string]any{"type": "RobertaProcessing", "sep": []any{sep, ids[sep]}, "cls": []any{cls, ids[cls]}, "trim_offsets": true, "add_prefix_space": aps},
		"decoder":        map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": "", "end_of_word_suffix": "",
			"fuse_unk": false, "byte_fallback": false, "ignore_merges": false, "vocab": vocab, "merges": merges},
	}
	return json.MarshalIndent(doc, "", "  ")
}

// spmFlavor is what tells transformers' converters of SentencePiece models apart.
type spmFlavor struct {
	norms        []map[string]any // the normalizers before the model's own rules
	commaNumbers bool             // pieces like "1," score 100 less, so numbers keep their commas
	unk, pad     string           // the default names of the unknown and padding tokens
	appendMask   bool             // a mask token the model lacks is added after its pieces
}

// albertDoc is the tokenizer.json transformers' AlbertConverter makes of an ALBERT
// spiece.model: ALBERT's normalizers around the model's own rules, Metaspace, the
// pieces' scores (less 100 for pieces like "1," so numbers keep their commas), and
// [CLS] A [SEP] templates.
func albertDoc(sp *spModel, tc *hfTokenizerConfig) ([]byte, error) {
	type m = map[string]any
	norms := []m{
		{"type": "Replace", "pattern": m{"String": "``"}, "content": `"`},
		{"type": "Replace", "pattern": m{"String": "''"}, "content": `"`},
	}
	if tc.KeepAccents == nil || !*tc.KeepAccents {
		norms = append(norms, m{"type": "NFKD"}, m{"type": "StripAccents"})
	}
	if tc.DoLowerCase == nil || *tc.DoLowerCase {
		norms = append(norms, m{"type": "Lowercase"})
	}
	return spmDoc(sp, tc, spmFlavor{norms: norms, commaNumbers: true, unk: "<unk>", pad: "<pad>"})
}

// debertaDoc is the tokenizer.json transformers' DebertaV2Converter makes of a
// DeBERTa-v2/v3 spm.model: lowercase only with do_lower_case (DebertaV2Tokenizer's
// default is cased), whitespace stripped at both ends, the model's own rules, Metaspace,
// the pieces' scores as they are, [CLS] A [SEP] templates, and [MASK] after the pieces
// where the model lacks it (deberta-v3's 128000). split_by_punct is not supported.
func debertaDoc(sp *spModel, tc *hfTokenizerConfig) ([]byte, error) {
	type m = map[string]any
	if tc.SplitByPunct != nil && *tc.SplitByPunct {
		return nil, fmt.Errorf("split_by_punct: true is not supported")
	}
	var norms []m
	if tc.DoLowerCase != nil && *tc.DoLowerCase {
		norms = append(norms, m{"type": "Lowercase"})
	}
	norms = append(norms, m{"type": "Strip", "strip_left": true, "strip_right": true})
	return spmDoc(sp, tc, spmFlavor{norms: norms, unk: "[UNK]", pad: "[PAD]", appendMask: true})
}

// spmDoc is the tokenizer.json of a Unigram SentencePiece model in flavor f.
func spmDoc(sp *spModel, tc *hfTokenizerConfig, f spmFlavor) ([]byte, error) {
	if sp.modelType != 1 {
		return nil, fmt.Errorf("model_type %d: only Unigram (1) SentencePiece models are supported", sp.modelType)
	}
	type m = map[string]any
	norms := f.norms
	if len(sp.charsmap) > 0 {
		norms = append(norms, m{"type": "Precompiled", "precompiled_charsmap": base64.StdEncoding.EncodeToString(sp.charsmap)})
	}
	norms = append(norms, m{"type": "Replace", "pattern": m{"Regex": " {2,}"}, "content": " "})
	vocab := make([][2]any, len(sp.pieces))
	ids := make(map[string]int, len(sp.pieces))
	for i, p := range sp.pieces {
		score := float64(p.score)
		if r := []rune(p.piece); f.commaNumbers && len(r) >= 2 && r[len(r)-1] == ',' && unicode.IsDigit(r[len(r)-2]) {
			score -= 100
		}
		vocab[i] = [2]any{p.piece, score}
		ids[p.piece] = i
	}
	name := func(tok hfToken, def string) string {
		if tok != "" {
			return string(tok)
		}
		return def
	}
	cls, sep, mask := name(tc.ClsToken, "[CLS]"), name(tc.SepToken, "[SEP]"), name(tc.MaskToken, "[MASK]")
	unk, pad := name(tc.UnkToken, f.unk), name(tc.PadToken, f.pad)
	var added []*addedToken
	seen := map[string]bool{}
	for i, p := range sp.pieces {
		if p.typ == spControl || p.typ == spUserDefined {
			added = append(added, &addedToken{ID: int32(i), Content: p.piece, Special: p.typ == spControl})
			seen[p.piece] = true
		}
	}
	for _, s := range []string{unk, cls, sep, pad, mask} {
		if id, ok := ids[s]; ok && !seen[s] {
			added = append(added, &addedToken{ID: int32(id), Content: s, Special: true})
			seen[s] = true
		}
	}
	if _, ok := ids[mask]; !ok && f.appendMask {
		added = append(added, &addedToken{ID: int32(len(sp.pieces)), Content: mask, Special: true})
	}
	for _, a := range added {
		if a.Content == mask {
			a.Lstrip, a.Special = true, true
		}
		if a.Content == sep || a.Content == cls || a.Content == unk || a.Content == pad {
			a.Special = true
		}
	}
	slices.SortFunc(added, func(a, b *addedToken) int { return int(a.ID - b.ID) })
	for _, s := range []string{cls, sep} {
		if _, ok := ids[s]; !ok {
			return nil, fmt.Errorf("%q is not a piece of the model", s)
		}
	}
	specials := m{cls: m{"id": cls, "ids": []int{ids[cls]}, "tokens": []string{cls}}, sep: m{"id": sep, "ids": []int{ids[sep]}, "tokens": []string{sep}}}
	st := func(id string, typ int) m { return m{"SpecialToken": m{"id": id, "type_id": typ}} }
	sq := func(id string, typ int) m { return m{"Sequence": m{"id": id, "type_id": typ}} }
	doc := m{
		"version":       "1.0",
		"truncation":    nil,
		"padding":       nil,
		"added_tokens":  added,
		"normalizer":    m{"type": "Sequence", "normalizers": norms},
		"pre_tokenizer": m{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true},
		"post_processor": m{"type": "TemplateProcessing",
			"single":         []m{st(cls, 0), sq("A", 0), st(sep, 0)},
			"pair":           []m{st(cls, 0), sq("A", 0), st(sep, 0), sq("B", 1), st(sep, 1)},
			"special_tokens": specials},
		"decoder": m{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true},
		"model":   m{"type": "Unigram", "unk_id": sp.unkID, "vocab": vocab, "byte_fallback": false},
	}
	return json.MarshalIndent(doc, "", "  ")
}
