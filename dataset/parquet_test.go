package dataset

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/internal/parquettest"
	"github.com/bertnode/bertnode/shard"
)

// The rows of GLUE SST-2 as the datasets library writes them: label a ClassLabel.
type sst2Row struct {
	Idx      int32   `parquet:"idx"`
	Sentence *string `parquet:"sentence,optional,dict"`
	Label    int64   `parquet:"label"`
}

const sst2Meta = `{"info": {"features": {"idx": {"dtype": "int32", "_type": "Value"}, "sentence": {"dtype": "string", "_type": "Value"}, "label": {"names": ["negative", "positive"], "_type": "ClassLabel"}}}}`

// CoNLL-2003's shape: tokens and ner_tags, a list of ClassLabel ids.
type nerRow struct {
	ID      string   `parquet:"id,dict"`
	Tokens  []string `parquet:"tokens,list"`
	NerTags []int64  `parquet:"ner_tags,list"`
}

const nerMeta = `{"info": {"features": {"id": {"dtype": "string", "_type": "Value"}, "tokens": {"feature": {"dtype": "string", "_type": "Value"}, "_type": "Sequence"}, "ner_tags": {"feature": {"names": ["O", "B-PER", "I-PER", "B-LOC"], "_type": "ClassLabel"}, "_type": "Sequence"}}}}`

// SQuAD's shape, answers a struct of lists, and other value types.
type answers struct {
	Text        []string `parquet:"text,list"`
	AnswerStart []int32  `parquet:"answer_start,list"`
}

type mixedRow struct {
	Question string    `parquet:"question"`
	Answers  answers   `parquet:"answers"`
	Score    float32   `parquet:"score"`
	Weight   float64   `parquet:"weight"`
	Gold     bool      `parquet:"gold"`
	Rank     *int64    `parquet:"rank,optional"`
	Notes    []*string `parquet:"notes,list"`
	Blob     []byte    `parquet:"blob"`
}

// isolateCache keeps conversions in the test's own cache directory.
func isolateCache(t *testing.T) string {
	dir := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", dir)
	t.Setenv("HOME", dir)
	return dir
}

func str(s string) *string { return &s }

// records reads every record of f, cloned, with the bad ones it skipped.
func records(t *testing.T, r *shard.Reader) ([]shard.Record, shard.Bad) {
	t.Helper()
	defer r.Close()
	var recs []shard.Record
	for {
		var rec shard.Record
		err := r.Next(&rec)
		if errors.Is(err, io.EOF) {
			return recs, r.Bad()
		}
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec.Clone())
	}
}

// sameAsJSONL checks that the Parquet file converts to exactly wantJSONL, and reads
// into the records that wantJSONL, written as a .jsonl file, reads into.
func sameAsJSONL(t *testing.T, pq string, spec shard.Spec, wantJSONL string) []shard.Record {
	t.Helper()
	f, err := Resolve(pq, spec)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(f.Path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != wantJSONL {
		t.Fatalf("conversion:\n%s\nwant:\n%s", got, wantJSONL)
	}
	jl := filepath.Join(t.TempDir(), "same.jsonl")
	if err := os.WriteFile(jl, []byte(wantJSONL), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := f.Open()
	if err != nil {
		t.Fatal(err)
	}
	recs, bad := records(t, r)
	jr, err := shard.OpenFileAs(f.Spec, jl, pq) // named as the Parquet file, to compare positions
	if err != nil {
		t.Fatal(err)
	}
	want, wantBad := records(t, jr)
	if !reflect.DeepEqual(recs, want) {
		t.Fatalf("records:\n%+v\nwant (from the JSONL):\n%+v", recs, want)
	}
	if bad.String() != wantBad.String() {
		t.Fatalf("bad records: %s\nwant: %s", bad, wantBad)
	}
	return recs
}

func TestParquetClassLabelsReadAsNames(t *testing.T) {
	isolateCache(t)
	rows := []sst2Row{
		{0, str("a gripping , funny film"), 1},
		{1, str("dull"), 0},
		{2, nil, 1}, // a null text: a bad record at its row
		{3, str("unlabelled"), -1},
		{4, str(`says "no" <b>`), 0},
		{5, str("héllo wörld"), 1},
		{6, str("dull"), 1},
	}
	pq := parquettest.Write(t, "sst2.parquet", rows, 3, sst2Meta)
	if n := parquettest.RowGroups(t, pq); n != 3 {
		t.Fatalf("%d row groups, want 3", n)
	}
	want := `{"idx":0,"sentence":"a gripping , funny film","label":"positive"}
{"idx":1,"sentence":"dull","label":"negative"}
{"idx":2,"sentence":null,"label":"positive"}
{"idx":3,"sentence":"unlabelled","label":null}
{"idx":4,"sentence":"says \"no\" \u003cb\u003e","label":"negative"}
{"idx":5,"sentence":"héllo wörld","label":"positive"}
{"idx":6,"sentence":"dull","label":"positive"}
`
	recs := sameAsJSONL(t, pq, shard.Spec{Text: "sentence", SkipBadRecords: true}, want)
	if len(recs) != 5 || recs[0].Labels[0] != "positive" || recs[1].Labels[0] != "negative" || recs[3].Text != "héllo wörld" {
		t.Fatalf("records %+v", recs)
	}
	// Without skip_bad_records, the null text is an error naming file, row and column.
	_, _, err := readAll(t, pq, shard.Spec{Text: "sentence"})
	if err == nil || !strings.Contains(err.Error(), pq+":3 ") || !strings.Contains(err.Error(), `field "sentence": want a string, got null`) {
		t.Fatalf("err %v, want the null sentence at %s:3 (row 2)", err, pq)
	}
}

func TestParquetTokensAndTags(t *testing.T) {
	isolateCache(t)
	rows := []nerRow{
		{"0", []string{"EU", "rejects", "German", "call"}, []int64{3, 0, 1, 0}},
		{"1", []string{"Peter", "Blackburn"}, []int64{1, 2}},
		{"2", []string{"BRUSSELS"}, []int64{3}},
		{"3", []string{"x", "y"}, []int64{0}}, // too few tags: a bad record
	}
	pq := parquettest.Write(t, "conll.parquet", rows, 2, nerMeta)
	want := `{"id":"0","tokens":["EU","rejects","German","call"],"ner_tags":["B-LOC","O","B-PER","O"]}
{"id":"1","tokens":["Peter","Blackburn"],"ner_tags":["B-PER","I-PER"]}
{"id":"2","tokens":["BRUSSELS"],"ner_tags":["B-LOC"]}
{"id":"3","tokens":["x","y"],"ner_tags":["O"]}
`
	recs := sameAsJSONL(t, pq, shard.Spec{Tokens: "tokens", Tags: "ner_tags", ID: "id", SkipBadRecords: true}, want)
	if len(recs) != 3 || !reflect.DeepEqual(recs[1].Tags, []string{"B-PER", "I-PER"}) || recs[2].ID != "2" {
		t.Fatalf("records %+v", recs)
	}
}

func TestParquetNestedAndOtherValues(t *testing.T) {
	isolateCache(t)
	rank := int64(-7)
	rows := []mixedRow{
		{"Who?", answers{[]string{"Denver Broncos", "Broncos"}, []int32{177, 184}}, 0.1, 2.5, true, &rank, []*string{str("a"), nil, str("c")}, []byte{0xff, 0}},
		{"When?", answers{}, 3, -1e-7, false, nil, nil, nil},
	}
	pq := parquettest.Write(t, "mixed.parquet", rows, 1, "")
	want := `{"question":"Who?","answers":{"text":["Denver Broncos","Broncos"],"answer_start":[177,184]},"score":0.1,"weight":2.5,"gold":true,"rank":-7,"notes":["a",null,"c"],"blob":"/wA="}
{"question":"When?","answers":{"text":[],"answer_start":[]},"score":3,"weight":-1e-7,"gold":false,"rank":null,"notes":[],"blob":""}
`
	sameAsJSONL(t, pq, shard.Spec{Text: "question", Label: "rank", SkipBadRecords: true}, want)
}

func readAll(t *testing.T, name string, spec shard.Spec) ([]shard.Record, shard.Bad, error) {
	t.Helper()
	f, err := Resolve(name, spec)
	if err != nil {
		return nil, shard.Bad{}, err
	}
	return f.ReadAll()
}

func TestParquetBadInput(t *testing.T) {
	isolateCache(t)
	good := parquettest.Write(t, "sst2.parquet", []sst2Row{{0, str("fine"), 1}, {1, str("bad"), 0}}, 2, sst2Meta)
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	corrupt := filepath.Join(t.TempDir(), "corrupt.parquet")
	os.WriteFile(corrupt, data[:len(data)/2], 0o644)
	flipped := filepath.Join(t.TempDir(), "flipped.parquet")
	mangled := append([]byte(nil), data...)
	for i := 4; i < len(mangled)/2; i++ { // the row group's pages, past the magic
		mangled[i] ^= 0x5a
	}
	os.WriteFile(flipped, mangled, 0o644)
	// A byte of the parquetjs file's column metadata flipped makes parquet-go panic
	// (slice bounds out of range); the panic is an error.
	js, err := os.ReadFile(filepath.Join("testdata", "sst2-parquetjs.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	js[776] ^= 0x80
	panics := filepath.Join(t.TempDir(), "panics.parquet")
	os.WriteFile(panics, js, 0o644)
	outOfRange := parquettest.Write(t, "ids.parquet", []sst2Row{{0, str("fine"), 1}, {1, str("odd"), 5}}, 2, sst2Meta)
	badMeta := parquettest.Write(t, "meta.parquet", []sst2Row{{0, str("fine"), 1}}, 1, `{"info": `)
	for _, c := range []struct {
		name string
		path string
		spec shard.Spec
		want []string
	}{
		{"truncated", corrupt, shard.Spec{Text: "sentence"}, []string{corrupt + ": not a readable Parquet file"}},
		{"corrupt pages", flipped, shard.Spec{Text: "sentence"}, []string{flipped + ": "}},
		{"what panics the reader", panics, shard.Spec{Text: "sentence"}, []string{panics + ": not a readable Parquet file: runtime error: slice bounds out of range"}},
		{"missing column", good, shard.Spec{}, []string{good + ":1 ", `field "text": missing`}},
		{"text not a string", good, shard.Spec{Text: "idx"}, []string{good + ":1 ", `field "idx": want a string, got a number`}},
		{"class id out of range", outOfRange, shard.Spec{Text: "sentence"}, []string{outOfRange + `: row 1, column "label": class id 5: the ClassLabel has 2 names`}},
		{"bad metadata", badMeta, shard.Spec{Text: "sentence"}, []string{badMeta + ": the huggingface metadata: "}},
		{"format says jsonl", good, shard.Spec{Format: shard.JSONL, Text: "sentence"}, []string{good + ":1 ", "not valid utf-8"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := readAll(t, c.path, c.spec)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("err %q, want it to say %q", err, w)
				}
			}
		})
	}
}

func TestParquetConversionIsCached(t *testing.T) {
	cache := isolateCache(t)
	pq := parquettest.Write(t, "sst2.parquet", []sst2Row{{0, str("fine"), 1}}, 1, sst2Meta)
	f, err := Resolve(pq, shard.Spec{Format: shard.Parquet})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(f.Path, filepath.Join(cache, "bertnode", "parquet")+"/") || f.Name != pq || f.Spec.Format != shard.JSONL {
		t.Fatalf("resolved %+v", f)
	}
	// A second resolve reads the conversion it finds (marked here), not the file again.
	if err := os.WriteFile(f.Path, []byte(`{"sentence":"cached","label":"x"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	recs, _, err := readAll(t, pq, shard.Spec{Text: "sentence"})
	if err != nil || len(recs) != 1 || recs[0].Text != "cached" {
		t.Fatalf("records %+v, %v: want the cached conversion's", recs, err)
	}
	// Other bytes are another conversion.
	pq2 := parquettest.Write(t, "sst2.parquet", []sst2Row{{0, str("other"), 1}}, 1, sst2Meta)
	recs, _, err = readAll(t, pq2, shard.Spec{Text: "sentence"})
	if err != nil || len(recs) != 1 || recs[0].Text != "other" {
		t.Fatalf("records %+v, %v", recs, err)
	}
	// A split of the hub's conversion is Parquet whatever the format says.
	if _, err := Resolve("hf://datasets/org/sst2@~parquet/default/train", shard.Spec{Format: shard.CSV}); err == nil || !strings.Contains(err.Error(), "format csv does not read") {
		t.Fatalf("err %v", err)
	}
	// A file that is not Parquet by name or format is read as it is.
	if f, err := Resolve("data.jsonl", shard.Spec{}); err != nil || f.Path != "data.jsonl" || f.Name != "data.jsonl" {
		t.Fatalf("resolved %+v, %v", f, err)
	}
}

// SQuAD's rows as the datasets library holds them.
type squadRow struct {
	ID       string  `parquet:"id"`
	Title    string  `parquet:"title,dict"`
	Context  string  `parquet:"context,dict"`
	Question string  `parquet:"question"`
	Answers  answers `parquet:"answers"`
}

// With format squad, a Parquet file of SQuAD rows reads as the SQuAD document of its
// questions does, a paragraph per row: answers, unanswerable questions (v2.0) and bad
// answers alike.
func TestParquetSQuADRows(t *testing.T) {
	isolateCache(t)
	ctx := "Super Bowl 50 was played in Santa Clara, California."
	rows := []squadRow{
		{"q1", "Super_Bowl_50", ctx, "Where was it played?", answers{[]string{"Santa Clara", "Clara"}, []int32{28, 34}}},
		{"q2", "Super_Bowl_50", ctx, "Who sang?", answers{}},
		{"q3", "Super_Bowl_50", ctx, "Which state?", answers{[]string{"Texas"}, []int32{41}}}, // not in the context there
		{"q4", "Other", "Ünïcode context.", "What?", answers{[]string{"context"}, []int32{8}}},
	}
	pq := parquettest.Write(t, "squad.parquet", rows, 3, "")
	doc := `{"version": "1", "data": [{"title": "t", "paragraphs": [
{"context": "Super Bowl 50 was played in Santa Clara, California.", "qas": [{"id": "q1", "question": "Where was it played?", "answers": [{"text": "Santa Clara", "answer_start": 28}, {"text": "Clara", "answer_start": 34}]}]},
{"context": "Super Bowl 50 was played in Santa Clara, California.", "qas": [{"id": "q2", "question": "Who sang?", "answers": [], "is_impossible": true}]},
{"context": "Super Bowl 50 was played in Santa Clara, California.", "qas": [{"id": "q3", "question": "Which state?", "answers": [{"text": "Texas", "answer_start": 41}]}]},
{"context": "Ünïcode context.", "qas": [{"id": "q4", "question": "What?", "answers": [{"text": "context", "answer_start": 8}]}]}]}]}
`
	js := filepath.Join(t.TempDir(), "squad.json")
	if err := os.WriteFile(js, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := shard.Spec{Format: shard.SQuAD, SkipBadRecords: true}
	recs, bad, err := readAll(t, pq, spec)
	if err != nil {
		t.Fatal(err)
	}
	jr, err := shard.OpenFile(spec, js)
	if err != nil {
		t.Fatal(err)
	}
	want, wantBad := records(t, jr)
	if len(recs) != 3 || len(want) != 3 || bad.Count != 1 || wantBad.Count != 1 || !strings.Contains(bad.First[0].Error(), `qas[0].answers[0].text: "Texas" is not in the context`) {
		t.Fatalf("%d records, bad %s; from the SQuAD JSON %d, bad %s", len(recs), bad, len(want), wantBad)
	}
	for i := range recs {
		recs[i].Pos, want[i].Pos = shard.Pos{}, shard.Pos{}
	}
	if !reflect.DeepEqual(recs, want) {
		t.Fatalf("records:\n%+v\nwant:\n%+v", recs, want)
	}
	if !recs[1].Impossible || recs[2].Answers[0].Start != 8 {
		t.Fatalf("records %+v", recs)
	}
	// A Parquet file without SQuAD's columns says which.
	notSQuAD := parquettest.Write(t, "sst2.parquet", []sst2Row{{0, str("fine"), 1}}, 1, sst2Meta)
	if _, _, err := readAll(t, notSQuAD, spec); err == nil || !strings.Contains(err.Error(), notSQuAD+`: row 0, column "id": missing or null`) {
		t.Fatalf("err %v", err)
	}
}

// A file another implementation wrote (testdata/make-parquetjs.mjs, @dsnp/parquetjs):
// its bare repeated columns read as arrays, its ClassLabel ids as names, its null as
// null.
func TestParquetFromParquetjs(t *testing.T) {
	isolateCache(t)
	pq := filepath.Join("testdata", "sst2-parquetjs.parquet")
	if n := parquettest.RowGroups(t, pq); n != 3 {
		t.Fatalf("%d row groups, want 3", n)
	}
	want := `{"idx":0,"sentence":"it is a charming and often affecting journey","label":"positive","tokens":["Ann","smiled"],"ner_tags":["B-PER","O"]}
{"idx":1,"sentence":"unflinchingly bleak and desperate","label":"negative","tokens":[],"ner_tags":[]}
{"idx":2,"sentence":null,"label":"positive","tokens":["Mary","Ann","Lee"],"ner_tags":["B-PER","I-PER","I-PER"]}
{"idx":3,"sentence":"naïve but “lovely”","label":"positive","tokens":["ok"],"ner_tags":["O"]}
{"idx":4,"sentence":"the acting is n't bad","label":"negative","tokens":["Bob"],"ner_tags":["B-PER"]}
`
	recs := sameAsJSONL(t, pq, shard.Spec{Text: "sentence", SkipBadRecords: true}, want)
	if len(recs) != 4 || recs[2].Text != "naïve but “lovely”" || recs[3].Labels[0] != "negative" {
		t.Fatalf("records %+v", recs)
	}
	tags := sameAsJSONL(t, pq, shard.Spec{Tokens: "tokens", Tags: "ner_tags"}, want)
	if len(tags) != 5 || !reflect.DeepEqual(tags[2].Tags, []string{"B-PER", "I-PER", "I-PER"}) {
		t.Fatalf("records %+v", tags)
	}
}
