package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/train"
)

// dataTexts is what predict reads from a data file given with data flags: every record
// as training reads it (the labels are not used), its text — for ner its tokens, joined
// by spaces; for regression with its text pair, pairs[i] ("" for none; pairs nil when no
// record has one) — or for qa its question and context.
func dataTexts(spec shard.Spec, file, task string, warn io.Writer) (texts, pairs []string, qs []train.Question, err error) {
	recs, bad, err := train.ReadAll(spec, file)
	if err != nil {
		return nil, nil, nil, err
	}
	if bad.Count > 0 {
		fmt.Fprintf(warn, "%s: skipped %s\n", file, bad)
	}
	return recordTexts(recs, task)
}

// recordTexts is what predict reads from records of a data file (see dataTexts).
func recordTexts(recs []shard.Record, task string) (texts, pairs []string, qs []train.Question, err error) {
	for _, r := range recs {
		at := fmt.Sprintf("%s:%d", r.Pos.File, r.Pos.Line)
		switch {
		case task == string(model.QA):
			if r.Question == "" || r.Context == "" {
				return nil, nil, nil, fmt.Errorf("%s: no question and context: a qa checkpoint reads squad data", at)
			}
			qs = append(qs, train.Question{ID: r.ID, Question: r.Question, Context: r.Context, Pos: r.Pos})
		case task == string(model.NER) && len(r.Tokens) > 0:
			texts = append(texts, strings.Join(r.Tokens, " "))
		case r.TextPair != "" && task != string(model.Regression):
			return nil, nil, nil, fmt.Errorf("%s: a text pair: predict classifies single texts (regression models score pairs)", at)
		case r.Text == "":
			return nil, nil, nil, fmt.Errorf("%s: no text (a %s checkpoint reads texts, e.g. from csv, tsv, jsonl or labeltext)", at, task)
		default:
			if r.TextPair != "" && pairs == nil {
				pairs = make([]string, len(texts), len(recs))
			}
			if pairs != nil {
				pairs = append(pairs, r.TextPair)
			}
			texts = append(texts, r.Text)
		}
	}
	return texts, pairs, qs, nil
}
