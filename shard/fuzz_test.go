package shard

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The fuzz targets read arbitrary bytes in one format, under one of a few specs
// (variant) and with or without SkipBadRecords, and check the reader's promises:
// see checkRead.

func FuzzCSV(f *testing.F) {
	fuzzFormat(f, "d.csv", genCSV, []Spec{
		{Text: "text", Label: "labels", ID: "id", LabelSep: "|"},
		{},
		{Header: new(false), Text: "1", Label: "0"},
		{Delimiter: ";", Text: "0", Label: "b", Encoding: "latin-1"},
	}, "text,label\n\"never closed,1\nnext,1\n", "text,label\n\"quoted\" more,1\nx,\"a\r\nb\"\r", "a;b\n\"x;y\";1\n")
}

func FuzzTSV(f *testing.F) {
	fuzzFormat(f, "d.tsv", genTSV, []Spec{
		{Text: "sentence"},
		{},
		{Header: new(false), Label: "0", Text: "1"},
		{Quote: new(true), Encoding: "cp1252"},
	}, "text\tlabel\n\"Hey\" you\tham\n", "text\tlabel\n\"a\tb\nc\"\tham\n", "1\thi\n0\n")
}

func FuzzJSONL(f *testing.F) {
	fuzzFormat(f, "d.jsonl", genJSONL, []Spec{
		{Text: "sentence1", TextPair: "sentence2", Label: "y", ID: "idx"},
		{},
		{LabelSep: "|"},
		{Tokens: "tokens", Tags: "ner_tags", ID: "id"},
	}, `{"text":"x","label":["a",2]}`+"\n"+`{"text":"y","label":"c|d"}`,
		`{"id":"s1","tokens":["New","York"],"ner_tags":[3,4]}`+"\n",
		`{"text":"a","label":1}`+"\n"+`{"text": "abc`)
}

func FuzzLabelText(f *testing.F) {
	fuzzFormat(f, "d.txt", genLabelText, []Spec{
		{Format: LabelText},
		{Format: LabelText, LabelSep: "|"},
		{Format: LabelText, Delimiter: "\t"},
		{Format: LabelText, Encoding: "cp1252"},
	}, "a|b what is this ?\n", "0 what ?\nspam\n", "1 ok\n2 caf\x81\n", "ham\t \r\n\nspam\tx")
}

func FuzzCoNLL(f *testing.F) {
	fuzzFormat(f, "d.conll", genCoNLL, []Spec{
		{},
		{Tags: "1"},
		{Delimiter: "\t", Tokens: "-2"},
		{Encoding: "cp1252"},
	}, "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n-DOCSTART- -X- -X- O\n\nPeter NNP B-NP B-PER\n",
		"a\tO\nb\tO\n\nc\tO\nd\n", "x O\r\n\r\n\t\n")
}

func FuzzSQuAD(f *testing.F) {
	ok := `{"data": [{"title": "T", "paragraphs": [{"context": "abc def", "qas": [{"id": "1", "question": "q?", "answers": [{"text": "def", "answer_start": 4}]}]}]}]}`
	fuzzFormat(f, "d.json", genSQuAD, []Spec{{}, {Encoding: "latin-1"}},
		ok, ok[:len(ok)-40], ok[:len(ok)-3], `{"version": 1}`, " ",
		strings.Replace(ok, `"answer_start": 4`, `"answer_start": 99`, 1),
		`{"data": [{"paragraphs": [
{"context": "x y", "qas": [{"id": "1", "question": "q", "answers": [{"text": "y", "answer_start": 2}]}]},
{"context": 5, "qas": [{"id": "2", "question": "q", "answers": []}]},
{"context": "x y", "qas": [{"id": "3", "question": "q", "answers": [{"text": "x", "answer_start": 1}]}, {"id": "4", "question": "q", "answers": [{"text": "x", "answer_start": 0}]}]}]}]}`)
}

// fuzzFormat seeds a target with a generated dataset under specs[0], and edge
// cases under every spec, and checks each input with checkRead.
func fuzzFormat(f *testing.F, name string, gen func(*rand.Rand, int) dataset, specs []Spec, edge ...string) {
	f.Add([]byte(gen(rand.New(rand.NewPCG(1, 2)), 6).data), uint8(0), false)
	for i := range specs {
		for _, e := range edge {
			f.Add([]byte(e), uint8(i), i%2 == 1)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, variant uint8, skip bool) {
		spec := specs[int(variant)%len(specs)]
		spec.SkipBadRecords = skip
		checkRead(t, spec, name, data)
	})
}

// checkRead reads data as file name to the end and checks that: reading ends,
// with at most one record per byte; an error names the file, and a position in
// it; each record's position is in the file, after the last one's, on the line
// it says; a reader reopened at the resume point before each record (with its
// line, and without) reads that record next, or after the last one what the
// first reader read there; the bytes of each record's frame read back as the
// record; and the bytes of each block of 3 records read back as those records.
func checkRead(t *testing.T, spec Spec, name string, data []byte) {
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	lineOf := func(off int64) int { return 1 + bytes.Count(data[:off], []byte{'\n'}) }
	checkErr := func(err error) {
		t.Helper()
		if !strings.Contains(err.Error(), path) {
			t.Fatalf("error does not name the file: %v", err)
		}
		var e *Error
		if errors.As(err, &e) && (e.Pos.File != path || e.Pos.Offset < 0 || e.Pos.Offset > int64(len(data)) ||
			e.Pos.Line < lineOf(e.Pos.Offset) || e.Pos.Line > lineOf(int64(len(data)))) {
			t.Fatalf("error at a position not in the file (%d bytes, %d lines): %+v: %v", len(data), lineOf(int64(len(data))), e.Pos, err)
		}
	}
	r, err := OpenReaderAt(spec, path, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		checkErr(err)
		return
	}
	head := data[:r.First().Offset]
	var recs []Record
	var ends []int64
	resume := []Pos{r.Pos()} // resume[k]: the resume point before record k
	var last error           // what reading ended with, if not io.EOF
	var rec Record
	for {
		if len(recs) > len(data) {
			t.Fatalf("%d records from %d bytes: reading does not end", len(recs), len(data))
		}
		err := r.Next(&rec)
		if err == io.EOF {
			break
		}
		if err != nil {
			checkErr(err)
			if again := r.Next(&rec); again != err {
				t.Fatalf("error not sticky: %v, then %v", err, again)
			}
			last = err
			break
		}
		p := rec.Pos
		if p.File != path || p.Offset < r.First().Offset || p.Offset >= int64(len(data)) || p.Line != lineOf(p.Offset) {
			t.Fatalf("record %d at %+v: not a frame's position in the file (%d bytes, records from %d), or not on line %d",
				len(recs), p, len(data), r.First().Offset, lineOf(min(max(p.Offset, 0), int64(len(data)))))
		}
		if n := len(recs); n > 0 && (p.Offset < recs[n-1].Pos.Offset || p.Offset == recs[n-1].Pos.Offset && p.Index <= recs[n-1].Pos.Index) {
			t.Fatalf("record %d at %+v does not follow record %d at %+v", n, p, n-1, recs[n-1].Pos)
		}
		recs = append(recs, rec.Clone())
		ends = append(ends, r.FrameEnd())
		resume = append(resume, r.Pos())
	}

	sh := Shard{File: path, End: int64(len(data)), Line: 1}
	for k, at := range resume {
		for _, pos := range []Pos{at, {File: at.File, Offset: at.Offset, Index: at.Index}} {
			r2, err := OpenAt(spec, sh, pos)
			if err != nil {
				t.Fatalf("reopen at %+v, the resume point before record %d: %v", pos, k, err)
			}
			err = r2.Next(&rec)
			r2.Close()
			switch {
			case k < len(recs):
				if err != nil || !reflect.DeepEqual(rec.Clone(), recs[k]) {
					t.Fatalf("reopened at %+v, the resume point before record %d:\nread %+v (%v)\nwant %+v", pos, k, rec, err, recs[k])
				}
			case last != nil:
				if err == nil || err.Error() != last.Error() {
					t.Fatalf("reopened at %+v, after the last record: %v, want the error %v", pos, err, last)
				}
			case err != io.EOF:
				t.Fatalf("reopened at %+v, after the last record: %v (%+v), want EOF", pos, err, rec)
			}
		}
	}

	for i, want := range recs {
		br, err := OpenBytes(spec, path, head, data[want.Pos.Offset:ends[i]], want.Pos)
		if err != nil {
			t.Fatalf("record %d from its frame's bytes [%d, %d): %v", i, want.Pos.Offset, ends[i], err)
		}
		if err := br.Next(&rec); err != nil || !reflect.DeepEqual(rec.Clone(), want) {
			t.Fatalf("record %d from its frame's bytes [%d, %d):\nread %+v (%v)\nwant %+v", i, want.Pos.Offset, ends[i], rec, err, want)
		}
	}

	// Blocks of up to 3 records, as stream cuts them (a SQuAD paragraph may end
	// one block and start the next), read back from their bytes.
	for i := 0; i < len(recs); i += 3 {
		j := min(i+3, len(recs))
		at := recs[i].Pos
		br, err := OpenBytes(spec, path, head, data[at.Offset:ends[j-1]], at)
		if err != nil {
			t.Fatalf("records %d..%d from their bytes [%d, %d): %v", i, j-1, at.Offset, ends[j-1], err)
		}
		for k := i; k < j; k++ {
			if err := br.Next(&rec); err != nil || !reflect.DeepEqual(rec.Clone(), recs[k]) {
				t.Fatalf("records %d..%d from their bytes [%d, %d): record %d:\nread %+v (%v)\nwant %+v", i, j-1, at.Offset, ends[j-1], k, rec, err, recs[k])
			}
		}
	}
}
