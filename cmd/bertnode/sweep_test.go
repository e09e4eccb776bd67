package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/train"
)

// A sweep against a real coordinator: the data goes up once, at most parallel trials
// are unfinished at a time, each trial's job carries its settings, and the table ranks
// the trials that succeeded by their best evaluation, then the failed ones, whatever
// they scored. Two nodes, played by the test, report for each job an f1 that rises with
// the lr and warmup, and fail the lr 0.01 jobs.
func TestSweepRanksTrialsOnACluster(t *testing.T) {
	c, flags := testCluster(t)
	defer func(p time.Duration) { sweepPoll = p }(sweepPoll)
	sweepPoll = 20 * time.Millisecond
	dir := t.TempDir()
	data := writeLines(t, dir, "sms.txt", smsLines...)
	writeSpec(t, dir, data, "metric: f1_spam")
	sw := writeLines(t, dir, "lr.yaml", "job: sms.yaml", "parallel: 2", "grid:", "  lr: [0.0001, 0.001, 0.01]", "  warmup_ratio: [0, 0.1]")
	cl := c.Client()
	ctx, cancel := context.WithCancel(c.Context())
	defer cancel()
	blob, err := cl.PutBlob(ctx, strings.NewReader("a model"), -1)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var specs []train.Spec
	maxActive := 0
	var wg sync.WaitGroup
	for _, n := range []string{"n1", "n2"} {
		if err := cl.RegisterNode(ctx, api.RegisterNode{ID: n, RingAddr: "127.0.0.1:7001"}); err != nil {
			t.Fatal(err)
		}
		c.AliveNode(n)
		wg.Go(func() { playNode(ctx, t, cl, n, blob, &mu, &specs, &maxActive) })
	}
	out, stderr, err := bertnode(t, "", append([]string{"sweep", sw}, flags...)...)
	cancel()
	wg.Wait()
	if err != nil {
		t.Fatalf("sweep: %v\n%s%s", err, out, stderr)
	}
	if n := strings.Count(out, "uploaded "); n != 1 {
		t.Errorf("%d uploads, want the data once:\n%s", n, out)
	}
	if maxActive > 2 {
		t.Errorf("%d trials unfinished at once, want at most parallel: 2", maxActive)
	}
	var lrs []float64
	for _, s := range specs {
		lrs = append(lrs, s.LR)
		if s.Metric != "f1_spam" || s.Cluster.Nodes != 1 {
			t.Errorf("a trial's spec lost the job's fields: %+v", s)
		}
	}
	slices.Sort(lrs)
	if want := []float64{0.0001, 0.0001, 0.001, 0.001, 0.01, 0.01}; !slices.Equal(lrs, want) {
		t.Errorf("trained learning rates %v, want %v", lrs, want)
	}
	// The table: best first (lr 0.001, warmup 0.1 adds 0.01), the failed ones last.
	var rows []string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 2 && strings.HasPrefix(f[1], "job-") {
			rows = append(rows, f[0]+" "+f[2])
		}
	}
	if want := []string{"4 succeeded", "3 succeeded", "2 succeeded", "1 succeeded", "6 failed", "5 failed"}; !slices.Equal(rows, want) {
		t.Errorf("ranked %q, want %q:\n%s", rows, want, out)
	}
	contains(t, "sweep", out, "0.9100 (best)", "lr=0.001 warmup_ratio=0.1", "best: trial 4 (", "--kind best --output DIR",
		"submitted as", "(lr-1)")
	if n := strings.Count(out, ": loss is NaN): last f1_spam="); n != 2 {
		t.Errorf("%d trials failed with their reason, want 2:\n%s", n, out)
	}
}

// playNode trains whatever job the coordinator assigns n: it reports an evaluation
// and a best model whose f1 depends on the job's lr, and fails jobs with lr 0.01.
func playNode(ctx context.Context, t *testing.T, cl *api.Client, n, blob string, mu *sync.Mutex, specs *[]train.Spec, maxActive *int) {
	var idx uint64
	for ctx.Err() == nil {
		a, err := cl.Assignment(ctx, n, idx, time.Second)
		if err != nil {
			continue
		}
		idx = a.Index
		if a.Job == nil || a.Rank != 0 {
			continue
		}
		spec, err := train.ParseSpec(a.Job.Spec)
		if err != nil {
			t.Errorf("%s: %v", a.Job.ID, err)
			return
		}
		jobs, _ := cl.Jobs(ctx)
		active := 0
		for _, j := range jobs {
			if !j.State.Done() {
				active++
			}
		}
		mu.Lock()
		*specs = append(*specs, spec)
		*maxActive = max(*maxActive, active)
		mu.Unlock()
		f1 := 0.9 - 0.1*float64(len(fmt.Sprint(spec.LR))-len("0.001")) + spec.WarmupRatio/10
		id := a.Job.ID
		cl.Progress(ctx, id, api.ProgressReport{Node: n, Gen: a.Gen, Step: 4, TotalSteps: 4, Loss: 0.5,
			Eval: map[string]float64{"f1_spam": f1 - 0.05}, EvalStep: 4})
		rep := api.DoneReport{Node: n, Gen: a.Gen, Step: 4}
		if spec.LR == 0.01 {
			rep.Error = "loss is NaN"
		} else {
			for _, r := range []api.ResultReport{{Node: n, Kind: "best", Blob: blob, Step: 2, Metrics: map[string]float64{"f1_spam": f1}},
				{Node: n, Kind: "final", Blob: blob, Step: 4}} {
				if err := cl.Result(ctx, id, r); err != nil && ctx.Err() == nil {
					t.Errorf("%s result: %v", id, err)
				}
			}
		}
		if err := cl.Done(ctx, id, rep); err != nil && ctx.Err() == nil {
			t.Errorf("%s done: %v", id, err)
		}
	}
}

// Bad trials are found before anything is submitted; --dry-run lists the trials.
func TestSweepChecksEveryTrialFirst(t *testing.T) {
	c, flags := testCluster(t)
	dir := t.TempDir()
	writeSpec(t, dir, writeLines(t, dir, "sms.txt", smsLines...))
	sw := writeLines(t, dir, "bad.yaml", "job: sms.yaml", "grid: {lr: [0.001, -1]}")
	wantErr(t, "", []string{"bad.yaml: trial 2 (lr=-1)", "lr"}, append([]string{"sweep", sw}, flags...)...)
	if jobs, err := c.Client().Jobs(c.Context()); err != nil || len(jobs) != 0 {
		t.Errorf("jobs after a bad sweep: %v %v", jobs, err)
	}
	wantErr(t, "", []string{"nojob.yaml: job: open", "missing.yaml"}, "sweep", writeLines(t, dir, "nojob.yaml", "job: missing.yaml", "grid: {lr: [1]}"))
	wantErr(t, "", []string{"typo.yaml: ", "field grids not found"}, "sweep", writeLines(t, dir, "typo.yaml", "job: sms.yaml", "grids: {lr: [1]}"))
	sw = writeLines(t, dir, "ok.yaml", "job: sms.yaml", "random: {trials: 3, params: {lr: {log_uniform: [1.0e-5, 1.0e-3]}}}")
	contains(t, "dry run", mustRun(t, "sweep", sw, "--dry-run", "--name", "x"), "3 trials of "+dir+"/sms.yaml, ranked by f1_macro", "x-1\tlr=", "x-3\tlr=")
}
