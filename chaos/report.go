package chaos

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/stream"
)

// trainIDs are the job's training record IDs, for the audit.
func trainIDs(o Options) ([]int32, error) {
	p, err := stream.Build(o.Train, shard.Spec{Format: shard.LabelText, Delimiter: "\t"}, stream.Options{BlockRecords: 256, EvalSplit: o.EvalSplit})
	if err != nil {
		return nil, err
	}
	return p.Order(0, 0, 1), nil
}

// diff is the largest absolute difference between two runs' final eval metrics.
func diff(a, b map[string]float64) float64 {
	var d float64
	for k, v := range a {
		if w, ok := b[k]; ok {
			d = math.Max(d, math.Abs(v-w))
		}
	}
	return d
}

// compare fails when a run's final eval metrics are missing one of the baseline's or
// differ from it by more than tol.
func compare(got, base map[string]float64, tol float64) error {
	for k, v := range base {
		w, ok := got[k]
		switch {
		case !ok:
			return fmt.Errorf("final eval metrics %v lack the baseline's %s", got, k)
		case math.Abs(v-w) > tol:
			return fmt.Errorf("final eval %s=%g, the fault-free run's %g: more than %g apart", k, w, v, tol)
		}
	}
	return nil
}

// line is a run's one-line summary.
func (r Result) line(base Result) string {
	var fs []string
	for _, f := range r.Faults {
		s := fmt.Sprintf("%s %s@%d", f.Kind, f.Target, f.AtStep)
		if !f.Injected.IsZero() && f.Recovery > 0 {
			s += fmt.Sprintf(" (%.1fs)", f.Recovery.Seconds())
		} else if f.Injected.IsZero() {
			s += " (not reached)"
		}
		fs = append(fs, s)
	}
	if len(fs) == 0 {
		fs = []string{"no faults"}
	}
	if r.Err != nil {
		return fmt.Sprintf("FAILED in %s: %s: %v", r.Duration.Round(time.Second), strings.Join(fs, ", "), r.Err)
	}
	return fmt.Sprintf("ok in %s: %s; %d steps, %d aborted, lost %d, repeated %d; eval %s (max |diff| from baseline %.2g)",
		r.Duration.Round(time.Second), strings.Join(fs, ", "), r.Audit.Steps, r.Audit.Aborted, r.Audit.Lost, r.Audit.Repeated,
		metricsLine(r.Eval), diff(r.Eval, base.Eval))
}

func metricsLine(m map[string]float64) string {
	var ks []string
	for k := range m {
		if k == "accuracy" || k == "loss" {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	var out []string
	for _, k := range ks {
		out = append(out, fmt.Sprintf("%s=%.4f", k, m[k]))
	}
	return strings.Join(out, " ")
}

// Summary prints the table issue #8 asks for: runs, faults injected by kind, recovery
// time median and max against the goals, samples lost and repeated, and the distance
// of the final metrics from the fault-free run's.
func Summary(w io.Writer, o Options, base Result, runs []Result) (ok bool) {
	failed := 0
	var lost, repeated, aborted int
	var maxDiff float64
	rec := map[Kind][]time.Duration{}
	injected := map[Kind]int{}
	for _, r := range runs {
		if r.Err != nil {
			failed++
			continue
		}
		lost += r.Audit.Lost
		repeated += r.Audit.Repeated
		aborted += r.Audit.Aborted
		maxDiff = math.Max(maxDiff, diff(r.Eval, base.Eval))
		for _, f := range r.Faults {
			if f.Injected.IsZero() {
				continue
			}
			injected[f.Kind]++
			if f.Recovery > 0 {
				rec[f.Kind] = append(rec[f.Kind], f.Recovery)
			}
		}
	}
	fmt.Fprintf(w, "\nchaos: %d runs, %d succeeded, %d failed (3 coordinators, %d nodes, %d steps each)\n\n", len(runs), len(runs)-failed, failed, o.nodes(), o.Steps)
	fmt.Fprintf(w, "| fault | injected | recovery median | recovery max | goal |\n|---|---|---|---|---|\n")
	ok = failed == 0 && lost == 0 && repeated == 0
	for _, k := range Kinds {
		if injected[k] == 0 {
			continue
		}
		ds := rec[k]
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		limit, goal := k.goal(o.RingTimeout)
		med, mx := "-", "-"
		if len(ds) > 0 {
			med, mx = ds[len(ds)/2].Round(10*time.Millisecond).String(), ds[len(ds)-1].Round(10*time.Millisecond).String()
			if ds[len(ds)-1] > limit {
				goal += " MISSED"
			}
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s |\n", k, injected[k], med, mx, goal)
	}
	fmt.Fprintf(w, "\nsamples lost: %d (must be 0); samples repeated: %d (must be 0); aborted steps trained again: %d\n", lost, repeated, aborted)
	fmt.Fprintf(w, "final eval metrics vs the fault-free run: max |difference| %.3g, tolerance %g (baseline %s)\n", maxDiff, o.Tolerance, metricsLine(base.Eval))
	return ok
}
