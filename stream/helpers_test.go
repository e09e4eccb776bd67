package stream

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/shard"
)

// dataset is a file to plan and the spec to read it with.
type dataset struct {
	name string
	spec shard.Spec
	path string
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func writeFile(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var texts = []string{"plain words", "with, comma", `say "hi"`, "ünïcödé ✓ 日本語", "tab\there", "😀 emoji", "x"}

// synthetic writes a file of every format with n records, with the framing each
// format finds hard: quoted newlines, CRLF, blank lines and a byte order mark in CSV,
// document markers in CoNLL, SQuAD paragraphs of many questions across articles.
func synthetic(t testing.TB, n int) []dataset {
	rng := rand.New(rand.NewPCG(uint64(n), 3))
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	var csv, tsv, jsonl, lt, conll strings.Builder
	csv.WriteString("\xEF\xBB\xBFid,text,label\r\n")
	tsv.WriteString("sentence\tlabel\n")
	conll.WriteString("-DOCSTART- -X- -X- O\n\n")
	for i := range n {
		text := pick(texts)
		label := pick([]string{"pos", "neg", "10", "2"})
		quoted := `"` + strings.ReplaceAll(text+"\nline two", `"`, `""`) + `"`
		fmt.Fprintf(&csv, "%d,%s,%s%s", i, quoted, label, pick([]string{"\n", "\r\n", "\n\n"}))
		fmt.Fprintf(&tsv, "%s\t%s\n", strings.ReplaceAll(text, "\t", " "), label)
		line, _ := json.Marshal(map[string]any{"text": text, "label": []string{label, "z"}, "id": i})
		fmt.Fprintf(&jsonl, "%s%s", line, pick([]string{"\n", "\r\n", "\n\n"}))
		fmt.Fprintf(&lt, "%s %s\n", label, strings.ReplaceAll(text, "\t", " "))
		for range 1 + rng.IntN(4) {
			fmt.Fprintf(&conll, "%s\t%s\n", pick([]string{"Paris", "is", "ünï", "."}), pick([]string{"O", "B-LOC", "I-LOC"}))
		}
		conll.WriteString(pick([]string{"\n", "\n\n", "\n-DOCSTART- -X- -X- O\n\n"}))
	}
	// SQuAD: n questions in paragraphs of 0..12 questions, 1..3 paragraphs an article.
	type qa struct {
		ID       string `json:"id"`
		Question string `json:"question"`
		Answers  []any  `json:"answers"`
		Imp      bool   `json:"is_impossible"`
	}
	type para struct {
		Context string `json:"context"`
		QAs     []qa   `json:"qas"`
	}
	type art struct {
		Title      string `json:"title"`
		Paragraphs []para `json:"paragraphs"`
	}
	var arts []art
	for q := 0; q < n; {
		var a art
		for range 1 + rng.IntN(3) {
			p := para{Context: "Zürich – " + pick(texts), QAs: []qa{}}
			for range rng.IntN(13) {
				if rng.IntN(3) == 0 {
					p.QAs = append(p.QAs, qa{ID: fmt.Sprint("q", q), Question: "Who?", Answers: []any{}, Imp: true})
				} else {
					p.QAs = append(p.QAs, qa{ID: fmt.Sprint("q", q), Question: "Where?", Answers: []any{map[string]any{"text": "Zürich", "answer_start": 0}}})
				}
				q++
			}
			a.Paragraphs = append(a.Paragraphs, p)
		}
		arts = append(arts, a)
	}
	sq, _ := json.MarshalIndent(map[string]any{"version": "v2.0", "data": arts}, "", " ")
	return []dataset{
		{"csv", shard.Spec{ID: "id"}, writeFile(t, "d.csv", csv.String())},
		{"tsv", shard.Spec{Text: "sentence"}, writeFile(t, "d.tsv", tsv.String())},
		{"jsonl", shard.Spec{ID: "id"}, writeFile(t, "d.jsonl", jsonl.String())},
		{"labeltext", shard.Spec{Format: shard.LabelText}, writeFile(t, "d.txt", lt.String())},
		{"conll", shard.Spec{}, writeFile(t, "d.conll", conll.String())},
		{"squad", shard.Spec{}, writeFile(t, "d.json", string(sq))},
	}
}

// realDatasets are the repository's SMS spam file and the shared real data there is.
func realDatasets(t testing.TB) []dataset {
	ds := []dataset{{"sms_spam", shard.Spec{Format: shard.LabelText, Delimiter: "\t"}, "../data/sms_spam/SMSSpamCollection"}}
	for _, c := range []dataset{
		{"sst2 dev", shard.Spec{Format: shard.TSV, Text: "sentence"}, "sst2/dev.tsv"},
		{"trec latin-1", shard.Spec{Format: shard.LabelText, Encoding: "latin-1"}, "trec/train.txt"},
		{"wnut17", shard.Spec{Format: shard.CoNLL}, "wnut17/emerging.dev.conll"},
		{"squad v1.1", shard.Spec{}, "squad_v1.1/dev-v1.1.json"},
	} {
		for _, dir := range []string{"../../shared/data", "../../../shared/data"} {
			if p := filepath.Join(dir, c.path); fileExists(p) {
				c.path = p
				ds = append(ds, c)
				break
			}
		}
	}
	if len(ds) == 1 {
		t.Log("shared real data not found: testing the repository's SMS spam file only")
	}
	return ds
}

// shardRecords reads a file with shard, as train does.
func shardRecords(t testing.TB, spec shard.Spec, path string) []shard.Record {
	t.Helper()
	r, err := shard.OpenFile(spec, path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var recs []shard.Record
	for {
		var rec shard.Record
		if err := r.Next(&rec); errors.Is(err, io.EOF) {
			return recs
		} else if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
}

func build(t testing.TB, d dataset, opts Options) *Plan {
	t.Helper()
	p, err := Build(d.path, d.spec, opts)
	if err != nil {
		t.Fatalf("%s: %v", d.name, err)
	}
	return p
}
