package shard

import (
	"reflect"
	"strings"
	"testing"
)

func TestCollectLabels(t *testing.T) {
	recs := []Record{
		{Labels: []string{"10"}}, {Labels: []string{"2"}}, {Labels: []string{"2", "-1"}}, {Labels: []string{"10"}},
	}
	set, err := CollectLabels(SliceSource(recs))
	if err != nil {
		t.Fatal(err)
	}
	if got := set.Names(); !reflect.DeepEqual(got, []string{"-1", "2", "10"}) {
		t.Fatalf("numeric labels sort as numbers: %q", got)
	}
	set, _ = CollectLabels(SliceSource([]Record{{Tokens: []string{"a", "b"}, Tags: []string{"O", "B-loc"}}, {Labels: []string{"10"}}}))
	if got := set.Names(); !reflect.DeepEqual(got, []string{"10", "B-loc", "O"}) {
		t.Fatalf("mixed labels sort bytewise: %q", got)
	}
	if id, ok := set.ID("O"); !ok || id != 2 {
		t.Fatalf("ID(O) = %d, %v", id, ok)
	}
}

func TestLabelIDsOnRealData(t *testing.T) {
	spec := Spec{Format: LabelText, Delimiter: "\t"}
	path := realFile(t, "sms_spam/SMSSpamCollection")
	r, err := OpenFile(spec, path)
	if err != nil {
		t.Fatal(err)
	}
	set, err := CollectLabels(r)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(set.Names(), []string{"ham", "spam"}) {
		t.Fatalf("sms labels: %q", set.Names())
	}
	// A file with a label the set lacks: the error names where it is.
	other := writeFile(t, "x.txt", "ham\thello\neggs\thi\n")
	recs := readFile(t, spec, other)
	ids, err := set.IDs(nil, &recs[0])
	if err != nil || !reflect.DeepEqual(ids, []int{0}) {
		t.Fatalf("IDs(ham) = %v, %v", ids, err)
	}
	_, err = set.IDs(nil, &recs[1])
	if err == nil || !strings.Contains(err.Error(), "x.txt:2 (byte 10): label: unknown label \"eggs\" (known: \"ham\", \"spam\")") {
		t.Fatalf("unknown label: %v", err)
	}
	ner := Record{Pos: Pos{File: "n.conll", Line: 7}, Tokens: []string{"a", "b"}, Tags: []string{"ham", "B-x"}}
	if _, err := set.IDs(nil, &ner); err == nil || !strings.Contains(err.Error(), "n.conll:7 (byte 0): tags[1]: unknown label \"B-x\"") {
		t.Fatalf("unknown tag: %v", err)
	}
	if _, err := NewLabelSet([]string{"a", "b", "a"}); err == nil {
		t.Fatal("duplicate labels accepted")
	}
}

// Scores (task regression) are read as written, fractions and exponents included, and
// name as many outputs as each record has scores.
func TestCollectScores(t *testing.T) {
	path := writeFile(t, "sts.jsonl", `{"text":"a","text_pair":"b","label":4.25}`+"\n"+`{"text":"c","text_pair":"d","label":"-1e-1"}`+"\n"+`{"text":"e","text_pair":"f","label":3}`+"\n")
	spec := Spec{TextPair: "text_pair", Scores: true}
	recs := readFile(t, spec, path)
	var got []string
	for _, r := range recs {
		got = append(got, r.Labels...)
	}
	if !reflect.DeepEqual(got, []string{"4.25", "-1e-1", "3"}) || recs[1].TextPair != "d" {
		t.Fatalf("labels %q, records %+v", got, recs)
	}
	set, err := CollectScores(SliceSource(recs))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(set.Names(), []string{"LABEL_0"}) {
		t.Fatalf("outputs %q", set.Names())
	}
	if v, err := ParseScore("-1e-1"); err != nil || v != -0.1 {
		t.Fatalf("ParseScore: %v, %v", v, err)
	}
	two := []Record{{Labels: []string{"1", "2"}}, {Labels: []string{"3", "4"}}, {Pos: Pos{File: "x.csv", Line: 4}, Labels: []string{"5"}}}
	if set, err := CollectScores(SliceSource(two[:2])); err != nil || set.Len() != 2 {
		t.Fatalf("two scores: %v, %v", set, err)
	}
	if _, err := CollectScores(SliceSource(two)); err == nil || !strings.Contains(err.Error(), "x.csv:4 (byte 0): label: 1 scores, the records before have 2") {
		t.Fatalf("got %v", err)
	}
}
