package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/augment"
	"github.com/bertnode/bertnode/shard"
)

// readAll reads every record of path with spec.
func readAll(t *testing.T, spec shard.Spec, path string) []shard.Record {
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

// checkAugmented checks that out holds each record of in, unchanged, followed by at
// most n copies with other texts and the same labels, text pair and id stem, and
// returns the number of copies.
func checkAugmented(t *testing.T, in, out []shard.Record, n int) int {
	t.Helper()
	copies, i := 0, -1
	for _, r := range out {
		if i+1 < len(in) && r.Text == in[i+1].Text {
			i++
			if r.ID != in[i].ID || r.TextPair != in[i].TextPair || !slices.Equal(r.Labels, in[i].Labels) {
				t.Fatalf("record %d changed: %+v, was %+v", i, r, in[i])
			}
			continue
		}
		if i < 0 {
			t.Fatalf("the output starts with %q, not the first record", r.Text)
		}
		copies++
		o := in[i]
		if !slices.Equal(r.Labels, o.Labels) || r.TextPair != o.TextPair || r.Text == o.Text ||
			o.ID != "" && !strings.HasPrefix(r.ID, o.ID+"-aug") {
			t.Fatalf("copy of record %d: %+v, original %+v", i, r, o)
		}
		if k, err := strconv.Atoi(strings.TrimPrefix(r.ID, o.ID+"-aug")); o.ID != "" && (err != nil || k > n) {
			t.Fatalf("copy of record %d has id %q", i, r.ID)
		}
	}
	if i != len(in)-1 {
		t.Fatalf("the output holds %d of the %d records", i+1, len(in))
	}
	if len(out)-len(in) > n*len(in) {
		t.Fatalf("%d copies of %d records, n = %d", len(out)-len(in), len(in), n)
	}
	return copies
}

// The same seed writes the same file, another seed another; every record is kept
// with its label and followed by its copies; the result reads back as labeltext.
func TestAugmentIsSeededAndKeepsLabels(t *testing.T) {
	if _, err := os.Stat(augment.DefaultWordNetDir); err != nil && os.Getenv("WNSEARCHDIR") == "" {
		t.Fatalf("WordNet is not installed (%v): run make deps", err)
	}
	dir := t.TempDir()
	lines := readLines(t, smsFile)[:60]
	in := writeLines(t, dir, "sms.txt", lines...)
	spec := shard.Spec{Format: shard.LabelText}
	run := func(name, seed string) []byte {
		out := filepath.Join(dir, name)
		stdout := mustRun(t, "augment", "--input", in, "--format", "labeltext", "--output", out, "--n", "4", "--seed", seed)
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if want := "wrote " + out + ": 60 records and "; !strings.HasPrefix(stdout, want) {
			t.Errorf("stdout %q, want %q...", stdout, want)
		}
		return b
	}
	a, b, c := run("a.txt", "1"), run("b.txt", "1"), run("c.txt", "2")
	if string(a) != string(b) {
		t.Error("two runs with seed 1 differ")
	}
	if string(a) == string(c) {
		t.Error("seeds 1 and 2 give the same file")
	}
	copies := checkAugmented(t, readAll(t, spec, in), readAll(t, spec, filepath.Join(dir, "a.txt")), 4)
	if copies < 3*60 {
		t.Errorf("only %d copies of 60 messages with n = 4", copies)
	}
}

// csv (quoted commas, quotes and line breaks), tsv by column index without a header,
// and jsonl with label lists and ids are written so that the same spec reads them back.
func TestAugmentFormatsReadBack(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, yaml string
		lines      []string
		spec       shard.Spec
	}{
		{"reviews.csv", "data: {format: csv, text: review, label: stars, id: id}", []string{
			`id,stars,review,extra`,
			`r1,5,"Great food, friendly staff and a ""secret"" menu",x`,
			`r2,1,"Cold soup.` + "\n" + `Never again",y`,
			`r3,3,okay I guess but the wait was long,z`,
		}, shard.Spec{Format: shard.CSV, Text: "review", Label: "stars", ID: "id"}},
		{"questions.tsv", "data: {format: tsv, header: false, text: \"2\", label: \"0\", label_sep: \"|\"}", []string{
			"LOC|city\tq1\tWhat is the largest city in the world ?",
			"HUM\tq2\tWho wrote the first novel about a whale ?",
		}, shard.Spec{Format: shard.TSV, Header: new(bool), Text: "2", Label: "0", LabelSep: "|"}},
		{"tags.jsonl", "data: {format: jsonl, id: uid}", []string{
			`{"uid": 7, "text": "cheap flights to paris this weekend", "label": ["travel", "deals"], "lang": "en"}`,
			`{"uid": 8, "text": "the match ended in a goalless draw", "label": "sport"}`,
		}, shard.Spec{Format: shard.JSONL, ID: "uid"}},
	}
	for _, c := range cases {
		in := writeLines(t, dir, c.name, c.lines...)
		job := writeLines(t, dir, c.name+".yaml", c.yaml)
		out := filepath.Join(dir, "aug-"+c.name)
		// Swap and deletion only: no WordNet needed.
		mustRun(t, "augment", "--spec", job, "--input", in, "--output", out, "--n", "3", "--alpha-sr", "0", "--alpha-ri", "0")
		orig := readAll(t, c.spec, in)
		if n := checkAugmented(t, orig, readAll(t, c.spec, out), 3); n < len(orig) {
			t.Errorf("%s: %d copies of %d records", c.name, n, len(orig))
		}
	}
}

func TestAugmentErrorsNameThePlace(t *testing.T) {
	dir := t.TempDir()
	conll := writeLines(t, dir, "ner.conll", "EU B-ORG", "rejects O", "", "German B-MISC")
	sms := writeLines(t, dir, "sms.txt", "ham\thello there friend")
	out := filepath.Join(dir, "out.txt")
	noSR := []string{"--alpha-sr", "0", "--alpha-ri", "0"}
	wantErr(t, "", []string{"conll", "not supported"}, append([]string{"augment", "--input", conll, "--output", out}, noSR...)...)
	wantErr(t, "", []string{"missing.txt"}, append([]string{"augment", "--input", filepath.Join(dir, "missing.txt"), "--format", "labeltext", "--output", out}, noSR...)...)
	wantErr(t, "", []string{"num_aug"}, append([]string{"augment", "--input", sms, "--format", "labeltext", "--output", out, "--n", "0"}, noSR...)...)
	wantErr(t, "", []string{"p_rd", "1.5"}, "augment", "--input", sms, "--format", "labeltext", "--output", out, "--p-rd", "1.5")
	wantErr(t, "", []string{"--output"}, "augment", "--input", sms, "--format", "labeltext")
	wantErr(t, "", []string{"wordnet", "nowhere"}, "augment", "--input", sms, "--format", "labeltext", "--output", out, "--wordnet", filepath.Join(dir, "nowhere"))
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed augment left %s: %v", out, err)
	}

	bad := writeLines(t, dir, "bad.txt", "ham\tfine words here", "nodelimiter", "spam\twin a prize today")
	args := append([]string{"augment", "--input", bad, "--format", "labeltext", "--output", out}, noSR...)
	wantErr(t, "", []string{"bad.txt:2"}, args...)
	_, stderr, err := bertnode(t, "", append(args, "--skip-bad-records")...)
	if err != nil || !strings.Contains(stderr, "skipped 1") {
		t.Fatalf("--skip-bad-records: %v, stderr %q", err, stderr)
	}
	recs := readAll(t, shard.Spec{Format: shard.LabelText}, out)
	if len(recs) < 4 || recs[0].Text != "fine words here" || recs[len(recs)-1].Labels[0] != "spam" {
		t.Errorf("--skip-bad-records wrote %+v", recs)
	}
}

// Writing a labeltext, csv or tsv record allocates nothing once the writer's buffer has
// grown; jsonl pays for encoding/json.
func BenchmarkRecordWriter(b *testing.B) {
	rec := shard.Record{Text: `Free entry in 2 a wkly comp to win FA Cup final tkts, "text" FA to 87121`, Labels: []string{"spam"}, ID: "r1"}
	for _, spec := range []shard.Spec{{Format: shard.LabelText}, {Format: shard.CSV, ID: "id"}, {Format: shard.TSV, Header: new(bool), Text: "1", Label: "0"}, {Format: shard.JSONL}} {
		b.Run(string(spec.Format), func(b *testing.B) {
			rw, err := newRecordWriter(spec)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(rec.Text)))
			for b.Loop() {
				if err := rw.write(io.Discard, &rec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
