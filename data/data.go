// Package data holds the small real data shipped with bertnode (see README.md here):
// BERT's uncased WordPiece vocabulary is built into the binary, so that a model made from
// a preset (tiny, mini, small, base) needs no tokenizer file.
package data

import (
	_ "embed"
	"strings"
)

//go:embed vocab/bert-base-uncased.vocab.txt
var uncasedVocab string

// UncasedVocab is bert-base-uncased's vocabulary, one token per id.
func UncasedVocab() []string {
	return strings.Split(strings.TrimSuffix(uncasedVocab, "\n"), "\n")
}
