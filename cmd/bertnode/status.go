package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/spf13/cobra"
)

func init() { subcommands = append(subcommands, newStatusCmd) }

func newStatusCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "status [JOB]",
		Short: "Show the cluster, or one job",
		Long: `Without JOB: the coordinators (which one leads), the nodes and the jobs.
With JOB: its state, generation and members, step of total, loss, samples/s per
node, time left, an fp16 job's loss scale and skipped steps, latest evaluation,
recoveries and results.`,
		Args: cobra.MaximumNArgs(1),
	}
	withClient(c, func(cmd *cobra.Command, ctx context.Context, cl *api.Client, args []string) error {
		st, err := cl.Status(ctx)
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		if len(args) == 0 {
			printCluster(out, st)
			return nil
		}
		j, err := cl.Job(ctx, args[0])
		if err != nil {
			return err
		}
		printJob(out, j, st.Nodes)
		return nil
	})
	return c
}

func printCluster(out io.Writer, st *api.Status) {
	fmt.Fprintf(out, "coordinators (raft index %d):\n", st.Index)
	w := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "  ID\tROLE\tHEALTH\tAPI\tRAFT")
	for _, m := range st.Members {
		role := "follower"
		if m.Leader {
			role = "leader"
		}
		if !m.Voter {
			role += " (non-voter)"
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\n", m.ID, role, or(string(m.Health), "-"), or(m.APIAddr, "-"), m.RaftAddr)
	}
	w.Flush()
	fmt.Fprintf(out, "\nnodes:\n")
	printNodes(out, st.Nodes)
	fmt.Fprintf(out, "\njobs:\n")
	printJobs(out, st.Jobs)
}

func printNodes(out io.Writer, nodes []api.Node) {
	if len(nodes) == 0 {
		fmt.Fprintln(out, "  none registered")
		return
	}
	w := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "  ID\tHEALTH\tJOB\tRANK\tSAMPLES/S\tDEVICE\tRING")
	for _, n := range nodes {
		rank, rate := "-", "-"
		if s := n.Stats; s != nil && s.Job == n.Job && n.Job != "" {
			rank, rate = fmt.Sprint(s.Rank), fmt.Sprintf("%.1f", s.SamplesPerSec)
		}
		job := or(n.Job, "idle")
		switch {
		case n.Drain && n.Job != "":
			job += " (draining)"
		case n.Drain:
			job = "drained"
		case n.Unproven:
			job = "left out" // no work until it registers again
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.ID, n.Health, job, rank, rate, or(n.Device, "-"), n.RingAddr)
	}
	w.Flush()
}

func printJobs(out io.Writer, jobs []api.Job) {
	if len(jobs) == 0 {
		fmt.Fprintln(out, "  none")
		return
	}
	w := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "  ID\tNAME\tSTATE\tGEN\tNODES\tSTEP\tLOSS\tSUBMITTED\tREASON")
	for _, j := range jobs {
		gen, nodes := "-", fmt.Sprintf("0/%d", j.Cluster.Nodes)
		if j.Gen != nil {
			gen, nodes = fmt.Sprint(j.Gen.Gen), fmt.Sprintf("%d/%d", j.Gen.Ranks(), j.Cluster.Nodes)
		}
		step, loss := "-", "-"
		if j.Kind == api.KindPredict && j.Work != nil {
			step = fmt.Sprintf("%d/%d units (%.1f records/s)", j.Progress.UnitsDone, j.Work.Units, j.Progress.SamplesPerSec)
		} else if j.Progress.TotalSteps > 0 {
			step, loss = fmt.Sprintf("%d/%d", j.Progress.Step, j.Progress.TotalSteps), fmt.Sprintf("%.4f", j.Progress.Loss)
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.ID, or(j.Name, "-"), j.State, gen, nodes, step, loss,
			j.Submitted.Local().Format("01-02 15:04"), j.Reason)
	}
	w.Flush()
}

// printJob is status JOB.
func printJob(out io.Writer, j *api.Job, nodes []api.Node) {
	fmt.Fprintln(out, progressLine(j))
	if j.Gen != nil && j.Kind == api.KindPredict {
		printUnits(out, j, nodes)
	} else if j.Gen != nil {
		fmt.Fprintf(out, "  generation %d since %s: %s\n", j.Gen.Gen, j.Gen.Opened.Local().Format(time.TimeOnly), j.Gen.Reason)
		w := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
		fmt.Fprintln(w, "    RANK\tNODE\tHEALTH\tSTEP\tSAMPLES/S\tSTEP MS\t")
		slow := stragglers(j, nodes)
		for r, m := range j.Gen.Members {
			health, step, rate, ms := "removed", "-", "-", "-" // bertnode nodes remove, or the node GC
			if i := slices.IndexFunc(nodes, func(n api.Node) bool { return n.ID == m.Node }); i >= 0 {
				n := nodes[i]
				health = string(n.Health)
				if s := n.Stats; s != nil && s.Job == j.ID {
					step, rate, ms = fmt.Sprint(s.Step), fmt.Sprintf("%.1f", s.SamplesPerSec), fmt.Sprintf("%.1f", s.StepMillis)
				}
			}
			fmt.Fprintf(w, "    %d\t%s\t%s\t%s\t%s\t%s\t%s\n", r, m.Node, health, step, rate, ms, slow[m.Node])
		}
		w.Flush()
	}
	if rc := j.Reconfig; rc != nil {
		fmt.Fprintf(out, "  reconfiguring generation %d (%s): confirmed %s, deadline %s\n", rc.Gen, rc.Cause,
			or(strings.Join(rc.Confirmed, ", "), "none yet"), rc.Deadline.Local().Format(time.TimeOnly))
	}
	if len(j.Waiting) > 0 {
		fmt.Fprintf(out, "  kept for the next generation: %s\n", strings.Join(j.Waiting, ", "))
	}
	if p := j.Progress; p.LossScale > 0 { // fp16 only
		steps := "steps"
		if p.Skipped == 1 {
			steps = "step"
		}
		fmt.Fprintf(out, "  loss scale %s (%d %s skipped)\n", strconv.FormatFloat(p.LossScale, 'f', -1, 64), p.Skipped, steps)
	}
	fmt.Fprintf(out, "  recoveries: %d\n", j.Progress.Recoveries)
	if len(j.Checkpoints) > 0 {
		c := j.Checkpoints[len(j.Checkpoints)-1]
		fmt.Fprintf(out, "  last checkpoint: step %d, %d replicas reported\n", c.Step, len(c.Checksums))
	}
	printOutcome(out, j)
}

// printUnits is status JOB's table of a predict job's nodes, its members and those that
// did units before: the units each did, and the one it holds.
func printUnits(out io.Writer, j *api.Job, nodes []api.Node) {
	fmt.Fprintf(out, "  generation %d since %s: %s\n", j.Gen.Gen, j.Gen.Opened.Local().Format(time.TimeOnly), j.Gen.Reason)
	var done map[string]int
	held := map[string]string{}
	if j.Work != nil {
		done = j.Work.ByNode
		for _, u := range j.Work.Leases {
			if u.Node != "" {
				held[u.Node] = fmt.Sprintf("%d (until %s)", u.Unit, u.Expires.Local().Format(time.TimeOnly))
			}
		}
	}
	w := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "    NODE\tHEALTH\tUNITS DONE\tLEASED")
	var ids []string
	for _, m := range j.Gen.Members {
		ids = append(ids, m.Node)
	}
	for _, id := range slices.Sorted(maps.Keys(done)) {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	for _, m := range ids {
		health := "removed"
		if i := slices.IndexFunc(nodes, func(n api.Node) bool { return n.ID == m }); i >= 0 {
			health = string(nodes[i].Health)
		}
		fmt.Fprintf(w, "    %s\t%s\t%d\t%s\n", m, health, done[m], or(held[m], "-"))
	}
	w.Flush()
}

// unitsOf is predict job j's units (0 before its input is planned).
func unitsOf(j *api.Job) int {
	if j.Work == nil {
		return 0
	}
	return j.Work.Units
}

// progressLine is a job in one line: its state, and where it stands.
func progressLine(j *api.Job) string {
	head := j.ID
	if j.Name != "" {
		head += " (" + j.Name + ")"
	}
	switch {
	case j.State == api.Pending:
		return fmt.Sprintf("%s pending: %s", head, j.Reason)
	case j.State.Done() && j.Kind == api.KindPredict:
		s := fmt.Sprintf("%s %s: %d/%d units, %d records", head, j.State, j.Progress.UnitsDone, unitsOf(j), j.Progress.Records)
		if j.Reason != "" {
			s += ": " + j.Reason
		}
		return s
	case j.State.Done():
		s := fmt.Sprintf("%s %s at step %d", head, j.State, j.Progress.Step)
		if j.Reason != "" {
			s += ": " + j.Reason
		}
		return s
	}
	var where string
	switch {
	case j.Waiting != nil:
		where = j.Reason
	case j.Reconfig != nil:
		where = fmt.Sprintf("generation %d, reconfiguring: %s", j.Gen.Gen, j.Reconfig.Cause)
	default:
		where = fmt.Sprintf("generation %d, %d of %d nodes", j.Gen.Gen, j.Gen.Ranks(), j.Cluster.Nodes)
	}
	p := j.Progress
	if j.Kind == api.KindPredict {
		return fmt.Sprintf("%s running (%s): %d/%d units  %d/%d records  %.1f records/s", head, where,
			p.UnitsDone, unitsOf(j), p.Records, j.Train.Records, p.SamplesPerSec)
	}
	if p.TotalSteps == 0 {
		return fmt.Sprintf("%s running (%s): step 0, starting", head, where)
	}
	s := fmt.Sprintf("%s running (%s): step %d/%d  epoch %d  loss %.4f  %.1f samples/s", head, where, p.Step, p.TotalSteps, p.Epoch, p.Loss, p.SamplesPerSec)
	if spec, err := api.ParseSpec(j.Spec); err == nil && j.Gen != nil {
		if eta := p.ETA(spec.GlobalBatch(j.Gen.Ranks())); eta > 0 {
			s += "  ETA " + eta.Round(time.Second).String()
		}
	}
	return s
}

// printOutcome prints a job's latest evaluation and its models.
func printOutcome(out io.Writer, j *api.Job) {
	if len(j.Progress.Eval) > 0 {
		keys := make([]string, 0, len(j.Progress.Eval))
		for k := range j.Progress.Eval {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		fmt.Fprintf(out, "  eval at step %d:", j.Progress.EvalStep)
		for _, k := range keys {
			fmt.Fprintf(out, " %s=%.4f", k, j.Progress.Eval[k])
		}
		fmt.Fprintln(out)
	}
	if j.Kind == api.KindPredict && j.State == api.Succeeded {
		fmt.Fprintf(out, "  output: %d units (bertnode download %s --output FILE.jsonl)\n", unitsOf(j), j.ID)
	}
	for _, kind := range []string{"final", "best", "checkpoint"} {
		if a, ok := j.Results[kind]; ok {
			fmt.Fprintf(out, "  %s model: step %d, %s, blob %s (bertnode download %s --kind %s --output DIR)\n",
				kind, a.Step, byteSize(a.Size), a.Blob[:min(12, len(a.Blob))], j.ID, kind)
		}
	}
}

func or(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// stragglers notes the members whose compute per sample is well over the median's:
// with a constant global batch the whole ring waits for them each step (a job with
// cluster.balance gives them smaller shares).
func stragglers(j *api.Job, nodes []api.Node) map[string]string {
	per := map[string]float64{} // ms per sample
	var all []float64
	for _, m := range j.Gen.Members {
		i := slices.IndexFunc(nodes, func(n api.Node) bool { return n.ID == m.Node })
		if i < 0 || nodes[i].Stats == nil || nodes[i].Stats.Job != j.ID || nodes[i].Stats.SamplesPerSec <= 0 {
			continue
		}
		v := 1000 / nodes[i].Stats.SamplesPerSec
		per[m.Node] = v
		all = append(all, v)
	}
	out := map[string]string{}
	if len(all) < 2 {
		return out
	}
	slices.Sort(all)
	med := all[len(all)/2]
	for n, v := range per {
		if v > 1.5*med {
			out[n] = fmt.Sprintf("straggler: %.1fx the median's time per sample", v/med)
		}
	}
	return out
}
