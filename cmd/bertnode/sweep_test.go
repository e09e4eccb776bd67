package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/coordinator/coordtest"
	"github.com/bertnode/bertnode/train"
)

// A sweep against a real coordinator: the data goes up once, at most parallel trials
// are unfinished at a time, each trial's job carries its settings, and the table ranks
// the trials that succeeded by their best evaluation, then the failed ones, whatever
// they scored. Two nodes, played by the test, report for each job an f1 that rises with
// the lr and warmup, and fail the lr 0.01 jobs.
func TestSweepRanksTrialsOnACluster(t *testing.T) {
	c, flags := testCluster(t)
	dir := t.TempDir()
	writeSpec(t, dir, writeLines(t, dir, "sms.txt", smsLines...), "metric: f1_spam")
	sw := writeLines(t, dir, "lr.yaml", "job: sms.yaml", "parallel: 2", "grid:", "  lr: [0.0001, 0.001, 0.01]", "  warmup_ratio: [0, 0.1]")
	var mu sync.Mutex
	var specs []train.Spec
	maxActive := 0
	out := sweepWith(t, c, flags, sw, func(ctx context.Context, cl *api.Client, n string, a *api.Assignment, spec train.Spec) {
		jobs, _ := cl.Jobs(ctx)
		active := 0
		for _, j := range jobs {
			if !j.State.Done() {
				active++
			}
		}
		mu.Lock()
		specs = append(specs, spec)
		maxActive = max(maxActive, active)
		mu.Unlock()
		f1 := 0.9 - 0.1*float64(len(fmt.Sprint(spec.LR))-len("0.001")) + spec.WarmupRatio/10
		evalAndEnd(ctx, t, cl, n, a, map[int64]float64{4: f1 - 0.05}, f1, spec.LR == 0.01)
	})
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
	if rows, want := tableRows(out), []string{"4 succeeded", "3 succeeded", "2 succeeded", "1 succeeded", "6 failed", "5 failed"}; !slices.Equal(rows, want) {
		t.Errorf("ranked %q, want %q:\n%s", rows, want, out)
	}
	contains(t, "sweep", out, "0.9100 (best)", "lr=0.001 warmup_ratio=0.1", "best: trial 4 (", "--kind best --output DIR",
		"submitted as", "(lr-1)")
	if n := strings.Count(out, ": loss is NaN): last f1_spam="); n != 2 {
		t.Errorf("%d trials failed with their reason, want 2:\n%s", n, out)
	}
}

// With prune, a trial whose evaluation falls below the median of the succeeded
// trials' at the same step is cancelled there; one above it runs on.
func TestSweepPrunesATrialBehindTheMedian(t *testing.T) {
	c, flags := testCluster(t)
	dir := t.TempDir()
	writeSpec(t, dir, writeLines(t, dir, "sms.txt", smsLines...), "metric: f1_spam")
	sw := writeLines(t, dir, "p.yaml", "job: sms.yaml", "parallel: 1", "prune: {startup_trials: 2}", "grid: {lr: [0.001, 0.002, 0.0001, 0.003]}")
	out := sweepWith(t, c, flags, sw, func(ctx context.Context, cl *api.Client, n string, a *api.Assignment, spec train.Spec) {
		if spec.LR != 0.0001 {
			evalAndEnd(ctx, t, cl, n, a, map[int64]float64{2: 0.8 + spec.LR*10, 4: 0.9 + spec.LR*10}, 0.9+spec.LR*10, false)
			return
		}
		cl.Progress(ctx, a.Job.ID, api.ProgressReport{Node: n, Gen: a.Gen, Step: 2, TotalSteps: 4, Eval: map[string]float64{"f1_spam": 0.3}, EvalStep: 2})
		for end := time.Now().Add(20 * time.Second); time.Now().Before(end); { // until the sweep cancels it
			if b, err := cl.Assignment(ctx, n, 0, 0); err != nil || b.Job == nil {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		evalAndEnd(ctx, t, cl, n, a, nil, 0.3, false) // not pruned: the table says so
	})
	if rows, want := tableRows(out), []string{"4 succeeded", "2 succeeded", "1 succeeded", "3 pruned"}; !slices.Equal(rows, want) {
		t.Errorf("ranked %q, want %q:\n%s", rows, want, out)
	}
	contains(t, "sweep", out, "(job-3) pruned (at step 2: best f1_spam 0.3000, the median of 2 succeeded trials there 0.8150)")
}

// sweepWith runs bertnode sweep (with the extra flags) against c while two nodes,
// played by the test, call onJob with each job they are assigned (at rank 0); it
// returns the sweep's output.
func sweepWith(t *testing.T, c *coordtest.Cluster, flags []string, sw string, onJob func(ctx context.Context, cl *api.Client, n string, a *api.Assignment, spec train.Spec), extra ...string) string {
	t.Helper()
	defer func(p time.Duration) { sweepPoll = p }(sweepPoll)
	sweepPoll = 20 * time.Millisecond
	cl := c.Client()
	ctx, cancel := context.WithCancel(c.Context())
	defer cancel()
	var wg sync.WaitGroup
	for _, n := range []string{"n1", "n2"} {
		if err := cl.RegisterNode(ctx, api.RegisterNode{ID: n, RingAddr: "127.0.0.1:7001"}); err != nil {
			t.Fatal(err)
		}
		c.AliveNode(n)
		wg.Go(func() {
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
				onJob(ctx, cl, n, a, spec)
			}
		})
	}
	out, stderr, err := bertnode(t, "", append(append([]string{"sweep", sw}, extra...), flags...)...)
	cancel()
	wg.Wait()
	if err != nil {
		t.Fatalf("sweep: %v\n%s%s", err, out, stderr)
	}
	return out
}

// evalAndEnd reports a job's evaluations of f1_spam by step, then fails it or ends it
// with a best model of f1 best.
func evalAndEnd(ctx context.Context, t *testing.T, cl *api.Client, n string, a *api.Assignment, evals map[int64]float64, best float64, fail bool) {
	id := a.Job.ID
	for _, step := range slices.Sorted(maps.Keys(evals)) {
		cl.Progress(ctx, id, api.ProgressReport{Node: n, Gen: a.Gen, Step: step, TotalSteps: 4, Loss: 0.5,
			Eval: map[string]float64{"f1_spam": evals[step]}, EvalStep: step})
	}
	rep := api.DoneReport{Node: n, Gen: a.Gen, Step: 4}
	if fail {
		rep.Error = "loss is NaN"
	} else {
		blob, err := cl.PutBlob(ctx, strings.NewReader("a model"), -1)
		if err != nil && ctx.Err() == nil {
			t.Error(err)
		}
		for _, r := range []api.ResultReport{{Node: n, Kind: "best", Blob: blob, Step: 2, Metrics: map[string]float64{"f1_spam": best}},
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

// tableRows are the sweep table's trials and states, in its order.
func tableRows(out string) []string {
	var rows []string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 2 && strings.HasPrefix(f[1], "job-") {
			rows = append(rows, f[0]+" "+f[2])
		}
	}
	return rows
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

// A sweep run again finds its trials' jobs by name: without --attach it refuses to
// train them twice; with it, it follows them and submits only the trials they lack.
// A job of the same name with other settings is another sweep's.
func TestSweepAttachFollowsEarlierTrials(t *testing.T) {
	c, flags := testCluster(t)
	dir := t.TempDir()
	writeSpec(t, dir, writeLines(t, dir, "sms.txt", smsLines...), "metric: f1_spam")
	finish := func(ctx context.Context, cl *api.Client, n string, a *api.Assignment, spec train.Spec) {
		evalAndEnd(ctx, t, cl, n, a, nil, spec.LR*100, false)
	}
	sw := writeLines(t, dir, "s.yaml", "job: sms.yaml", "grid: {lr: [0.001, 0.002]}")
	sweepWith(t, c, flags, sw, finish)
	wantErr(t, "", []string{"job-1 (s-1) is trial 1 of an earlier run of this sweep: --attach"}, append([]string{"sweep", sw}, flags...)...)

	writeLines(t, dir, "s.yaml", "job: sms.yaml", "grid: {lr: [0.001, 0.002, 0.003]}")
	out := sweepWith(t, c, flags, sw, finish, "--attach")
	contains(t, "sweep --attach", out, "trial 1/3 follows job-1 (s-1), submitted earlier", "trial 2/3 follows job-2 (s-2)",
		"trial 3/3 submitted as job-3 (s-3)", "best: trial 3 (job-3)")
	if jobs, _ := c.Client().Jobs(c.Context()); len(jobs) != 3 {
		t.Errorf("%d jobs, want the 3 trials once each", len(jobs))
	}

	writeLines(t, dir, "s.yaml", "job: sms.yaml", "grid: {lr: [0.5]}")
	wantErr(t, "", []string{"job-1 (s-1) has lr: 0.001, not trial 1's lr=0.5: another sweep's job"}, append([]string{"sweep", sw, "--attach"}, flags...)...)
}
