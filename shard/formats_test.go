package shard

import (
	"reflect"
	"strings"
	"testing"
)

func TestCSVQuotedFields(t *testing.T) {
	data := "\xEF\xBB\xBFid,text,label\r\n" + // byte order mark, CRLF
		"1,\"two\r\nlines, \"\"quoted\"\"\",pos\r\n" +
		"\r\n" +
		"2,\"\",neg\n" +
		"3,\"a\n\nb\",\"x\"\n" +
		"4,mid\"quote,pos" // no final line break
	path := writeFile(t, "q.csv", data)
	got := norm(readFile(t, Spec{ID: "id"}, path))
	at := func(id string) int64 { return int64(strings.Index(data, "\n"+id+",") + 1) }
	want := []Record{
		{Pos: Pos{File: path, Offset: at("1"), Line: 2}, ID: "1", Text: "two\nlines, \"quoted\"", Labels: []string{"pos"}},
		{Pos: Pos{File: path, Offset: at("2"), Line: 5}, ID: "2", Text: "", Labels: []string{"neg"}},
		{Pos: Pos{File: path, Offset: at("3"), Line: 6}, ID: "3", Text: "a\n\nb", Labels: []string{"x"}},
		{Pos: Pos{File: path, Offset: at("4"), Line: 9}, ID: "4", Text: "mid\"quote", Labels: []string{"pos"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	// Columns by index, and a semicolon delimiter.
	path = writeFile(t, "semi.csv", "a;b\n\"x;y\";1\n")
	got = readFile(t, Spec{Delimiter: ";", Text: "0", Label: "b"}, path)
	if len(got) != 1 || got[0].Text != "x;y" || got[0].Labels[0] != "1" {
		t.Fatalf("semicolon csv: %+v", got)
	}
}

// TSV does not quote by default: SMS-spam-like fields that start with a
// quote are text. With quote set, TSV quotes like CSV.
func TestTSVQuoting(t *testing.T) {
	path := writeFile(t, "q.tsv", "text\tlabel\n\"Hey\" you\tham\n")
	if got := readFile(t, Spec{}, path); got[0].Text != `"Hey" you` {
		t.Fatalf("unquoted tsv: %q", got[0].Text)
	}
	path = writeFile(t, "q2.tsv", "text\tlabel\n\"a\tb\nc\"\tham\n")
	if got := readFile(t, Spec{Quote: new(true)}, path); len(got) != 1 || got[0].Text != "a\tb\nc" {
		t.Fatalf("quoted tsv: %+v", got)
	}
}

func TestMultiLabel(t *testing.T) {
	path := writeFile(t, "m.csv", "text,tags\nhello,\"a, b ,c\"\n")
	got := readFile(t, Spec{Label: "tags", LabelSep: ","}, path)
	if !reflect.DeepEqual(got[0].Labels, []string{"a", "b", "c"}) {
		t.Fatalf("csv multi-label: %q", got[0].Labels)
	}
	path = writeFile(t, "m.jsonl", `{"text":"x","label":["a",2]}`+"\n"+`{"text":"y","label":"c|d"}`)
	got = readFile(t, Spec{LabelSep: "|"}, path)
	if !reflect.DeepEqual(got[0].Labels, []string{"a", "2"}) || !reflect.DeepEqual(got[1].Labels, []string{"c", "d"}) {
		t.Fatalf("jsonl multi-label: %q %q", got[0].Labels, got[1].Labels)
	}
	path = writeFile(t, "m.txt", "a|b what is this ?\n")
	got = readFile(t, Spec{Format: LabelText, LabelSep: "|"}, path)
	if !reflect.DeepEqual(got[0].Labels, []string{"a", "b"}) || got[0].Text != "what is this ?" {
		t.Fatalf("labeltext multi-label: %+v", got[0])
	}
}

func TestJSONLTokens(t *testing.T) {
	path := writeFile(t, "ner.jsonl", `{"id":"s1","tokens":["New","York"],"ner_tags":[3,4]}`+"\n")
	got := norm(readFile(t, Spec{Tokens: "tokens", Tags: "ner_tags", ID: "id"}, path))
	want := Record{Pos: Pos{File: path, Line: 1}, ID: "s1", Tokens: []string{"New", "York"}, Tags: []string{"3", "4"}}
	if !reflect.DeepEqual(got, []Record{want}) {
		t.Fatalf("got %+v", got)
	}
}

func TestCoNLLColumns(t *testing.T) {
	// CoNLL-2003 layout: token POS chunk NER, space separated, documents.
	data := "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n-DOCSTART- -X- -X- O\n\nPeter NNP B-NP B-PER\n"
	path := writeFile(t, "c.conll", data)
	got := readFile(t, Spec{}, path)
	if len(got) != 2 || !reflect.DeepEqual(got[0].Tags, []string{"B-ORG", "O"}) || got[1].Tokens[0] != "Peter" || got[1].Pos.Line != 8 {
		t.Fatalf("got %+v", got)
	}
	got = readFile(t, Spec{Tags: "1"}, path)
	if !reflect.DeepEqual(got[0].Tags, []string{"NNP", "VBZ"}) {
		t.Fatalf("tags from column 1: %v", got[0].Tags)
	}
}

func TestSQuADv2(t *testing.T) {
	data := `{"version": "v2.0", "data": [{"title": "T", "paragraphs": [
	{"context": "Ça va à Zürich.", "qas": [
		{"id": "a", "question": "Where?", "answers": [{"text": "Zürich", "answer_start": 8}], "is_impossible": false},
		{"id": "b", "question": "Why?", "answers": [], "plausible_answers": [{"text": "va", "answer_start": 3}], "is_impossible": true}]}]}]}`
	path := writeFile(t, "v2.json", data)
	got := norm(readFile(t, Spec{}, path))
	para := int64(strings.Index(data, `{"context"`))
	want := []Record{
		{Pos: Pos{File: path, Offset: para, Line: 2}, ID: "a", Question: "Where?", Context: "Ça va à Zürich.", Answers: []Answer{{"Zürich", 8}}},
		{Pos: Pos{File: path, Offset: para, Index: 1, Line: 2}, ID: "b", Question: "Why?", Context: "Ça va à Zürich.", Impossible: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

func TestFormatOf(t *testing.T) {
	for path, want := range map[string]Format{"a.csv": CSV, "a.TSV": TSV, "a.jsonl": JSONL, "a.ndjson": JSONL, "a.conll": CoNLL, "dev-v2.0.json": SQuAD} {
		if f, ok := FormatOf(path); !ok || f != want {
			t.Errorf("FormatOf(%q) = %q, %v; want %q", path, f, ok, want)
		}
	}
	if f, ok := FormatOf("train.txt"); ok {
		t.Errorf("FormatOf(train.txt) = %q: .txt is ambiguous", f)
	}
}
