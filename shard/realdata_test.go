package shard

import (
	"strings"
	"testing"
)

// TestRealDataCounts reads every real dataset and checks the row counts of
// the data README, and the label counts where it gives them.
func TestRealDataCounts(t *testing.T) {
	for _, c := range []struct {
		rel    string
		spec   Spec
		n      int
		labels map[string]int
	}{
		{"sms_spam/SMSSpamCollection", Spec{Format: LabelText, Delimiter: "\t"}, 5574, map[string]int{"ham": 4827, "spam": 747}},
		// The same file as headerless TSV: columns by index.
		{"sms_spam/SMSSpamCollection", Spec{Format: TSV, Header: new(false), Label: "0", Text: "1"}, 5574, map[string]int{"ham": 4827, "spam": 747}},
		{"sst2/train.tsv", Spec{Text: "sentence"}, 60614, nil},
		{"sst2/dev.tsv", Spec{Text: "sentence"}, 6735, nil},
		{"sst2/test.tsv", Spec{Text: "sentence"}, 872, nil},
		{"trec/train.txt", Spec{Format: LabelText, Encoding: "latin-1"}, 5452, nil},
		{"trec/test.txt", Spec{Format: LabelText}, 500, nil},
		{"wnut17/wnut17train.conll", Spec{}, 3394, nil},
		{"wnut17/emerging.dev.conll", Spec{}, 1009, nil},
		{"wnut17/emerging.test.annotated", Spec{Format: CoNLL}, 1287, nil},
		{"squad_v1.1/dev-v1.1.json", Spec{}, 10570, nil},
	} {
		recs := readFile(t, c.spec, realFile(t, c.rel))
		if len(recs) != c.n {
			t.Errorf("%s: %d records, want %d", c.rel, len(recs), c.n)
		}
		if c.labels != nil {
			got := map[string]int{}
			for _, r := range recs {
				got[r.Labels[0]]++
			}
			for l, n := range c.labels {
				if got[l] != n {
					t.Errorf("%s: %d %q, want %d", c.rel, got[l], l, n)
				}
			}
		}
	}
}

// TREC's train.txt is ISO-8859-1: line 66 holds the byte 0xF0, which is 'ð'
// in Latin-1 and invalid as UTF-8.
func TestTRECLatin1(t *testing.T) {
	path := realFile(t, "trec/train.txt")
	recs := readFile(t, Spec{Format: LabelText, Encoding: "latin-1"}, path)
	r := recs[65]
	if r.Pos.Line != 66 || r.Labels[0] != "4" || r.Text != "Which city has the oldest relationship as a sisterðcity with Los Angeles ?" {
		t.Fatalf("line 66: %+v", r)
	}
	err := readErr(Spec{Format: LabelText}, path)
	if err == nil || !strings.Contains(err.Error(), "train.txt:66 ") || !strings.Contains(err.Error(), "0xF0 is not valid utf-8") {
		t.Fatalf("reading latin-1 as utf-8: got %v, want an error at train.txt:66", err)
	}
}

func TestRealDataContent(t *testing.T) {
	sst := readFile(t, Spec{Text: "sentence"}, realFile(t, "sst2/train.tsv"))
	if r := sst[0]; r.Text != "when are bears bears and " || r.Labels[0] != "1" || r.Pos.Line != 2 {
		t.Errorf("sst2 first record: %+v", r)
	}
	wnut := readFile(t, Spec{}, realFile(t, "wnut17/wnut17train.conll"))
	r := wnut[0]
	if r.Tokens[0] != "@paulwalk" || len(r.Tokens) != len(r.Tags) || r.Tokens[14] != "Empire" || r.Tags[14] != "B-location" || r.Tags[15] != "I-location" {
		t.Errorf("wnut first sentence: %v %v", r.Tokens, r.Tags)
	}
	if r := wnut[1]; r.Pos.Line != len(wnut[0].Tokens)+2 {
		t.Errorf("wnut second sentence at line %d, want %d", r.Pos.Line, len(wnut[0].Tokens)+2)
	}
	squad := readFile(t, Spec{}, realFile(t, "squad_v1.1/dev-v1.1.json"))
	answers, nonASCII := 0, 0
	for _, q := range squad {
		for _, a := range q.Answers {
			answers++
			// Start counts runes: the answer is at that character offset.
			if got := string([]rune(q.Context)[a.Start : a.Start+len([]rune(a.Text))]); got != a.Text {
				t.Fatalf("%s: answer %q at %d reads %q", q.ID, a.Text, a.Start, got)
			}
			if len(q.Context) != len([]rune(q.Context)) {
				nonASCII++
			}
		}
	}
	if q := squad[0]; q.ID != "56be4db0acb8001400a502ec" || q.Question != "Which NFL team represented the AFC at Super Bowl 50?" || q.Answers[0] != (Answer{"Denver Broncos", 177}) {
		t.Errorf("squad first question: %+v", q)
	}
	if answers != 34726 || nonASCII == 0 {
		t.Errorf("squad: %d answers (want 34726), %d in non-ASCII contexts (want some)", answers, nonASCII)
	}
}
