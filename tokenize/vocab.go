package tokenize

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"unicode/utf8"
)

// Vocab is a WordPiece vocabulary: token i has id i.
type Vocab struct {
	tokens []string
	ids    map[string]int32
}

// NewVocab builds a vocabulary from tokens in id order. Tokens must be unique and non-empty.
func NewVocab(tokens []string) (*Vocab, error) {
	v := &Vocab{tokens: tokens, ids: make(map[string]int32, len(tokens))}
	if len(tokens) == 0 {
		return nil, fmt.Errorf("vocab: no tokens")
	}
	for i, tok := range tokens {
		if tok == "" {
			return nil, fmt.Errorf("vocab: token %d is empty", i)
		}
		if prev, dup := v.ids[tok]; dup {
			return nil, fmt.Errorf("vocab: token %q appears twice (ids %d and %d)", tok, prev, i)
		}
		v.ids[tok] = int32(i)
	}
	return v, nil
}

// LoadVocab reads a vocab.txt file: one token per line, the id being the line number from 0.
func LoadVocab(path string) (*Vocab, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var tokens []string
	firstLine := make(map[string]int)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for line := 1; sc.Scan(); line++ {
		tok := string(bytes.TrimSuffix(sc.Bytes(), []byte("\r")))
		switch prev, dup := firstLine[tok]; {
		case tok == "":
			return nil, fmt.Errorf("%s:%d: empty token", path, line)
		case !utf8.ValidString(tok):
			return nil, fmt.Errorf("%s:%d: token is not valid UTF-8", path, line)
		case dup:
			return nil, fmt.Errorf("%s:%d: token %q already on line %d", path, line, tok, prev)
		}
		firstLine[tok] = line
		tokens = append(tokens, tok)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", path, len(tokens)+1, err)
	}
	if len(tokens) == 0 {
		return nil, fmt.Errorf("%s: empty vocabulary", path)
	}
	return NewVocab(tokens)
}

// Len is the number of tokens.
func (v *Vocab) Len() int { return len(v.tokens) }

// ID returns the id of tok.
func (v *Vocab) ID(tok string) (int32, bool) {
	id, ok := v.ids[tok]
	return id, ok
}

// Token returns the token with the given id, or "" when out of range.
func (v *Vocab) Token(id int) string {
	if id < 0 || id >= len(v.tokens) {
		return ""
	}
	return v.tokens[id]
}
