package shard

import (
	"errors"
	"strings"
	"testing"
)

// TestBadInput: each kind of bad input fails with an error that names the
// file, the line and, where there is one, the field.
func TestBadInput(t *testing.T) {
	squadOK := `{"data": [{"title": "T", "paragraphs": [{"context": "abc def", "qas": [{"id": "1", "question": "q?", "answers": [{"text": "def", "answer_start": 4}]}]}]}]}`
	for _, c := range []struct {
		name, file, data string
		spec             Spec
		want             []string // substrings of the error
	}{
		{"missing column in header", "a.csv", "text,lbl\nhi,1\n", Spec{}, []string{"a.csv:1 ", `label: column "label" is not in the header ("text", "lbl")`}},
		{"missing column in a row", "a.csv", "text,label\nhi,1\nonly text\n", Spec{}, []string{"a.csv:3 ", `column "label": missing: the record has 1 field(s)`}},
		{"missing column, no header", "a.tsv", "1\thi\n0\n", Spec{Header: new(false), Label: "0", Text: "1"}, []string{"a.tsv:2 ", `column "1": missing`}},
		{"column name without header", "a.tsv", "1\thi\n", Spec{Header: new(false), Text: "sentence", Label: "0"}, []string{"text", `"sentence" is a column name but header is false`}},
		{"empty label", "a.csv", "text,label\nhi,\n", Spec{}, []string{"a.csv:2 ", `column "label": empty label`}},
		{"empty part of a multi-label", "a.txt", "a||b text\n", Spec{Format: LabelText, LabelSep: "|"}, []string{"a.txt:1 ", "label: empty label in"}},
		{"label of the wrong type", "a.jsonl", `{"text":"a","label":1}` + "\n" + `{"text":"b","label":{"x":1}}`, Spec{}, []string{"a.jsonl:2 ", `field "label": want a string or an integer, got an object`}},
		{"fractional label", "a.jsonl", `{"text":"a","label":1.5}`, Spec{}, []string{"a.jsonl:1 ", `field "label": want a string or an integer, got the number 1.5`}},
		{"score not a number", "a.jsonl", `{"text":"a","score":2.5}` + "\n" + `{"text":"b","score":"high"}`, Spec{Label: "score", Scores: true}, []string{"a.jsonl:2 ", `field "score": want a number (a regression score), got "high"`}},
		{"score of the wrong type", "a.jsonl", `{"text":"a","label":[1.5,{}]}`, Spec{Scores: true}, []string{"a.jsonl:1 ", `field "label[1]": want a number or a string, got an object`}},
		{"score not a number in csv", "a.csv", "s1,s2,score\na,b,4.2\nc,d,n/a\n", Spec{Text: "s1", TextPair: "s2", Label: "score", Scores: true}, []string{"a.csv:3 ", `column "score": want a number (a regression score), got "n/a"`}},
		{"infinite score", "a.tsv", "text\tlabel\na\t1e999\n", Spec{Scores: true}, []string{"a.tsv:2 ", `column "label": want a number (a regression score), got "1e999"`}},
		{"score not a number in labeltext", "a.txt", "0.5 fine\nbig text\n", Spec{Format: LabelText, Scores: true}, []string{"a.txt:2 ", `label: want a number (a regression score), got "big"`}},
		{"scores from conll", "a.conll", "a\tO\n", Spec{Scores: true}, []string{"format: conll holds tokens and tags or answers, not a label to read as a regression score"}},
		{"text of the wrong type", "a.jsonl", `{"text":["a"],"label":1}`, Spec{}, []string{"a.jsonl:1 ", `field "text": want a string, got an array`}},
		{"null text", "a.jsonl", `{"text":"a","label":1}` + "\n" + `{"text":null,"label":1}`, Spec{}, []string{"a.jsonl:2 ", `field "text": want a string, got null`}},
		{"missing field", "a.jsonl", `{"txt":"a","label":1}`, Spec{}, []string{"a.jsonl:1 ", `field "text": missing`}},
		{"truncated JSON line", "a.jsonl", `{"text":"a","label":1}` + "\n" + `{"text": "abc`, Spec{}, []string{"a.jsonl:2 ", "invalid JSON object: unexpected end of JSON input"}},
		{"tags and tokens disagree", "a.jsonl", `{"tokens":["a","b"],"tags":["O"]}`, Spec{Tokens: "tokens"}, []string{"a.jsonl:1 ", `field "tags": 1 tags for 2 tokens`}},
		{"truncated SQuAD", "a.json", squadOK[:len(squadOK)-40], Spec{}, []string{"a.json:1 (byte 40)", "truncated JSON: the file ends inside a paragraph object that starts here"}},
		{"truncated SQuAD after a paragraph", "a.json", squadOK[:len(squadOK)-3], Spec{}, []string{"a.json:1 (byte 152)", "truncated JSON: the file ends inside an article object"}},
		{"not SQuAD", "a.json", `{"version": 1}`, Spec{}, []string{"a.json:1 ", `no "data" array`}},
		{"SQuAD answer_start of the wrong type", "a.json", strings.Replace(squadOK, `"answer_start": 4`, `"answer_start": "4"`, 1), Spec{}, []string{"a.json:1 (byte 40)", "qas.answers.answer_start: want int, got a JSON string"}},
		{"SQuAD answer not at answer_start", "a.json", strings.Replace(squadOK, `"answer_start": 4`, `"answer_start": 3`, 1), Spec{}, []string{"a.json:1 (byte 40)", `qas[0].answers[0].text: "def" is not in the context at character 3`}},
		{"SQuAD answer_start past the context", "a.json", strings.Replace(squadOK, `"answer_start": 4`, `"answer_start": 99`, 1), Spec{}, []string{`qas[0].answers[0].answer_start: 99 is outside the context (7 characters)`}},
		{"SQuAD v1 question without answers", "a.json", strings.Replace(squadOK, `[{"text": "def", "answer_start": 4}]`, `[]`, 1), Spec{}, []string{"qas[0].answers: none; a question without an answer needs is_impossible"}},
		{"SQuAD missing context", "a.json", strings.Replace(squadOK, `"context"`, `"kontext"`, 1), Spec{}, []string{"a.json:1 (byte 40)", "context: missing"}},
		{"empty csv", "a.csv", "", Spec{}, []string{"a.csv: empty file"}},
		{"blank csv", "a.csv", "\n\n", Spec{}, []string{"a.csv: empty file: no header line"}},
		{"empty json", "a.json", " ", Spec{}, []string{"a.json:1 (byte 1): empty file"}},
		{"invalid UTF-8", "a.tsv", "text\tlabel\nok\t1\nbad \xff byte\t1\n", Spec{}, []string{"a.tsv:3 ", "byte 0xFF is not valid utf-8"}},
		{"invalid UTF-8 in a quoted field's second line", "a.csv", "text,label\n\"ok\nbad \xc3\x28\",1\n", Spec{}, []string{"a.csv:3 (byte 11)", "byte 0xC3 is not valid utf-8"}},
		{"invalid UTF-8 in SQuAD", "a.json", strings.Replace(squadOK, "abc", "a\xe9c", 1), Spec{}, []string{"a.json:1 ", "byte 0xE9 is not valid utf-8"}},
		{"byte undefined in windows-1252", "a.txt", "1 ok\n2 caf\x81\n", Spec{Format: LabelText, Encoding: "cp1252"}, []string{"a.txt:2 ", "byte 0x81 is not valid windows-1252"}},
		{"unclosed quote", "a.csv", "text,label\n\"never closed,1\nnext,1\n", Spec{}, []string{"a.csv:2 ", "quoted field is not closed before the end of the file"}},
		{"text after a closing quote", "a.csv", "text,label\n\"quoted\" more,1\n", Spec{}, []string{"a.csv:2 ", "text after the closing quote"}},
		{"CoNLL line without a tag", "a.conll", "a\tO\nb\tO\n\nc\tO\nd\n", Spec{}, []string{"a.conll:5 ", "1 column(s), want token column 0 and tag column -1"}},
		{"label without text", "a.txt", "0 what ?\nspam\n", Spec{Format: LabelText}, []string{"a.txt:2 ", "no space or tab between label and text"}},
		{"unknown format", "a.xml", "<a/>", Spec{}, []string{"a.xml: format: not set, and not implied by the extension"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := readErr(c.spec, writeFile(t, c.file, c.data))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

// TestSkipBadRecords: bad records are skipped only when asked, and then
// counted and reported, across a resume too.
func TestSkipBadRecords(t *testing.T) {
	data := "text,label\n" +
		"good 1,a\n" +
		"missing label\n" +
		"good 2,b\n" +
		"bad \xff,a\n" +
		"good 3,\"a\nb\"\n" +
		"empty label,\n" +
		"good 4,c\n"
	path := writeFile(t, "s.csv", data)
	var e *Error
	if err := readErr(Spec{}, path); !errors.As(err, &e) || e.Pos.Line != 3 {
		t.Fatalf("without skipping: got %v, want an *Error at line 3", err)
	}
	spec := Spec{SkipBadRecords: true}
	r, err := OpenFile(spec, path)
	if err != nil {
		t.Fatal(err)
	}
	recs := drain(t, r)
	r.Close()
	var texts []string
	for _, rec := range recs {
		texts = append(texts, rec.Text)
	}
	if strings.Join(texts, "|") != "good 1|good 2|good 3|good 4" {
		t.Fatalf("read %q", texts)
	}
	bad := r.Bad()
	if bad.Count != 3 || len(bad.First) != 3 || bad.First[0].Pos.Line != 3 || bad.First[1].Pos.Line != 5 || bad.First[2].Pos.Line != 8 {
		t.Fatalf("bad records: %v", bad)
	}
	if s := bad.String(); !strings.Contains(s, "3 bad record(s) skipped") || !strings.Contains(s, "s.csv:8 ") {
		t.Fatalf("report: %s", s)
	}
	checkResume(t, "s.csv", spec, path, recs, len(recs), nil)
	// The bytes from the first good record's frame to the last one's end, as
	// stream reads a block, skip the bad records between them too.
	r, err = OpenReaderAt(spec, path, strings.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	var ends []int64
	for range recs {
		var rec Record
		if err := r.Next(&rec); err != nil {
			t.Fatal(err)
		}
		ends = append(ends, r.FrameEnd())
	}
	at := recs[0].Pos
	br, err := OpenBytes(spec, path, []byte(data[:r.First().Offset]), []byte(data[at.Offset:ends[len(ends)-1]]), at)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]Record, len(recs))
	for i := range got {
		if err := br.Next(&got[i]); err != nil {
			t.Fatalf("record %d from the bytes: %v", i, err)
		}
	}
	if !same(norm(got), recs) || br.Bad().Count != 3 {
		t.Fatalf("from the bytes: read %+v, %d bad; want the 4 good records and the 3 bad between them", got, br.Bad().Count)
	}
	// Only bad records: none read, each counted.
	r, err = OpenFile(spec, writeFile(t, "b.csv", "text,label\nx\ny\n"))
	if err != nil {
		t.Fatal(err)
	}
	if none := drain(t, r); len(none) != 0 || r.Bad().Count != 2 {
		t.Fatalf("all bad: read %d records, %v", len(none), r.Bad())
	}
	r.Close()
}

// A SQuAD paragraph that fails to decode is one bad record; resuming inside
// it, or inside a paragraph with a bad question, does not report it twice.
func TestSkipBadSQuADParagraph(t *testing.T) {
	data := `{"data": [{"paragraphs": [
{"context": "x y", "qas": [{"id": "1", "question": "q", "answers": [{"text": "y", "answer_start": 2}]}]},
{"context": 5, "qas": [{"id": "2", "question": "q", "answers": []}]},
{"context": "x y", "qas": [{"id": "3", "question": "q", "answers": [{"text": "x", "answer_start": 1}]}, {"id": "4", "question": "q", "answers": [{"text": "x", "answer_start": 0}]}]}]}]}`
	path := writeFile(t, "p.json", data)
	spec := Spec{SkipBadRecords: true}
	r, err := OpenFile(spec, path)
	if err != nil {
		t.Fatal(err)
	}
	recs := drain(t, r)
	if len(recs) != 2 || recs[0].ID != "1" || recs[1].ID != "4" || r.Bad().Count != 2 {
		t.Fatalf("read %d records (%v), bad: %v", len(recs), recs, r.Bad())
	}
	if f := r.Bad().First; f[0].Pos.Line != 3 || f[0].Field != "context" || f[1].Field != "qas[0].answers[0].text" || f[1].Pos.Index != 0 {
		t.Fatalf("bad: %v", r.Bad())
	}
	checkResume(t, "p.json", spec, path, recs, len(recs), nil)
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		spec Spec
		want string
	}{
		{Spec{Format: "xml"}, `format: unknown format "xml"`},
		{Spec{Encoding: "klingon"}, `encoding: unknown encoding "klingon"`},
		{Spec{Encoding: "utf-16"}, `encoding: encoding "utf-16" is not supported`},
		{Spec{Encoding: "ibm037"}, "not ASCII-compatible"},
		{Spec{Format: CSV, Delimiter: "::"}, "delimiter"},
		{Spec{Format: TSV, Delimiter: `"`}, "delimiter"},
		{Spec{Format: CSV, Text: "t", Label: "t"}, `label: same column as text ("t")`},
		{Spec{Format: SQuAD, Text: "t"}, "text: not used by format squad"},
		{Spec{Format: LabelText, Header: new(true)}, "header: not used by format labeltext"},
		{Spec{Format: CoNLL, Tags: "ner"}, `tags: "ner": conll columns are 0-based indexes`},
		{Spec{Format: CoNLL, Tokens: "-1"}, "tags: same column as tokens"},
		{Spec{Format: JSONL, Tokens: "toks", Text: "t"}, "tokens: token classification"},
		{Spec{Format: JSONL, Tags: "tags"}, "tags: set without tokens"},
		{Spec{Format: LabelText, LabelSep: " "}, "label_sep"},
		{Spec{Format: TSV, Header: new(false), Label: "0"}, "text: required without a header"},
	} {
		err := c.spec.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want %q", c.spec, err, c.want)
		}
	}
	for _, ok := range []Spec{{}, {Format: TSV, Text: "sentence"}, {Encoding: "Latin-1"}, {Encoding: "ISO-8859-15"}, {Format: CoNLL, Tokens: "0", Tags: "3"}, {Format: JSONL, Tokens: "tokens"}} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
}
