package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"weak"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/coordinator"
	"github.com/bertnode/bertnode/coordinator/coordtest"
	"github.com/bertnode/bertnode/internal/tarball"
	"github.com/bertnode/bertnode/localcluster"
	"github.com/bertnode/bertnode/node"
	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/train"
)

// smsHead writes the first n messages of the SMS collection to dir.
func smsHead(t *testing.T, dir string, n int) string {
	t.Helper()
	b, err := os.ReadFile(smsFile)
	if err != nil {
		t.Fatal(err)
	}
	return writeLines(t, dir, "sms.txt", strings.Split(string(b), "\n")[:n]...)
}

// startPredictNodes runs real node agents with join's predictor against c, alive in its
// gossip, until the test ends; tweak, when not nil, changes each one's configuration.
func startPredictNodes(t *testing.T, c *coordtest.Cluster, tweak func(cfg *node.Config), ids ...string) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, len(ids))
	t.Cleanup(func() {
		cancel()
		for range ids {
			<-done
		}
	})
	for _, id := range ids {
		cl := c.Client()
		dir := t.TempDir()
		logger := log.New(testWriter{t}, id+" ", log.Lmicroseconds)
		cfg := node.Config{ID: id, Dir: dir, RingAddr: "127.0.0.1:1", Coordinator: cl, Log: logger,
			Infer: node.PlanInfer(cl, 1<<20, newPredictor(cl, dir, 1, "cpu", logger))}
		if tweak != nil {
			tweak(&cfg)
		}
		a := node.New(cfg)
		go func() {
			a.Run(ctx)
			done <- struct{}{}
		}()
		c.AliveNode(id)
	}
}

// finishedJob makes job-1 a training job that succeeded with model as its final model,
// reported by a scripted node t1 (idle since).
func finishedJob(t *testing.T, c *coordtest.Cluster, flags []string, dir, data, model string) {
	t.Helper()
	cl := c.Client()
	if err := cl.RegisterNode(c.Context(), api.RegisterNode{ID: "t1", RingAddr: "127.0.0.1:7001"}); err != nil {
		t.Fatal(err)
	}
	c.AliveNode("t1")
	mustRun(t, append([]string{"submit", writeSpec(t, dir, data)}, flags...)...)
	waitJob(t, c, "job-1", "its start", func(j *api.Job) bool { return j.State == api.Running })
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(tarball.Pack(model, pw)) }()
	blob, err := cl.PutBlob(c.Context(), pr, -1)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Result(c.Context(), "job-1", api.ResultReport{Node: "t1", Kind: "final", Blob: blob, Step: 4}); err != nil {
		t.Fatal(err)
	}
	if err := cl.Done(c.Context(), "job-1", api.DoneReport{Node: "t1", Gen: 1, Step: 4}); err != nil {
		t.Fatal(err)
	}
}

// TestInferMatchesPredict: a predict job over two in-process nodes writes, unit by unit
// in block order, the bytes bertnode predict prints for the same model and file, with
// the model uploaded from a directory or a finished job's in the store.
func TestInferMatchesPredict(t *testing.T) {
	c, flags := testCluster(t)
	dir := t.TempDir()
	data := smsHead(t, dir, 300)
	model := tinyCheckpoint(t, "classify", data, shard.LabelText)
	finishedJob(t, c, flags, dir, data, model)
	startPredictNodes(t, c, nil, "n1", "n2")
	opts := []string{"--format", "labeltext", "--batch-size", "8", "--max-length", "32"}
	want := mustRun(t, append([]string{"predict", "--model", model, "--file", data, "--threads", "1"}, opts...)...)

	outFile := filepath.Join(dir, "out.jsonl")
	out := mustRun(t, append(append([]string{"infer", "--model", model, "--input", data, "--nodes", "2", "--block-records", "32",
		"--wait", "--output", outFile}, opts...), flags...)...)
	contains(t, "infer", out, "uploaded "+data, "submitted job-2 (sms)", "job-2 (sms) succeeded: 10/10 units, 300 records",
		"wrote 300 predictions of job-2 (10 units) to "+outFile)
	got, err := os.ReadFile(outFile)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("infer's output (%d bytes) differs from predict's (%d bytes)", len(got), len(want))
	}
	j := waitJob(t, c, "job-2", "its end", func(j *api.Job) bool { return j.State.Done() })
	by := j.Work.ByNode
	t.Logf("units by node: %v", by)

	again := filepath.Join(dir, "again.jsonl")
	contains(t, "download", mustRun(t, append([]string{"download", "job-2", "--output", again}, flags...)...), "wrote 300 predictions")
	if b, err := os.ReadFile(again); err != nil || string(b) != want {
		t.Fatalf("download: %v, %d bytes", err, len(b))
	}
	contains(t, "jobs", mustRun(t, append([]string{"jobs"}, flags...)...), "job-2", "succeeded", "10/10 units (", " records/s)")
	status := mustRun(t, append([]string{"status", "job-2"}, flags...)...)
	contains(t, "status job-2", status, "succeeded: 10/10 units, 300 records", "bertnode download job-2", "NODE", "UNITS DONE")
	for id, n := range by {
		if !slices.ContainsFunc(strings.Split(status, "\n"), func(l string) bool {
			f := strings.Fields(l)
			return len(f) == 4 && f[0] == id && f[2] == fmt.Sprint(n) && f[3] == "-"
		}) {
			t.Errorf("status job-2 does not show %s with %d units done:\n%s", id, n, status)
		}
	}

	viaJob := filepath.Join(dir, "via-job.jsonl")
	out = mustRun(t, append(append([]string{"infer", "--model", "job:job-1", "--input", data, "--nodes", "2", "--block-records", "32",
		"--wait", "--output", viaJob}, opts...), flags...)...)
	contains(t, "infer --model job:job-1", out, "job-3 (sms) succeeded: 10/10 units")
	if strings.Contains(out, "uploaded "+model) {
		t.Errorf("infer --model job:job-1 uploaded the model again:\n%s", out)
	}
	if b, err := os.ReadFile(viaJob); err != nil || string(b) != want {
		t.Fatalf("infer --model job:job-1: %v, %d bytes differ from predict's %d", err, len(b), len(want))
	}

	// A masked-LM checkpoint over lines of text, each with a mask, and --top-k: the
	// fills as predict prints them.
	var texts []string
	for _, p := range jsonLines[train.Prediction](t, want)[:40] {
		words := strings.Fields(p.Text)
		words[min(len(words)-1, 3)] = "[MASK]"
		texts = append(texts, strings.Join(words, " "))
	}
	data = writeLines(t, dir, "masked.txt", texts...)
	mlm := tinyCheckpoint(t, "mlm", data, shard.Lines)
	opts = []string{"--format", "text", "--batch-size", "4", "--max-length", "32", "--top-k", "3"}
	want = mustRun(t, append([]string{"predict", "--model", mlm, "--file", data, "--threads", "1"}, opts...)...)
	fills := filepath.Join(dir, "fills.jsonl")
	mustRun(t, append(append([]string{"infer", "--model", mlm, "--input", data, "--nodes", "2", "--block-records", "8",
		"--wait", "--output", fills}, opts...), flags...)...)
	if b, err := os.ReadFile(fills); err != nil || string(b) != want || strings.Count(want, `"token_str"`) != 3*len(texts) {
		t.Fatalf("infer of a masked-LM model: %v, %d bytes differ from predict's %d", err, len(b), len(want))
	}
}

// smsTexts is the texts of the first n messages of the SMS collection.
func smsTexts(t *testing.T, n int) []string {
	t.Helper()
	var texts []string
	for _, p := range jsonLines[train.Prediction](t, mustRun(t, "predict", "--model", trainedSMS(t).dir, "--file", smsHead(t, t.TempDir(), n),
		"--format", "labeltext", "--max-length", "16")) {
		texts = append(texts, p.Text)
	}
	return texts
}

// TestInferEmbedQAAndChoice: infer writes predict's bytes for the tasks whose records
// are not one sequence each: an embedding model over a text corpus (--normalize), qa
// over squad questions whose contexts take 1 to 6 windows (--doc-stride), choice over
// questions of 2 to 4 choices. Their windows and pairs batch by runs of --batch-size
// records, so that units of --block-records records batch as predict does the file.
func TestInferEmbedQAAndChoice(t *testing.T) {
	c, flags := testCluster(t)
	startPredictNodes(t, c, nil, "n1", "n2")
	dir := t.TempDir()
	texts := smsTexts(t, 72)
	run := func(name, task string, ckptData string, format shard.Format, input string, opts ...string) {
		t.Helper()
		ckpt := tinyCheckpoint(t, task, ckptData, format)
		opts = append([]string{"--batch-size", "4", "--max-length", "32"}, opts...)
		want := mustRun(t, append([]string{"predict", "--model", ckpt, "--file", input, "--threads", "1"}, opts...)...)
		out := filepath.Join(dir, name+".jsonl")
		log := mustRun(t, append(append([]string{"infer", "--model", ckpt, "--input", input, "--nodes", "2", "--block-records", "8",
			"--wait", "--output", out}, opts...), flags...)...)
		contains(t, name, log, " succeeded: ")
		if b, err := os.ReadFile(out); err != nil || string(b) != want {
			t.Fatalf("infer of a %s model: %v, its %d bytes differ from predict's %d:\n%.600s\nwant\n%.600s", task, err, len(b), len(want), b, want)
		}
		if n := strings.Count(want, "\n"); n < 40 {
			t.Fatalf("%s: predict printed %d lines", name, n)
		}
	}

	pairs := writeLines(t, dir, "pairs.jsonl", `{"text": "a cat", "text_pair": "a small cat"}`, `{"text": "a dog", "text_pair": "a big dog"}`)
	corpus := writeLines(t, dir, "corpus.txt", texts...)
	run("embed", "embed", pairs, shard.JSONL, corpus, "--format", "text", "--normalize", "--truncate-dim", "16")

	type qa struct {
		ID       string `json:"id"`
		Question string `json:"question"`
		Answers  []any  `json:"answers"`
	}
	var paragraphs []any
	for i := 0; i+6 <= len(texts); i += 4 {
		context := strings.Join(texts[i:i+1+i%6], " ") // 1 to 6 messages: 1 to several windows
		var qas []qa
		for k, q := range []string{"what is it?", "who wrote this message?", "when?"} {
			word := strings.Fields(context)[0]
			qas = append(qas, qa{fmt.Sprintf("q%d-%d", i, k), q, []any{map[string]any{"text": word, "answer_start": strings.Index(context, word)}}})
		}
		paragraphs = append(paragraphs, map[string]any{"context": context, "qas": qas})
	}
	b, err := json.Marshal(map[string]any{"version": "v1.1", "data": []any{map[string]any{"title": "sms", "paragraphs": paragraphs}}})
	if err != nil {
		t.Fatal(err)
	}
	squad := writeLines(t, dir, "squad.json", string(b))
	run("qa", "qa", writeSQuAD(t, t.TempDir(), false), shard.SQuAD, squad, "--format", "squad", "--doc-stride", "8")

	var choices []string
	for i, text := range texts[:60] {
		line, _ := json.Marshal(map[string]any{"text": text, "choices": texts[60 : 62+i%3], "label": 0})
		choices = append(choices, string(line))
	}
	input := writeLines(t, dir, "choices.jsonl", choices...)
	picks := writeLines(t, t.TempDir(), "choices.jsonl", `{"text": "She opened the umbrella because", "choices": ["it was sunny", "it was raining"], "label": 1}`)
	run("choice", "choice", picks, shard.JSONL, input, "--format", "jsonl")
}

// gatedPredictor holds its second unit until gate closes, saying so on held.
type gatedPredictor struct {
	node.Predictor
	calls      int
	held, gate chan struct{}
}

func (g *gatedPredictor) Predict(recs []shard.Record, w io.Writer) error {
	if g.calls++; g.calls == 2 {
		close(g.held)
		<-g.gate
	}
	return g.Predictor.Predict(recs, w)
}

// reportingClient passes on each unit report's answer.
type reportingClient struct {
	*api.Client
	answers chan error
}

func (c *reportingClient) UnitDone(ctx context.Context, job string, r api.UnitReport) error {
	err := c.Client.UnitDone(ctx, job, r)
	c.answers <- err
	return err
}

// TestInferLateReportOfANodeThoughtDead: n2 stalls in a unit; gossip calls it dead, its
// unit goes to n1, and the job ends without it. n2's report, when it comes, is
// ignored: the unit keeps n1's output, and the output is still predict's.
func TestInferLateReportOfANodeThoughtDead(t *testing.T) {
	c, flags := testCluster(t)
	dir := t.TempDir()
	data := smsHead(t, dir, 300)
	model := tinyCheckpoint(t, "classify", data, shard.LabelText)
	g := &gatedPredictor{held: make(chan struct{}), gate: make(chan struct{})}
	n2 := &reportingClient{answers: make(chan error, 100)}
	startPredictNodes(t, c, func(cfg *node.Config) {
		if cfg.ID != "n2" {
			return
		}
		n2.Client = cfg.Coordinator.(*api.Client)
		cfg.Coordinator = n2
		setup := cfg.Infer
		cfg.Infer = func(ctx context.Context, job *api.Job) (*node.InferEnv, error) {
			env, err := setup(ctx, job)
			if err == nil {
				g.Predictor, env.Predictor = env.Predictor, g
			}
			return env, err
		}
	}, "n1", "n2")
	opts := []string{"--format", "labeltext", "--batch-size", "8", "--max-length", "32"}
	want := mustRun(t, append([]string{"predict", "--model", model, "--file", data, "--threads", "1"}, opts...)...)
	mustRun(t, append(append([]string{"infer", "--model", model, "--input", data, "--nodes", "2", "--block-records", "32"}, opts...), flags...)...)
	select {
	case <-g.held:
	case <-time.After(time.Minute):
		t.Fatal("n2 did not reach its second unit")
	}
	stalled := -1
	c.Leader().Read(func(st *coordinator.State) {
		for _, u := range st.Jobs["job-1"].Work.Leases {
			if u.Node == "n2" {
				stalled = u.Unit
			}
		}
	})
	if stalled < 0 {
		t.Fatal("n2 holds no unit while it predicts one")
	}
	c.Gossip.SetHealth("n2", api.Dead)
	j := waitJob(t, c, "job-1", "its end without n2", func(j *api.Job) bool { return j.State.Done() })
	if j.State != api.Succeeded || j.Work.ByNode["n2"] != 1 || j.Work.ByNode["n1"] != 9 {
		t.Fatalf("job %s: %s; units by node %v, want n1 9 and n2 its first", j.State, j.Reason, j.Work.ByNode)
	}
	outputs := func() []string {
		blobs, err := c.Client().Outputs(c.Context(), "job-1")
		if err != nil {
			t.Fatal(err)
		}
		return blobs
	}
	first, work := outputs(), j.Work
	for len(n2.answers) > 0 {
		<-n2.answers // its first unit's
	}
	close(g.gate) // n2 goes on, and reports the unit it no longer holds
	select {
	case err := <-n2.answers:
		if err != nil {
			t.Fatalf("n2's late report of a unit done: %v, want it ignored", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("n2 did not report its unit")
	}
	if j, _ = c.Client().Job(c.Context(), "job-1"); !reflect.DeepEqual(j.Work, work) || !slices.Equal(outputs(), first) {
		t.Fatalf("unit %d: work %+v and outputs %v were %+v and %v before n2's late report", stalled, j.Work, outputs(), work, first)
	}
	out := filepath.Join(dir, "out.jsonl")
	mustRun(t, append([]string{"download", "job-1", "--output", out}, flags...)...)
	if b, err := os.ReadFile(out); err != nil || string(b) != want {
		t.Fatalf("output: %v, %d bytes differ from predict's %d", err, len(b), len(want))
	}
	if !slices.ContainsFunc(eventsOf(t, c), func(m string) bool { return m == fmt.Sprintf("n2 is dead: its unit %d goes to others", stalled) }) {
		t.Errorf("no event of n2's unit given back: %q", eventsOf(t, c))
	}
}

// slowPredictor takes slow longer over the first unit of any node that shares first.
type slowPredictor struct {
	node.Predictor
	first *atomic.Bool
	slow  time.Duration
}

func (p *slowPredictor) Predict(recs []shard.Record, w io.Writer) error {
	if p.first.CompareAndSwap(false, true) {
		time.Sleep(p.slow)
	}
	return p.Predictor.Predict(recs, w)
}

// TestInferRenewsTheLeaseOfASlowUnit: a unit that takes 3.5 times the lease (1 s) stays
// with its node, which renews the lease every third of it: the other node, done with
// every other unit, asks for one all that time and gets none, and no lease passes
// from node to node.
func TestInferRenewsTheLeaseOfASlowUnit(t *testing.T) {
	c, flags := testCluster(t)
	events, took := inferSlowUnit(t, c, flags)
	if took < 3500*time.Millisecond {
		t.Fatalf("the job took %v, less than its slow unit", took)
	}
	for _, m := range events {
		if strings.Contains(m, "lease expired") {
			t.Errorf("a lease passed to another node: %q", m)
		}
	}
}

// TestInferWithoutRenewalsDuringAnUpgrade: the same job on two coordinators, one of a
// build before lease renewals (protocol 7): the leader refuses the renewals, and the
// slow node works on as nodes did before renewals. Its lease runs out, the other node
// takes the unit over, the first output in counts, and the job ends with predict's
// output.
func TestInferWithoutRenewalsDuringAnUpgrade(t *testing.T) {
	c, flags := testClusterOf(t, 2, func(i int, cfg *coordinator.Config) {
		if i == 1 {
			cfg.Protocol = 7
		}
	})
	events, _ := inferSlowUnit(t, c, flags)
	if !slices.ContainsFunc(events, func(m string) bool { return strings.Contains(m, "lease expired; leased to") }) {
		t.Errorf("no lease ran out: %q", events)
	}
}

// inferSlowUnit runs a predict job of 300 records in units of 32 on nodes n1 and n2
// with a lease of 1 s, the first unit taking 3.5 s, and checks that it ends with
// predict's output. It returns the job's events and how long it took.
func inferSlowUnit(t *testing.T, c *coordtest.Cluster, flags []string) ([]string, time.Duration) {
	t.Helper()
	dir := t.TempDir()
	data := smsHead(t, dir, 300)
	model := tinyCheckpoint(t, "classify", data, shard.LabelText)
	first := &atomic.Bool{}
	startPredictNodes(t, c, func(cfg *node.Config) {
		setup := cfg.Infer
		cfg.Infer = func(ctx context.Context, job *api.Job) (*node.InferEnv, error) {
			env, err := setup(ctx, job)
			if err == nil {
				env.Predictor = &slowPredictor{Predictor: env.Predictor, first: first, slow: 3500 * time.Millisecond}
			}
			return env, err
		}
	}, "n1", "n2")
	opts := []string{"--format", "labeltext", "--batch-size", "8", "--max-length", "32"}
	want := mustRun(t, append([]string{"predict", "--model", model, "--file", data, "--threads", "1"}, opts...)...)
	out := filepath.Join(dir, "out.jsonl")
	ticking := make(chan struct{})
	go func() { // the commands' clock keeps real time, so that leases run out
		for {
			select {
			case <-ticking:
				return
			case <-time.After(50 * time.Millisecond):
				c.Clock.Advance(50 * time.Millisecond)
			}
		}
	}()
	start := time.Now()
	mustRun(t, append(append([]string{"infer", "--model", model, "--input", data, "--nodes", "2", "--block-records", "32",
		"--lease", "1s", "--wait", "--output", out}, opts...), flags...)...)
	took := time.Since(start)
	close(ticking)
	if b, err := os.ReadFile(out); err != nil || string(b) != want {
		t.Fatalf("output: %v, %d bytes differ from predict's %d", err, len(b), len(want))
	}
	return eventsOf(t, c), took
}

// eventsOf is job-1's event messages.
func eventsOf(t *testing.T, c *coordtest.Cluster) []string {
	logs, err := c.Client().Logs(c.Context(), "job-1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range logs.Events {
		out = append(out, e.Message)
	}
	return out
}

// TestInferBadInput: what infer cannot run fails before anything is submitted, naming
// the flag at fault.
func TestInferBadInput(t *testing.T) {
	c, flags := testCluster(t)
	dir := t.TempDir()
	data := smsHead(t, dir, 20)
	model := tinyCheckpoint(t, "classify", data, shard.LabelText)
	run := func(want []string, args ...string) {
		t.Helper()
		wantErr(t, "", want, append(args, flags...)...)
	}
	run([]string{"--model", "required"}, "infer", "--input", data)
	run([]string{"--input", "required"}, "infer", "--model", model)
	run([]string{"--input", "no such file"}, "infer", "--model", model, "--input", filepath.Join(dir, "missing.txt"))
	run([]string{"--format", "not implied"}, "infer", "--model", model, "--input", data)
	run([]string{"--model", "no such file", "job:JOB"}, "infer", "--model", filepath.Join(dir, "nothing"), "--input", data, "--format", "labeltext")
	run([]string{"--allow-empty", "only for qa"}, "infer", "--model", model, "--input", data, "--format", "labeltext", "--allow-empty")
	run([]string{"--normalize", "only for embed"}, "infer", "--model", model, "--input", data, "--format", "labeltext", "--normalize")
	run([]string{"--pooling", `"sum"`}, "infer", "--model", "job:job-1", "--input", data, "--format", "text", "--pooling", "sum")
	run([]string{"format: labeltext: texts without labels are read from text, csv, tsv, jsonl or parquet"}, "infer", "--model", model, "--input", data, "--format", "labeltext", "--pooling", "mean")
	run([]string{"--model", `no job "job-9"`}, "infer", "--model", "job:job-9", "--input", data, "--format", "labeltext")
	run([]string{"--block-records", "--batch-size 32"}, "infer", "--model", model, "--input", data, "--format", "labeltext", "--block-records", "100")
	run([]string{"--threshold", "only for multilabel"}, "infer", "--model", model, "--input", data, "--format", "labeltext", "--threshold", "0.3")
	run([]string{"kind: predict", "bertnode infer"}, "submit", writeLines(t, dir, "p.yaml", "kind: predict", "task: classify"))
	run([]string{"max_length", "not in [8, 512]"}, "infer", "--model", model, "--input", data, "--format", "labeltext", "--max-length", "4")
	run([]string{"--output", "--wait"}, "infer", "--model", model, "--input", data, "--format", "labeltext", "--output", filepath.Join(dir, "o.jsonl"))

	// A training job that has not finished has no model to predict with.
	mustRun(t, append([]string{"submit", writeSpec(t, dir, data)}, flags...)...)
	run([]string{"--model", "job-1 (pending) has no final model"}, "infer", "--model", "job:job-1", "--input", data, "--format", "labeltext")
	run([]string{"--model", "want job:JOB"}, "infer", "--model", "job:job-1/checkpoint", "--input", data, "--format", "labeltext")
	if jobs, err := c.Client().Jobs(c.Context()); err != nil || len(jobs) != 1 {
		t.Fatalf("jobs %v (%v): want only the training job", jobs, err)
	}

	// An input predict cannot read either fails the job as it is planned, naming the
	// file and line.
	csv := writeLines(t, dir, "in.csv", "text", "hello there")
	run([]string{"job-2 failed: planning the input " + csv + ": " + csv + `:1 (byte 0): label: column "label" is not in the header`},
		"infer", "--model", model, "--input", csv, "--format", "csv", "--text-column", "text", "--wait")
}

// TestProcessClusterInferSurvivesANodeKill: of two node processes, n2 is killed holding
// the lease of its third unit, its output computed but not reported. The unit goes to
// n1 once gossip calls n2 dead (or its lease ends), and the output is still predict's,
// every record once, in order.
func TestProcessClusterInferSurvivesANodeKill(t *testing.T) {
	c := upCluster(t, 1, 2, "--env", "n2=BERTNODE_FAILPOINTS=node.unit=kill@3")
	dir := t.TempDir()
	data := smsHead(t, dir, 3000)
	model := tinyCheckpoint(t, "classify", data, shard.LabelText)
	opts := []string{"--format", "labeltext", "--batch-size", "16", "--max-length", "32"}
	start := time.Now()
	want := mustRun(t, append([]string{"predict", "--model", model, "--file", data, "--threads", "1"}, opts...)...)
	t.Logf("predict on one process: %v", time.Since(start).Round(time.Millisecond))

	outFile := filepath.Join(dir, "out.jsonl")
	start = time.Now()
	var out string
	done := make(chan error, 1)
	go func() {
		var err error
		out, _, err = bertnode(t, "", append(append([]string{"infer", "--model", model, "--input", data, "--nodes", "2", "--block-records", "64",
			"--lease", "30s", "--wait", "--output", outFile}, opts...), c.flags...)...)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("infer: %v\n%s", err, out)
		}
	case <-time.After(90 * time.Second):
		t.Fatal("infer --wait did not return in 90 s")
	}
	t.Logf("infer on two nodes, one killed: %v", time.Since(start).Round(time.Millisecond))
	contains(t, "infer", out, "succeeded: 47/47 units, 3000 records")
	if got, err := os.ReadFile(outFile); err != nil || string(got) != want {
		t.Fatalf("infer's output (%d bytes, %v) differs from predict's (%d bytes)", len(got), err, len(want))
	}
	if localcluster.Alive(c.proc("n2").PID) {
		t.Fatal("n2 did not die at its failpoint")
	}
	id := strings.Fields(out[strings.Index(out, "submitted "):])[1]
	j, err := c.cl.Job(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	by := j.Work.ByNode
	logs, err := c.cl.Logs(context.Background(), id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var back []string
	for _, e := range logs.Events {
		if e.Kind == "lease" {
			back = append(back, e.Message)
		}
	}
	t.Logf("units by node: %v; leases taken back: %q", by, back)
	// Gossip's verdict, not the lease's end (30 s), gives n2's unit back.
	if by["n2"] != 2 || by["n1"] != 45 || len(back) != 1 || !strings.HasPrefix(back[0], "n2 is dead: its unit ") {
		t.Fatalf("units by node %v, want n2's 2 before its kill and n1 the rest; leases taken back: %q", by, back)
	}
}

// A node that finished its part of a predict job drops the model at once, freeing its
// memory for the next job (the soak in docs/cluster.md: a node grew by 75 MB per job
// while dropped models waited for the Go GC).
func TestInferNodeDropsTheModelAfterTheJob(t *testing.T) {
	c, flags := testCluster(t)
	dir := t.TempDir()
	data := smsHead(t, dir, 64)
	model := tinyCheckpoint(t, "classify", data, shard.LabelText)
	var trainer atomic.Pointer[weak.Pointer[train.Trainer]]
	startPredictNodes(t, c, func(cfg *node.Config) {
		setup := cfg.Infer
		cfg.Infer = func(ctx context.Context, job *api.Job) (*node.InferEnv, error) {
			env, err := setup(ctx, job)
			if err == nil {
				w := weak.Make(env.Predictor.(*predictor).t)
				trainer.Store(&w)
			}
			return env, err
		}
	}, "n1")
	mustRun(t, append([]string{"infer", "--model", model, "--input", data, "--format", "labeltext", "--batch-size", "8",
		"--max-length", "32", "--block-records", "32", "--wait"}, flags...)...)
	deadline := time.Now().Add(30 * time.Second)
	for trainer.Load() == nil || trainer.Load().Value() != nil {
		if time.Now().After(deadline) {
			t.Fatal("the predict job's model is still held 30 s after the job")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
