package shard

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readPairs reads every record of content written to a file named name.
func readPairs(t *testing.T, spec Spec, name, content string) ([]Record, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := OpenFile(spec, path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var recs []Record
	for {
		var rec Record
		if err := r.Next(&rec); errors.Is(err, io.EOF) {
			return recs, nil
		} else if err != nil {
			return recs, err
		}
		recs = append(recs, rec)
	}
}

// Unlabeled specs read text pairs without labels from csv, tsv and jsonl, text_pair
// by default from the "text_pair" column or field; labels are refused by name.
func TestUnlabeledPairs(t *testing.T) {
	for _, c := range []struct {
		name, file, content string
		spec                Spec
	}{
		{"csv with header", "p.csv", "text,text_pair\nhow old are you,what is your age\n\"a, b\",c\n", Spec{}},
		{"tsv without header", "p.tsv", "how old are you\twhat is your age\na, b\tc\n", Spec{Header: new(bool), Text: "0", TextPair: "1"}},
		{"jsonl", "p.jsonl", `{"text": "how old are you", "text_pair": "what is your age", "label": "ignored"}` + "\n" + `{"text": "a, b", "text_pair": "c"}` + "\n", Spec{}},
		{"jsonl named fields", "p.jsonl", `{"anchor": "how old are you", "positive": "what is your age"}` + "\n" + `{"anchor": "a, b", "positive": "c"}` + "\n", Spec{Text: "anchor", TextPair: "positive"}},
	} {
		c.spec.Unlabeled = true
		recs, err := readPairs(t, c.spec, c.file, c.content)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if len(recs) != 2 || recs[0].Text != "how old are you" || recs[0].TextPair != "what is your age" ||
			recs[1].Text != "a, b" || recs[1].TextPair != "c" || len(recs[0].Labels)+len(recs[1].Labels) > 0 {
			t.Errorf("%s: %+v", c.name, recs)
		}
	}
	for _, c := range []struct {
		name string
		spec Spec
		file string
		want string
	}{
		{"labeltext", Spec{Format: LabelText}, "p.txt", "format: labeltext: text pairs without labels"},
		{"a label", Spec{Format: CSV, Label: "score"}, "p.csv", `label: "score"`},
		{"label_sep", Spec{Format: JSONL, LabelSep: "|"}, "p.jsonl", "label_sep"},
	} {
		c.spec.Unlabeled = true
		if err := c.spec.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	_, err := readPairs(t, Spec{Unlabeled: true}, "p.jsonl", `{"text": "no pair"}`+"\n")
	if err == nil || !strings.Contains(err.Error(), "p.jsonl:1") || !strings.Contains(err.Error(), "text_pair") {
		t.Errorf("a record without its pair: %v", err)
	}
}

// A negative column or field gives each pair a hard negative; it is required where
// named, and only pairs without labels have one.
func TestHardNegatives(t *testing.T) {
	for _, c := range []struct{ file, content string }{
		{"p.csv", "text,text_pair,hard\nhow old are you,what is your age,what is your name\n"},
		{"p.jsonl", `{"text": "how old are you", "text_pair": "what is your age", "hard": "what is your name"}` + "\n"},
	} {
		recs, err := readPairs(t, Spec{Unlabeled: true, Negative: "hard"}, c.file, c.content)
		if err != nil || len(recs) != 1 || recs[0].Negative != "what is your name" || recs[0].TextPair != "what is your age" {
			t.Errorf("%s: %+v, %v", c.file, recs, err)
		}
	}
	_, err := readPairs(t, Spec{Unlabeled: true, Negative: "hard"}, "p.jsonl", `{"text": "a", "text_pair": "b"}`+"\n")
	if err == nil || !strings.Contains(err.Error(), "p.jsonl:1") || !strings.Contains(err.Error(), "hard") {
		t.Errorf("a record without its negative: %v", err)
	}
	if err := (Spec{Format: CSV, Negative: "hard"}).Validate(); err == nil || !strings.Contains(err.Error(), "task embed") {
		t.Errorf("a negative for labelled data: %v", err)
	}
}

// Format text is one text per line, blank lines skipped, for mlm only; a .txt file
// must say which format it is (TestFormatOf).
func TestLinesFormat(t *testing.T) {
	recs, err := readPairs(t, Spec{Format: Lines, Unlabeled: true, Single: true}, "corpus.txt", "the first text\r\n\n  \nthe second, text\n")
	if err != nil || len(recs) != 2 || recs[0].Text != "the first text" || recs[1].Text != "the second, text" || recs[1].Pos.Line != 4 {
		t.Fatalf("%+v, %v", recs, err)
	}
	for _, s := range []Spec{{Format: Lines}, {Format: Lines, Unlabeled: true}} {
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "task mlm") {
			t.Errorf("%+v: %v, want it refused outside mlm", s, err)
		}
	}
}
