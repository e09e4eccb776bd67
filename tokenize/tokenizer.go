package tokenize

import (
	"fmt"
	"slices"
	"sync"
	"unicode/utf8"
)

// Config mirrors the settings of Hugging Face's BertNormalizer, WordPiece model and
// BERT special tokens.
type Config struct {
	Lowercase            bool // uncased models
	StripAccents         bool // NFD, then drop nonspacing marks; HF defaults it to Lowercase
	CleanText            bool // drop control characters, treat all whitespace as a space
	HandleChineseChars   bool // every CJK ideograph is a word of its own
	MaxInputCharsPerWord int  // longer words become UnkToken

	ContinuingSubwordPrefix string
	UnkToken                string
	ClsToken                string
	SepToken                string
	PadToken                string
	MaskToken               string
}

// BertConfig is the configuration of the original BERT tokenizers: bert-base-uncased
// with lowercase, bert-base-cased without.
func BertConfig(lowercase bool) Config {
	return Config{
		Lowercase:               lowercase,
		StripAccents:            lowercase,
		CleanText:               true,
		HandleChineseChars:      true,
		MaxInputCharsPerWord:    100,
		ContinuingSubwordPrefix: "##",
		UnkToken:                "[UNK]",
		ClsToken:                "[CLS]",
		SepToken:                "[SEP]",
		PadToken:                "[PAD]",
		MaskToken:               "[MASK]",
	}
}

// Tokenizer turns text into model inputs. Its algorithm is WordPiece (BERT),
// byte-level BPE (RoBERTa) or Unigram (ALBERT, SentencePiece), each with the
// normalization, pre-tokenization and special tokens of its Hugging Face tokenizer.
// Once its truncation is set (SetTruncation, before it is shared) it is immutable and
// safe for concurrent use.
type Tokenizer struct {
	cfg   Config
	vocab *Vocab
	algo  splitter
	words splitter // for EncodeWords when it differs from algo (byte-level BPE)
	kind  string
	post  template
	trunc Truncation

	unk, cls, sep, pad, mask int32

	// For BPE and Unigram: the tokenizer.json the tokenizer was built from, and the
	// legacy files it came with (vocab.json and merges.txt, or spiece.model), which
	// Save writes back.
	doc    []byte
	legacy map[string][]byte

	scratch sync.Pool
}

// splitter splits one sequence into pieces: the algorithm behind the facade. Word
// ids are fixedWord when it is not negative, else one per pre-tokenized word.
type splitter interface {
	split(s *scratch, dst *pieces, text string, fixedWord int32)
}

// Algorithms.
const (
	WordPiece = "WordPiece"
	BPE       = "BPE"
	Unigram   = "Unigram"
)

// wordPiece is BERT's pipeline: BertNormalizer, BertPreTokenizer and WordPiece,
// fused into one pass (split.go).
type wordPiece struct {
	cfg Config

	// Word-initial and continuation pieces are kept apart, the latter without their
	// prefix, so a candidate piece is looked up as a sub-slice of the word with no
	// string building.
	initial, cont       map[string]int32
	maxInitial, maxCont int // longest piece of each kind in bytes: longer candidates cannot match
	unk                 int32

	added *addedVocab // special tokens, matched whole in raw text before normalization
	ascii [utf8.RuneSelf]asciiAction
}

// New builds a WordPiece tokenizer over vocab. The special tokens named in cfg must be in vocab.
func New(vocab *Vocab, cfg Config) (*Tokenizer, error) {
	if cfg.MaxInputCharsPerWord <= 0 {
		return nil, fmt.Errorf("tokenize: MaxInputCharsPerWord must be positive, got %d", cfg.MaxInputCharsPerWord)
	}
	if cfg.ContinuingSubwordPrefix == "" {
		return nil, fmt.Errorf("tokenize: ContinuingSubwordPrefix is empty")
	}
	t := &Tokenizer{cfg: cfg, vocab: vocab, kind: WordPiece}
	wp := &wordPiece{cfg: cfg}
	var added []*addedToken
	for _, sp := range []struct {
		field, tok string
		id         *int32
	}{
		{"UnkToken", cfg.UnkToken, &t.unk},
		{"ClsToken", cfg.ClsToken, &t.cls},
		{"SepToken", cfg.SepToken, &t.sep},
		{"PadToken", cfg.PadToken, &t.pad},
		{"MaskToken", cfg.MaskToken, &t.mask},
	} {
		id, ok := vocab.ID(sp.tok)
		if !ok {
			return nil, fmt.Errorf("tokenize: %s %q is not in the vocabulary", sp.field, sp.tok)
		}
		*sp.id = id
		if !slices.ContainsFunc(added, func(a *addedToken) bool { return a.ID == id }) {
			added = append(added, &addedToken{ID: id, Content: sp.tok, Special: true})
		}
	}
	wp.unk = t.unk
	wp.setAdded(added)
	wp.initial = make(map[string]int32, vocab.Len())
	wp.cont = make(map[string]int32, vocab.Len()/4)
	prefix := cfg.ContinuingSubwordPrefix
	for id, tok := range vocab.tokens {
		if len(tok) > len(prefix) && tok[:len(prefix)] == prefix {
			piece := tok[len(prefix):]
			wp.cont[piece] = int32(id)
			wp.maxCont = max(wp.maxCont, len(piece))
		}
		wp.initial[tok] = int32(id)
		wp.maxInitial = max(wp.maxInitial, len(tok))
	}
	wp.ascii = asciiActions(cfg)
	t.algo = wp
	t.post = bertTemplate(t.cls, t.sep)
	t.scratch.New = func() any { return new(scratch) }
	return t, nil
}

// setAdded makes tokens, sorted by id, the ones matched whole in the text: BertConverter's
// are the five special tokens of the configuration; a tokenizer.json lists its own.
func (wp *wordPiece) setAdded(tokens []*addedToken) {
	slices.SortFunc(tokens, func(a, b *addedToken) int { return int(a.ID - b.ID) })
	wp.added = newAddedVocab(tokens, nil)
}

// Config returns the tokenizer's configuration. For BPE and Unigram tokenizers only
// its special tokens are set: their normalization is the tokenizer.json's.
func (t *Tokenizer) Config() Config { return t.cfg }

// Algorithm is WordPiece, BPE or Unigram.
func (t *Tokenizer) Algorithm() string { return t.kind }

// Vocab returns the tokenizer's vocabulary.
func (t *Tokenizer) Vocab() *Vocab { return t.vocab }

// Special token ids; -1 for a token the tokenizer does not have (a BPE or Unigram
// tokenizer without a mask token, say). Cls and Sep are the family's: <s> and </s>
// for RoBERTa.
func (t *Tokenizer) PadID() int32  { return t.pad }
func (t *Tokenizer) ClsID() int32  { return t.cls }
func (t *Tokenizer) SepID() int32  { return t.sep }
func (t *Tokenizer) UnkID() int32  { return t.unk }
func (t *Tokenizer) MaskID() int32 { return t.mask }

// scratch is the working memory of one encoding call, pooled so that steady-state
// encoding allocates only its result.
type scratch struct {
	word   []byte  // current word, normalized UTF-8
	origin []int32 // for each byte of word: rune index in the source text
	nrunes int     // runes in word
	dec    []byte  // NFD of one rune
	a, b   pieces  // tokens of the first and second sequence
	p      pipeScratch
}

func (t *Tokenizer) getScratch() *scratch  { return t.scratch.Get().(*scratch) }
func (t *Tokenizer) putScratch(s *scratch) { t.scratch.Put(s) }

// pieces are the tokens of one sequence before special tokens are added.
type pieces struct {
	ids   []int32
	spans []Span
	words []int32
}

func (p *pieces) reset() {
	p.ids, p.spans, p.words = p.ids[:0], p.spans[:0], p.words[:0]
}

func (p *pieces) push(id int32, sp Span, word int32) {
	p.ids = append(p.ids, id)
	p.spans = append(p.spans, sp)
	p.words = append(p.words, word)
}

// Tokens returns the word pieces of text without special tokens: a debugging aid.
func (t *Tokenizer) Tokens(text string) []string {
	s := t.getScratch()
	defer t.putScratch(s)
	s.a.reset()
	t.algo.split(s, &s.a, text, -1)
	out := make([]string, len(s.a.ids))
	for i, id := range s.a.ids {
		out[i] = t.vocab.Token(int(id))
	}
	return out
}
