package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/train"
)

// predictInput is what predict runs a checkpoint on: texts, with their text pairs for
// regression (pairs[i], "" for none; pairs nil when no text has one); qa's questions;
// or choice's questions.
type predictInput struct {
	texts, pairs []string
	questions    []train.Question
	choices      []train.ChoiceQuestion
}

// dataInput is what predict reads from a data file given with data flags: every record
// as predict reads it for task (shard.Spec.ForPredict; the labels are not used).
func dataInput(spec shard.Spec, file, task string, warn io.Writer) (predictInput, error) {
	recs, bad, err := train.ReadAll(spec, file)
	if err != nil {
		return predictInput{}, err
	}
	if bad.Count > 0 {
		fmt.Fprintf(warn, "%s: skipped %s\n", file, bad)
	}
	return recordInput(recs, task)
}

// recordInput is what predict reads from records of a data file: for ner their tokens,
// joined by spaces; for qa their questions and contexts; for choice their texts and
// choices; else their texts (regression: with their text pairs).
func recordInput(recs []shard.Record, task string) (predictInput, error) {
	var in predictInput
	for _, r := range recs {
		at := fmt.Sprintf("%s:%d", r.Pos.File, r.Pos.Line)
		switch {
		case task == string(model.QA):
			if r.Question == "" || r.Context == "" {
				return in, fmt.Errorf("%s: no question and context: a qa checkpoint reads squad data", at)
			}
			in.questions = append(in.questions, train.Question{ID: r.ID, Question: r.Question, Context: r.Context, Pos: r.Pos})
		case task == string(model.Choice):
			if len(r.Choices) < 2 {
				return in, fmt.Errorf("%s: choices: %d; want two or more", at, len(r.Choices))
			}
			in.choices = append(in.choices, train.ChoiceQuestion{Text: r.Text, Choices: r.Choices})
		case task == string(model.NER) && len(r.Tokens) > 0:
			in.texts = append(in.texts, strings.Join(r.Tokens, " "))
		case r.TextPair != "" && task != string(model.Regression):
			return in, fmt.Errorf("%s: a text pair: predict classifies single texts (regression models score pairs)", at)
		case r.Text == "":
			return in, fmt.Errorf("%s: no text (a %s checkpoint reads texts, e.g. from csv, tsv, jsonl or labeltext)", at, task)
		default:
			if r.TextPair != "" && in.pairs == nil {
				in.pairs = make([]string, len(in.texts), len(recs))
			}
			if in.pairs != nil {
				in.pairs = append(in.pairs, r.TextPair)
			}
			in.texts = append(in.texts, r.Text)
		}
	}
	return in, nil
}
