package main

import (
	"strconv"

	"github.com/bertnode/bertnode/shard"
	"github.com/spf13/pflag"
)

// dataSpecFlags binds one flag per field of a data spec, which says how to read a data
// file: the one definition of the data flags, which train, eval, predict and augment
// share (through specFlags and dataFlags).
func dataSpecFlags(f *pflag.FlagSet, d *shard.Spec) {
	f.StringVar((*string)(&d.Format), "format", string(d.Format), "csv | tsv | jsonl | labeltext | conll | squad | parquet (read as jsonl: one object per row, fields its columns) | text (one text per line: mlm; never guessed) (default: from the file's extension)")
	f.StringVar(&d.Text, "text-column", d.Text, "text column or field")
	f.StringVar(&d.Label, "label-column", d.Label, "label column or field (regression: the score, a number)")
	f.StringVar(&d.TextPair, "text-pair-column", d.TextPair, "second text column or field (sentence pairs)")
	f.StringVar(&d.ID, "id-column", d.ID, "id column or field")
	f.StringVar(&d.Choices, "choices-column", d.Choices, "choice: the jsonl or parquet field of each record's choices, an array of strings (default \"choices\"); the label is the right one's index")
	f.StringVar(&d.Negative, "negative-column", d.Negative, "embed: a column or field of hard negatives, each a text like its row's pair but not its match")
	f.StringVar(&d.Tokens, "tokens-column", d.Tokens, "ner: conll's token column (default 0), or jsonl's or parquet's field of token arrays")
	f.StringVar(&d.Tags, "tags-column", d.Tags, "ner: conll's tag column (default -1, the last), or jsonl's or parquet's field of tag arrays")
	f.StringVar(&d.Delimiter, "delimiter", d.Delimiter, "field separator (csv/tsv: one character; labeltext/conll: any string, default a run of spaces and tabs)")
	f.Var(&optBool{&d.Header}, "header", "csv/tsv: the first line names the columns (default true; --header=false: columns are 0-based indexes)")
	f.Lookup("header").NoOptDefVal = "true"
	f.Var(&optBool{&d.Quote}, "quote", "csv/tsv: '\"' quotes fields (default true for csv, false for tsv)")
	f.Lookup("quote").NoOptDefVal = "true"
	f.StringVar(&d.LabelSep, "label-sep", d.LabelSep, "separator of several labels in one field (multilabel), e.g. '|'")
	f.StringVar(&d.Encoding, "encoding", d.Encoding, "input encoding, e.g. latin-1 (default utf-8)")
	f.BoolVar(&d.SkipBadRecords, "skip-bad-records", d.SkipBadRecords, "skip, count and report bad records instead of failing")
}

// dataFlags are the names of the data flags, for addSpecFlags.
var dataFlags = func() []string {
	var names []string
	f := pflag.NewFlagSet("data", pflag.ContinueOnError)
	dataSpecFlags(f, &shard.Spec{})
	f.VisitAll(func(fl *pflag.Flag) { names = append(names, fl.Name) })
	return names
}()

// dataFlagGiven says whether the command line has any data flag.
func dataFlagGiven(f *pflag.FlagSet) bool {
	for _, n := range dataFlags {
		if f.Changed(n) {
			return true
		}
	}
	return false
}

// optBool is a flag for a *bool spec field, which is nil (the format's default) unless
// the flag is given.
type optBool struct{ p **bool }

func (b *optBool) String() string {
	if *b.p == nil {
		return ""
	}
	return strconv.FormatBool(**b.p)
}

func (b *optBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	*b.p = &v
	return nil
}

func (b *optBool) Type() string { return "bool" }
