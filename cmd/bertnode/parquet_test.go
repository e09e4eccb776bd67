package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/hf/hubtest"
	"github.com/bertnode/bertnode/internal/parquettest"
	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/stream"
	"github.com/bertnode/bertnode/train"
)

// smsRow is an SMS spam message as a Hugging Face dataset holds it: the label a
// ClassLabel id.
type smsRow struct {
	Label int64  `parquet:"label"`
	SMS   string `parquet:"sms,dict"`
}

const smsMeta = `{"info": {"features": {"label": {"names": ["ham", "spam"], "_type": "ClassLabel"}, "sms": {"dtype": "string", "_type": "Value"}}}}`

// smsParquet writes records of SMS spam as a Parquet file of several row groups.
func smsParquet(t *testing.T, recs []shard.Record) string {
	t.Helper()
	rows := make([]smsRow, len(recs))
	for i, r := range recs {
		rows[i] = smsRow{Label: map[string]int64{"ham": 0, "spam": 1}[r.Labels[0]], SMS: r.Text}
	}
	return parquettest.Write(t, "sms.parquet", rows, 250, smsMeta)
}

// smsRecords writes the first 600 SMS spam messages into dir (smsHead) and returns the
// file with its records.
func smsRecords(t *testing.T, dir string) (string, []shard.Record) {
	t.Helper()
	text := smsHead(t, dir, 600)
	recs, _, err := train.ReadAll(shard.Spec{Format: shard.LabelText, Delimiter: "\t"}, text)
	if err != nil {
		t.Fatal(err)
	}
	return text, recs
}

// smsHub serves recs as the hub's Parquet conversion of org/sms's train split, in two
// files, and points HF_ENDPOINT at it.
func smsHub(t *testing.T, recs []shard.Record) {
	t.Helper()
	half := len(recs) / 2
	files := map[string][]byte{}
	for i, part := range [][]shard.Record{recs[:half], recs[half:]} {
		b, err := os.ReadFile(smsParquet(t, part))
		if err != nil {
			t.Fatal(err)
		}
		files[fmt.Sprintf("default/train/%04d.parquet", i)] = b
	}
	h := hubtest.New(t, "datasets/org/sms", files)
	h.LFS["default/train/0001.parquet"] = true
	api := "/api/datasets/org/sms/parquet/default/train"
	h.API = map[string]any{
		api:                []string{h.Hub.URL + api + "/0.parquet", h.Hub.URL + api + "/1.parquet"},
		api + "/0.parquet": "/datasets/org/sms/resolve/refs%2Fconvert%2Fparquet/default/train/0000.parquet",
		api + "/1.parquet": "/datasets/org/sms/resolve/refs%2Fconvert%2Fparquet/default/train/0001.parquet",
	}
	t.Setenv("HF_ENDPOINT", h.Hub.URL)
}

// isolateCaches keeps the conversions and the hub cache in the test's own directory.
func isolateCaches(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	for _, k := range []string{"HF_HUB_OFFLINE", "HF_ENDPOINT", "HF_TOKEN", "HF_HOME", "HF_HUB_CACHE"} {
		t.Setenv(k, "")
	}
}

// bertnode train on a Parquet file of SMS spam reads the records the labeltext file
// gives, and takes the same steps: the same losses, bit for bit; so does it on the same
// records as a split of the hub's Parquet conversion, in two files.
func TestTrainOnParquetTakesTheLabeltextSteps(t *testing.T) {
	isolateCaches(t)
	dir := t.TempDir()
	text, want := smsRecords(t, dir)
	pq := smsParquet(t, want)
	if n := parquettest.RowGroups(t, pq); n != 3 {
		t.Fatalf("%d row groups, want 3", n)
	}
	got, _, err := train.ReadAll(shard.Spec{Text: "sms"}, pq)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d records from the Parquet file, %d from the labeltext", len(got), len(want))
	}
	for i := range got {
		if got[i].Text != want[i].Text || !reflect.DeepEqual(got[i].Labels, want[i].Labels) || got[i].Pos.File != pq || got[i].Pos.Line != i+1 {
			t.Fatalf("record %d: %+v, want %+v at line (row + 1) %d", i, got[i], want[i], i+1)
		}
	}
	common := []string{"--eval-split", "0.2", "--model", "tiny", "--tokenizer", vocabFile, "--max-length", "32", "--batch-size", "16",
		"--max-steps", "6", "--lr", "1e-3", "--save-steps", "-1", "--metric", "accuracy", "--seed", "5", "--threads", "1"}
	mustRun(t, append([]string{"train", "--train", text, "--format", "labeltext", "--delimiter", "\t", "--output", filepath.Join(dir, "text")}, common...)...)
	mustRun(t, append([]string{"train", "--train", pq, "--text-column", "sms", "--output", filepath.Join(dir, "parquet")}, common...)...)
	smsHub(t, want)
	mustRun(t, append([]string{"train", "--train", "hf://datasets/org/sms@~parquet/default/train", "--text-column", "sms", "--output", filepath.Join(dir, "hub")}, common...)...)
	a := stepLosses(t, filepath.Join(dir, "text", "metrics.jsonl"))
	for _, run := range []string{"parquet", "hub"} {
		if p := stepLosses(t, filepath.Join(dir, run, "metrics.jsonl")); len(a) != 6 || !reflect.DeepEqual(a, p) {
			t.Fatalf("losses by step: %s %v, labeltext %v", run, p, a)
		}
	}
}

// bertnode submit converts a Parquet file to JSON lines and uploads that, with
// data.format jsonl: the coordinator plans the records and their class names.
func TestSubmitConvertsParquet(t *testing.T) {
	isolateCaches(t)
	c, flags := testCluster(t)
	dir := t.TempDir()
	var recs []shard.Record
	for _, l := range smsLines {
		label, text, _ := strings.Cut(l, " ")
		recs = append(recs, shard.Record{Text: text, Labels: []string{label}})
	}
	pq := smsParquet(t, recs)
	spec := writeLines(t, dir, "sms.yaml", "task: classify", "train: "+pq, "data: {text: sms}", "epochs: 1", "batch_size: 2",
		"model: tiny", "output: "+filepath.Join(dir, "out"), "cluster:", "  nodes: 1")
	out := mustRun(t, append([]string{"submit", spec}, flags...)...)
	contains(t, "submit", out, "uploaded "+pq+" (", "from ")
	j := waitJob(t, c, "job-1", "the plan", func(j *api.Job) bool { return j.Train.Plan != "" || j.Train.Error != "" })
	if j.Train.Error != "" || j.Train.Records != len(smsLines) || !strings.Contains(j.Spec, "format: jsonl") || !strings.Contains(j.Spec, "text: sms") {
		t.Fatalf("train %+v, spec:\n%s", j.Train, j.Spec)
	}
	rc, _, err := c.Client().GetBlob(c.Context(), j.Train.Plan)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var plan stream.Plan
	if err := json.NewDecoder(rc).Decode(&plan); err != nil {
		t.Fatal(err)
	}
	if plan.Data.Format != shard.JSONL || !reflect.DeepEqual(plan.Labels, []string{"ham", "spam"}) {
		t.Fatalf("plan data %+v, labels %v", plan.Data, plan.Labels)
	}
	blob, _, err := c.Client().GetBlob(c.Context(), j.Train.Blob)
	if err != nil {
		t.Fatal(err)
	}
	defer blob.Close()
	first, _ := io.ReadAll(io.LimitReader(blob, 40))
	if !strings.HasPrefix(string(first), `{"label":"ham","sms":"hello there"}`) {
		t.Fatalf("the uploaded blob begins %q", first)
	}
	// Nodes that read the data in place could not read the conversion.
	shared := writeLines(t, dir, "shared.yaml", "task: classify", "train: "+pq, "data: {text: sms}", "epochs: 1", "model: tiny",
		"output: "+filepath.Join(dir, "out"), "cluster: {data: shared}")
	wantErr(t, "", []string{"train: " + pq + ": cluster.data shared has the nodes read it in place"}, append([]string{"submit", shared}, flags...)...)
}

// predict reads a Parquet --file as the data file it is, without data flags; infer
// uploads its conversion, and a missing column fails the job naming the file, its row
// (as line) and the column.
func TestPredictAndInferReadParquet(t *testing.T) {
	isolateCaches(t)
	c, flags := testCluster(t)
	dir := t.TempDir()
	data := smsHead(t, dir, 20)
	model := tinyCheckpoint(t, "classify", data, shard.LabelText)
	recs, _, err := train.ReadAll(shard.Spec{Format: shard.LabelText}, data)
	if err != nil {
		t.Fatal(err)
	}
	pq := smsParquet(t, recs)
	want := mustRun(t, "predict", "--model", model, "--file", data, "--format", "labeltext")
	if got := mustRun(t, "predict", "--model", model, "--file", pq, "--text-column", "sms"); got != want || strings.Count(got, "\n") != 20 {
		t.Fatalf("predict on the Parquet file:\n%s\nwant, as on the labeltext:\n%s", got, want)
	}
	mustRun(t, append([]string{"infer", "--model", model, "--input", pq, "--text-column", "sms"}, flags...)...)
	j := waitJob(t, c, "job-1", "the plan", func(j *api.Job) bool { return j.Train.Plan != "" || j.Train.Error != "" })
	if j.Train.Records != 20 || !strings.Contains(j.Spec, "format: jsonl") {
		t.Fatalf("train %+v, spec:\n%s", j.Train, j.Spec)
	}
	wantErr(t, "", []string{"job-2 failed: planning the input " + pq + ": " + pq + `:1 (byte 0): field "text": missing`},
		append([]string{"infer", "--model", model, "--input", pq, "--wait"}, flags...)...)
}
