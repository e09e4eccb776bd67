package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/metrics"
	"github.com/bertnode/bertnode/sweep"
	"github.com/spf13/cobra"
)

func init() { subcommands = append(subcommands, newSweepCmd) }

// sweepPoll is how often a sweep looks at its running trials.
var sweepPoll = 2 * time.Second

func newSweepCmd() *cobra.Command {
	var (
		name           string
		dryRun, attach bool
	)
	c := &cobra.Command{
		Use:   "sweep SWEEP.yaml [--dry-run]",
		Short: "Run a hyperparameter sweep: one cluster job per trial, ranked by their best evaluation",
		Long: `Reads a sweep file, makes one job spec per trial from the job spec it names, checks
every trial's spec as submit does, uploads the data once, submits the trials (all at
once, or parallel at a time), follows them to their end and prints them ranked by the
metric's best evaluation, best first (lowest first for losses and errors).

  job: sms.yaml                 # the spec every trial starts from (relative to this file)
  metric: f1_spam               # default: the job's metric
  parallel: 2                   # trials running at once; default all (the coordinator
                                # queues what its idle nodes cannot take)
  grid:                         # every combination, the last field varying fastest
    lr: [1.0e-4, 3.0e-4, 1.0e-3]
    cluster.nodes: [1, 2]       # any field of the job spec, by its path
  random:                       # draws; with a grid, this many per grid point
    trials: 8
    seed: 1                     # the same file always gives the same trials
    params:
      lr: {log_uniform: [1.0e-5, 1.0e-3]}
      warmup_ratio: {uniform: [0, 0.2]}
      batch_size: {choice: [16, 32]}
  prune: {startup_trials: 5, warmup_steps: 0}
                                # stop a trial whose best evaluation so far is worse than
                                # the median of the succeeded trials' at the same step,
                                # once startup_trials of them evaluated there (Optuna's
                                # MedianPruner and its defaults: prune: {} for them)

Trials are named SWEEP-1, SWEEP-2, ... (SWEEP is --name, default the file's name).
Stopping the command leaves the submitted trials running (bertnode cancel JOB stops
one); run it again with --attach to follow them and submit the rest. It exits 1 when
no trial succeeded.`,
		Example: `  bertnode sweep examples/cluster/sms-sweep.yaml --dry-run
  bertnode sweep examples/cluster/sms-sweep.yaml --coordinator 10.0.0.1:7300`,
		Args: cobra.ExactArgs(1),
	}
	cf := addClusterFlags(c, true)
	c.RunE = func(cmd *cobra.Command, args []string) error {
		path := args[0]
		text, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		sw, err := sweep.Parse(string(text))
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		jobPath := sw.Job
		if !filepath.IsAbs(jobPath) {
			jobPath = filepath.Join(filepath.Dir(path), jobPath)
		}
		base, err := os.ReadFile(jobPath)
		if err != nil {
			return fmt.Errorf("%s: job: %w", path, err)
		}
		if name == "" {
			name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
		}
		trials := sw.Trials()
		runs := make([]trialRun, len(trials))
		for i, tr := range trials {
			where := fmt.Sprintf("%s: trial %d (%s)", path, i+1, tr)
			t, err := sweep.Apply(string(base), tr)
			if err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
			spec, err := checkJobSpec(t, where)
			if err != nil {
				return err
			}
			if sw.Metric == "" {
				sw.Metric = spec.Metric
			}
			runs[i] = trialRun{n: i + 1, trial: tr, spec: t, shared: spec.Cluster.WithDefaults().Data == "shared"}
		}
		out := cmd.OutOrStdout()
		if dryRun {
			fmt.Fprintf(out, "%d trials of %s, ranked by %s:\n", len(runs), jobPath, sw.Metric)
			for _, r := range runs {
				fmt.Fprintf(out, "  %s-%d\t%s\n", name, r.n, r.trial)
			}
			return nil
		}
		cl, ctx, stop, err := cf.connect(cmd)
		if err != nil {
			return err
		}
		defer stop()
		if err := adopt(ctx, cl, name, runs, attach); err != nil {
			return err
		}
		s := sweepRun{cl: cl, out: out, name: name, metric: sw.Metric, runs: runs, uploaded: map[string]string{}, prune: sw.Prune}
		if err := s.run(ctx, max(sw.Parallel, 0)); err != nil {
			return err
		}
		return s.report()
	}
	c.Flags().StringVar(&name, "name", "", "the trials' name prefix (default: the sweep file's name)")
	c.Flags().BoolVar(&dryRun, "dry-run", false, "check every trial's spec and print the trials; submit nothing")
	c.Flags().BoolVar(&attach, "attach", false, "follow the trials' jobs an earlier run of this sweep submitted (by name) instead of submitting them again; submit the rest")
	return c
}

// adopt gives each trial the job of its name an earlier run of the sweep submitted,
// when attach; without it, such jobs are an error, so that running a sweep twice does
// not train every trial twice.
func adopt(ctx context.Context, cl *api.Client, name string, runs []trialRun, attach bool) error {
	jobs, err := cl.Jobs(ctx)
	if err != nil {
		return err
	}
	byName := map[string]*api.Job{}
	for i := range jobs { // the latest of a name: the last submitted
		if j := byName[jobs[i].Name]; j == nil || jobs[i].Submitted.After(j.Submitted) {
			byName[jobs[i].Name] = &jobs[i]
		}
	}
	for i := range runs {
		r := &runs[i]
		j := byName[fmt.Sprintf("%s-%d", name, r.n)]
		if j == nil {
			continue
		}
		if !attach {
			return fmt.Errorf("%s (%s) is trial %d of an earlier run of this sweep: --attach follows its jobs, --name starts another sweep", j.ID, j.Name, r.n)
		}
		diff, err := r.trial.Differs(j.Spec)
		if err != nil {
			return fmt.Errorf("%s: %w", j.ID, err)
		}
		if diff != "" {
			return fmt.Errorf("%s (%s) has %s, not trial %d's %s: another sweep's job; --name starts this one apart", j.ID, j.Name, diff, r.n, r.trial)
		}
		r.job = j
	}
	return nil
}

// trialRun is one trial of a sweep and its job.
type trialRun struct {
	n      int
	trial  sweep.Trial
	spec   string // the job spec text, data paths local
	shared bool   // cluster.data: shared, nothing to upload
	job    *api.Job

	curve     []sweep.Point // its evaluations of the metric, when the sweep prunes
	curveStep int64         // the latest evaluation step curve holds
	pruned    string        // why the sweep stopped it
}

type sweepRun struct {
	cl       *api.Client
	out      io.Writer
	name     string
	metric   string
	runs     []trialRun
	uploaded map[string]string
	prune    *sweep.Prune
}

// run submits the trials, at most parallel at a time (0: all), and waits for them all.
func (s *sweepRun) run(ctx context.Context, parallel int) error {
	if parallel == 0 {
		parallel = len(s.runs)
	}
	var active []int
	for next := 0; next < len(s.runs) || len(active) > 0; {
		for ; next < len(s.runs) && len(active) < parallel; next++ {
			r := &s.runs[next]
			if r.job != nil {
				fmt.Fprintf(s.out, "trial %d/%d follows %s (%s), submitted earlier: %s\n", r.n, len(s.runs), r.job.ID, r.job.Name, r.trial)
			} else if err := s.submit(ctx, r); err != nil {
				return fmt.Errorf("trial %d: %w", r.n, err)
			}
			active = append(active, next)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (the submitted trials go on: bertnode cancel JOB stops one)", ctx.Err())
		case <-time.After(sweepPoll):
		}
		still := active[:0]
		for _, i := range active {
			r := &s.runs[i]
			j, err := s.cl.Job(ctx, r.job.ID)
			if err == nil && s.prune != nil && j.Progress.EvalStep > r.curveStep {
				err = s.readCurve(ctx, r, j.Progress.EvalStep)
			}
			if err != nil {
				return fmt.Errorf("trial %d (%s): %w", r.n, r.job.ID, err)
			}
			r.job = j
			if !j.State.Done() {
				if err := s.judge(ctx, r); err != nil {
					return fmt.Errorf("trial %d (%s): %w", r.n, r.job.ID, err)
				}
				still = append(still, i)
				continue
			}
			line := fmt.Sprintf("trial %d/%d (%s) %s", r.n, len(s.runs), j.ID, j.State)
			if r.pruned != "" {
				line = fmt.Sprintf("trial %d/%d (%s) pruned (%s)", r.n, len(s.runs), j.ID, r.pruned)
			} else if j.State != api.Succeeded && j.Reason != "" {
				line += " (" + j.Reason + ")"
			}
			if v, from, ok := trialScore(j, s.metric); ok {
				line += fmt.Sprintf(": %s %s=%.4f", from, s.metric, v)
			}
			fmt.Fprintln(s.out, line)
		}
		active = still
	}
	return nil
}

// readCurve reads the trial's evaluations of the metric from its job's event log, once
// the job has evaluated at step.
func (s *sweepRun) readCurve(ctx context.Context, r *trialRun, step int64) error {
	logs, err := s.cl.Logs(ctx, r.job.ID, 0, 0)
	if err != nil {
		return err
	}
	r.curve = r.curve[:0]
	for _, e := range logs.Events {
		if v, ok := e.Metrics[s.metric]; ok && e.Kind == "eval" {
			r.curve = append(r.curve, sweep.Point{Step: e.Step, Value: v})
		}
	}
	r.curveStep = step
	return nil
}

// judge cancels a running trial that the prune rule stops at its latest evaluation.
func (s *sweepRun) judge(ctx context.Context, r *trialRun) error {
	if s.prune == nil || r.pruned != "" || len(r.curve) == 0 {
		return nil
	}
	var succeeded [][]sweep.Point
	for _, o := range s.runs {
		if o.job != nil && o.job.State == api.Succeeded && o.pruned == "" {
			succeeded = append(succeeded, o.curve)
		}
	}
	v := s.prune.Judge(r.curve, succeeded, func(a, b float64) bool { return metrics.Improves(s.metric, a, b) })
	if !v.Stop {
		return nil
	}
	if err := s.cl.Cancel(ctx, r.job.ID); err != nil {
		return err
	}
	r.pruned = fmt.Sprintf("at step %d: best %s %.4f, the median of %d succeeded trials there %.4f",
		r.curve[len(r.curve)-1].Step, s.metric, v.Best, v.Trials, v.Median)
	return nil
}

func (s *sweepRun) submit(ctx context.Context, r *trialRun) error {
	sent := r.spec
	if !r.shared {
		var err error
		if sent, err = uploadData(ctx, s.cl, sent, s.out, s.uploaded); err != nil {
			return err
		}
	}
	name := fmt.Sprintf("%s-%d", s.name, r.n)
	id, err := s.cl.Submit(ctx, api.SubmitRequest{Name: name, Spec: sent})
	if err != nil {
		return err
	}
	r.job = &api.Job{ID: id, Name: name}
	fmt.Fprintf(s.out, "trial %d/%d submitted as %s (%s): %s\n", r.n, len(s.runs), id, name, r.trial)
	return nil
}

// trialScore is the job's best evaluation of metric when it kept a best model, else
// its last.
func trialScore(j *api.Job, metric string) (v float64, from string, ok bool) {
	if a, ok := j.Results["best"]; ok {
		if v, ok := a.Metrics[metric]; ok {
			return v, "best", true
		}
	}
	v, ok = j.Progress.Eval[metric]
	return v, "last", ok
}

// report prints the trials best first: those that succeeded by their score (those
// without one last), then the rest the same way; it fails when none succeeded.
func (s *sweepRun) report() error {
	order := make([]*trialRun, len(s.runs))
	for i := range s.runs {
		order[i] = &s.runs[i]
	}
	// Succeeded before failed or cancelled: a failed trial's score is from a run that
	// did not finish and may have diverged since.
	better := func(a, b *trialRun) bool {
		sa, sb := a.job.State == api.Succeeded, b.job.State == api.Succeeded
		if sa != sb {
			return sa
		}
		va, _, oka := trialScore(a.job, s.metric)
		vb, _, okb := trialScore(b.job, s.metric)
		return oka && (!okb || metrics.Improves(s.metric, va, vb))
	}
	// An insertion sort: stable, and better is not a strict weak order for NaNs.
	for i := 1; i < len(order); i++ {
		for k := i; k > 0 && better(order[k], order[k-1]); k-- {
			order[k], order[k-1] = order[k-1], order[k]
		}
	}
	w := tabwriter.NewWriter(s.out, 2, 4, 2, ' ', 0)
	fmt.Fprintf(w, "  TRIAL\tJOB\tSTATE\tSTEP\t%s\tSETTINGS\n", strings.ToUpper(s.metric))
	succeeded := 0
	for _, r := range order {
		score := "-"
		if v, from, ok := trialScore(r.job, s.metric); ok {
			score = fmt.Sprintf("%.4f (%s)", v, from)
		}
		if r.job.State == api.Succeeded {
			succeeded++
		}
		state := string(r.job.State)
		if r.pruned != "" {
			state = "pruned"
		}
		fmt.Fprintf(w, "  %d\t%s\t%s\t%d\t%s\t%s\n", r.n, r.job.ID, state, r.job.Progress.Step, score, r.trial)
	}
	w.Flush()
	if succeeded == 0 {
		return fmt.Errorf("no trial of %d succeeded", len(s.runs))
	}
	for _, b := range order {
		if _, _, ok := trialScore(b.job, s.metric); ok && b.job.State == api.Succeeded {
			kind := "final"
			if _, ok := b.job.Results["best"]; ok {
				kind = "best"
			}
			fmt.Fprintf(s.out, "best: trial %d (%s), %s; bertnode download %s --kind %s --output DIR\n", b.n, b.job.ID, b.trial, b.job.ID, kind)
			break
		}
	}
	return nil
}
