package train

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/bertnode/bertnode/dataset"
	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/tokenize"
)

// Example is one encoded training or evaluation example.
type Example struct {
	Enc    tokenize.Encoding
	Label  int       // classify; choice: the right choice
	Target []float32 // multilabel: one 0/1 per class; regression: the scores
	Text   string    // for error analysis
	Pos    shard.Pos

	Words []string // ner: the sentence
	Tags  []string // ner: the gold tag of each word

	Window   *tokenize.QAFeature // qa: the context window; Enc is its encoding
	Question *tokenize.QAExample // qa: the question, shared by its windows

	Positive     *tokenize.Encoding // embed: the text's pair, its positive; Enc is the anchor
	PositiveText string
	Negative     *tokenize.Encoding // embed: a hard negative, or nil
	NegativeText string

	ChoiceEncs  []tokenize.Encoding // choice: the text with each choice; Enc is the first
	ChoiceTexts []string
}

// Dataset is the encoded examples of one file (or part of one).
type Dataset struct {
	Examples []Example
	Bad      shard.Bad
}

// readRecords reads every record of path, reporting skipped bad records to out.
func readRecords(spec shard.Spec, path string, out io.Writer) ([]shard.Record, error) {
	recs, bad, err := ReadAll(spec, path)
	if bad.Count > 0 {
		fmt.Fprintf(out, "%s: skipped %s\n", path, bad)
	}
	return recs, err
}

// ReadAll reads every record of a data file (a path or an hf:// URL, see package
// dataset), as training reads it, and says which bad records it skipped (with
// spec.SkipBadRecords). A file without records is an error.
func ReadAll(spec shard.Spec, path string) ([]shard.Record, shard.Bad, error) {
	f, err := dataset.Resolve(path, spec)
	if err != nil {
		return nil, shard.Bad{}, err
	}
	return f.ReadAll()
}

// loadTokenizer loads a tokenizer from a directory, a vocab.txt or a tokenizer.json.
func loadTokenizer(path string, lowercase bool) (*tokenize.Tokenizer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	switch {
	case st.IsDir():
		return tokenize.Load(path)
	case filepath.Ext(path) == ".json":
		return tokenize.FromTokenizerJSON(path)
	}
	return tokenize.FromVocabFile(path, lowercase)
}
