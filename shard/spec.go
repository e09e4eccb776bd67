package shard

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// Format names a dataset file format.
type Format string

const (
	CSV       Format = "csv"
	TSV       Format = "tsv"
	JSONL     Format = "jsonl"
	LabelText Format = "labeltext"
	CoNLL     Format = "conll"
	SQuAD     Format = "squad"
	Lines     Format = "text" // one text per line, no labels (mlm)
	// Parquet files are read as JSON lines, one object per row, once package dataset
	// has converted them; its fields are jsonl's.
	Parquet Format = "parquet"
)

var formats = []Format{CSV, TSV, JSONL, LabelText, CoNLL, SQuAD, Lines, Parquet}

// FormatOf guesses a file's format from its extension.
func FormatOf(path string) (Format, bool) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".csv":
		return CSV, true
	case ".tsv":
		return TSV, true
	case ".jsonl", ".ndjson":
		return JSONL, true
	case ".conll":
		return CoNLL, true
	case ".json":
		return SQuAD, true
	case ".parquet":
		return Parquet, true
	}
	return "", false
}

// Spec says how to read a dataset file. It is part of a job spec, so the zero
// value of every field means "the format's default".
//
// A column is a header name or a 0-based index written as a number; with a
// header, a name that is in it wins. CoNLL columns are indexes, and may count
// from the end: -1 is the last column.
type Spec struct {
	// Format is one of csv, tsv, jsonl, labeltext, conll, squad, text, parquet; empty
	// means guess from the file's extension.
	Format Format `json:"format,omitempty" yaml:"format,omitempty"`
	// Encoding is utf-8 (the default) or a single-byte charset such as
	// latin-1 (ISO-8859-1), windows-1252 or koi8-r.
	Encoding string `json:"encoding,omitempty" yaml:"encoding,omitempty"`
	// Header says whether a csv or tsv file's first line names its columns
	// (default true).
	Header *bool `json:"header,omitempty" yaml:"header,omitempty"`
	// Delimiter separates fields: one ASCII character for csv (default ",")
	// and tsv (default tab); for labeltext and conll any string, default a run
	// of spaces and tabs.
	Delimiter string `json:"delimiter,omitempty" yaml:"delimiter,omitempty"`
	// Quote says whether '"' quotes fields, which may then hold delimiters,
	// newlines and doubled quotes; default true for csv, false for tsv.
	Quote *bool `json:"quote,omitempty" yaml:"quote,omitempty"`

	// Text, TextPair, Label and ID are columns (csv, tsv) or field names
	// (jsonl). Text defaults to "text" and Label to "label", except in a
	// csv or tsv file without a header.
	Text     string `json:"text,omitempty" yaml:"text,omitempty"`
	TextPair string `json:"text_pair,omitempty" yaml:"text_pair,omitempty"`
	Label    string `json:"label,omitempty" yaml:"label,omitempty"`
	ID       string `json:"id,omitempty" yaml:"id,omitempty"`
	// Negative is a column or field of hard negatives: a text like the text's pair
	// but not its match (text pairs without labels only).
	Negative string `json:"negative,omitempty" yaml:"negative,omitempty"`
	// Choices is the jsonl field holding a multiple-choice record's answers, an array
	// of strings; its label is the right one's 0-based index.
	Choices string `json:"choices,omitempty" yaml:"choices,omitempty"`
	// LabelSep splits a label value into several labels (multi-label), e.g.
	// "|"; in jsonl a JSON array of labels needs no separator.
	LabelSep string `json:"label_sep,omitempty" yaml:"label_sep,omitempty"`

	// Tokens and Tags are the token and tag columns of conll (default 0 and
	// -1), or for token classification in jsonl the fields holding arrays of
	// tokens and tags (default "tags" once Tokens is set).
	Tokens string `json:"tokens,omitempty" yaml:"tokens,omitempty"`
	Tags   string `json:"tags,omitempty" yaml:"tags,omitempty"`

	// SkipBadRecords skips bad records, counting and reporting them, instead
	// of failing on the first.
	SkipBadRecords bool `json:"skip_bad_records,omitempty" yaml:"skip_bad_records,omitempty"`

	// Scores says the labels are numbers (task regression), which the readers
	// check, so that a bad one is a bad record at its line. The task sets it, not
	// the YAML; a plan carries it to the nodes in JSON.
	Scores bool `json:"scores,omitempty" yaml:"-"`

	// Unlabeled records are text pairs without labels (csv, tsv, jsonl; squad's
	// questions and contexts): the task's to say, not the user's (an embedding model
	// trains on pairs). TextPair then defaults to "text_pair" where Text defaults to
	// "text".
	Unlabeled bool `json:"unlabeled,omitempty" yaml:"-"`
	// Single, with Unlabeled, makes the records single texts (mlm's): no text_pair.
	Single bool `json:"single,omitempty" yaml:"-"`
}

// ForTask is s as task reads its data: regression's labels are scores, an embedding
// model's records text pairs without labels (single texts if s is ForPredict's), mlm's
// texts alone, multiple choice's choices in the "choices" field unless s names another.
func (s Spec) ForTask(task string) Spec {
	s.Scores, s.Unlabeled = task == "regression", task == "embed" || task == "mlm"
	s.Single = task == "mlm" || task == "embed" && s.Single
	if task == "choice" && s.Choices == "" {
		s.Choices = "choices"
	}
	return s
}

// ForPredict is s as bertnode predict (and a predict job) reads task's data file: as
// ForTask, but an embedding model embeds single texts, where it trains on pairs.
func (s Spec) ForPredict(task string) Spec {
	s = s.ForTask(task)
	s.Single = s.Single || task == "embed"
	return s
}

// Validate checks the spec on its own, naming the first bad field.
func (s Spec) Validate() error {
	if s.Format != "" && !s.Format.known() {
		return specErr("format", "unknown format %q (want one of %s)", s.Format, formatList())
	}
	if _, err := lookupEncoding(s.Encoding); err != nil {
		return specErr("encoding", "%v", err)
	}
	if s.Format == "" {
		return nil // the rest depends on the format, known once the file is
	}
	return s.withDefaults().validateFor()
}

func (s Spec) validateFor() error {
	f := s.Format
	jsonl := f == JSONL || f == Parquet // a Parquet file's rows are read as JSON lines
	delimited := f == CSV || f == TSV
	use := map[string]bool{
		"header":    delimited,
		"quote":     delimited,
		"delimiter": delimited || f == LabelText || f == CoNLL,
		"text":      delimited || jsonl,
		"text_pair": delimited || jsonl,
		"label":     delimited || jsonl,
		"id":        delimited || jsonl,
		"negative":  delimited || jsonl,
		"choices":   jsonl,
		"label_sep": delimited || jsonl || f == LabelText,
		"tokens":    f == CoNLL || jsonl,
		"tags":      f == CoNLL || jsonl,
	}
	set := map[string]bool{
		"header": s.Header != nil, "quote": s.Quote != nil, "delimiter": s.Delimiter != "",
		"text": s.Text != "", "text_pair": s.TextPair != "", "label": s.Label != "", "id": s.ID != "",
		"label_sep": s.LabelSep != "", "tokens": s.Tokens != "", "tags": s.Tags != "", "negative": s.Negative != "",
		"choices": s.Choices != "",
	}
	for _, name := range []string{"header", "quote", "delimiter", "text", "text_pair", "label", "id", "negative", "choices", "label_sep", "tokens", "tags"} {
		if set[name] && !use[name] {
			return specErr(name, "not used by format %s", f)
		}
	}
	if s.Single && (s.TextPair != "" || s.Negative != "") {
		return specErr(map[bool]string{true: "text_pair", false: "negative"}[s.TextPair != ""], "the task reads single texts (mlm; embed's predictions)")
	}
	if f == Lines && !s.Single {
		return specErr("format", "text: texts alone, one per line, are what task mlm reads and predict embeds; other tasks need labels or pairs (labeltext, csv, tsv, jsonl...)")
	}
	if s.Negative != "" && !s.Unlabeled {
		return specErr("negative", "%q: hard negatives are for embedding models (task embed)", s.Negative)
	}
	if s.Unlabeled {
		switch {
		case !delimited && !jsonl && f != SQuAD && f != Lines && s.Single:
			return specErr("format", "%s: texts without labels are read from text, csv, tsv, jsonl or parquet", f)
		case !delimited && !jsonl && f != SQuAD && f != Lines:
			return specErr("format", "%s: text pairs without labels are read from csv, tsv, jsonl, parquet or squad (question and context)", f)
		case s.Label != "":
			return specErr("label", "%q: text pairs without labels have none", s.Label)
		case s.LabelSep != "" || s.Tokens != "":
			return specErr(map[bool]string{true: "label_sep", false: "tokens"}[s.LabelSep != ""], "not used by text pairs without labels")
		}
	}
	if delimited {
		if len(s.Delimiter) != 1 || s.Delimiter[0] >= 0x80 || strings.ContainsAny(s.Delimiter, "\"\r\n") {
			return specErr("delimiter", "%q: %s needs one ASCII character other than a quote or line break", s.Delimiter, f)
		}
		if s.Text == "" || s.Label == "" && !s.Unlabeled {
			return specErr(map[bool]string{true: "text", false: "label"}[s.Text == ""], "required without a header: give a 0-based column index")
		}
		if !*s.Header {
			for _, c := range [][2]string{{"text", s.Text}, {"text_pair", s.TextPair}, {"label", s.Label}, {"id", s.ID}, {"negative", s.Negative}} {
				if _, err := strconv.Atoi(c[1]); c[1] != "" && err != nil {
					return specErr(c[0], "%q is a column name but header is false: give a 0-based index", c[1])
				}
			}
		}
		if err := distinct([][2]string{{"text", s.Text}, {"text_pair", s.TextPair}, {"label", s.Label}, {"id", s.ID}, {"negative", s.Negative}, {"choices", s.Choices}}); err != nil {
			return err
		}
	}
	if strings.ContainsAny(s.Delimiter, "\r\n") {
		return specErr("delimiter", "%q may not hold a line break", s.Delimiter)
	}
	if f == LabelText && strings.ContainsAny(s.LabelSep, " \t") && s.Delimiter == "" {
		return specErr("label_sep", "%q would split at the label/text delimiter; set delimiter", s.LabelSep)
	}
	if f == CoNLL {
		for _, c := range [][2]string{{"tokens", s.Tokens}, {"tags", s.Tags}} {
			if _, err := strconv.Atoi(c[1]); err != nil {
				return specErr(c[0], "%q: conll columns are 0-based indexes (negative counts from the end)", c[1])
			}
		}
		if s.Tokens == s.Tags {
			return specErr("tags", "same column as tokens (%s)", s.Tokens)
		}
	}
	if s.Scores && (f == CoNLL || f == SQuAD || jsonl && s.Tokens != "") {
		return specErr("format", "%s holds tokens and tags or answers, not a label to read as a regression score", f)
	}
	if jsonl {
		if s.Tokens != "" {
			if s.Text != "" || s.Label != "" || s.TextPair != "" || s.LabelSep != "" {
				return specErr("tokens", "token classification (tokens, tags) cannot be combined with text, text_pair, label or label_sep")
			}
			return distinct([][2]string{{"tokens", s.Tokens}, {"tags", s.Tags}, {"id", s.ID}})
		}
		if s.Tags != "" {
			return specErr("tags", "set without tokens")
		}
		return distinct([][2]string{{"text", s.Text}, {"text_pair", s.TextPair}, {"label", s.Label}, {"id", s.ID}, {"negative", s.Negative}, {"choices", s.Choices}})
	}
	return nil
}

// withDefaults fills in the format's defaults; s.Format must be set.
func (s Spec) withDefaults() Spec {
	t := true
	switch s.Format {
	case CSV, TSV:
		if s.Header == nil {
			s.Header = &t
		}
		if s.Quote == nil {
			q := s.Format == CSV
			s.Quote = &q
		}
		if s.Delimiter == "" {
			s.Delimiter = map[Format]string{CSV: ",", TSV: "\t"}[s.Format]
		}
		if *s.Header && s.Text == "" {
			s.Text = "text"
		}
		if *s.Header && s.Label == "" && !s.Unlabeled {
			s.Label = "label"
		}
		if *s.Header && s.TextPair == "" && s.Unlabeled && !s.Single {
			s.TextPair = "text_pair"
		}
	case JSONL, Parquet:
		if s.Tokens != "" {
			if s.Tags == "" {
				s.Tags = "tags"
			}
			break
		}
		if s.Text == "" {
			s.Text = "text"
		}
		if s.Label == "" && !s.Unlabeled {
			s.Label = "label"
		}
		if s.TextPair == "" && s.Unlabeled && !s.Single {
			s.TextPair = "text_pair"
		}
	case CoNLL:
		if s.Tokens == "" {
			s.Tokens = "0"
		}
		if s.Tags == "" {
			s.Tags = "-1"
		}
	}
	return s
}

// resolve validates s for the file at path and fills in defaults.
func (s Spec) resolve(path string) (Spec, error) {
	if s.Format == "" {
		f, ok := FormatOf(path)
		if !ok {
			return s, fmt.Errorf("%s: format: not set, and not implied by the extension %q", path, filepath.Ext(path))
		}
		s.Format = f
	}
	if err := s.Validate(); err != nil {
		return s, err
	}
	return s.withDefaults(), nil
}

func (f Format) known() bool {
	for _, g := range formats {
		if f == g {
			return true
		}
	}
	return false
}

func formatList() string {
	names := make([]string, len(formats))
	for i, f := range formats {
		names[i] = string(f)
	}
	return strings.Join(names, ", ")
}

func distinct(cols [][2]string) error {
	for i, a := range cols {
		for _, b := range cols[:i] {
			if a[1] != "" && a[1] == b[1] {
				return specErr(a[0], "same column as %s (%q)", b[0], a[1])
			}
		}
	}
	return nil
}

func specErr(field, format string, args ...any) error {
	return fmt.Errorf("shard spec: %s: %s", field, fmt.Sprintf(format, args...))
}
