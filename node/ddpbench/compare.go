package ddpbench

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/bertnode/bertnode/allreduce/ringbench"
)

// Torch is how to run the peer: the PyTorch DDP script (ddp_bert_gloo.py in the
// shared bench directory) with an interpreter that has torch.
type Torch struct {
	Python string
	Script string
}

// torchCPU runs the script, unchanged, with each step's CPU time recorded.
//
//go:embed torchcpu.py
var torchCPU string

const torchCPUDirEnv = "BERTNODE_TORCH_CPU_DIR"

// torchEnv is environ with, unless it sets them, OMP_WAIT_POLICY=passive,
// GLOO_SOCKET_IFNAME=lo and OPENBLAS_NUM_THREADS=o.Threads: torch's --threads does not
// bound OpenBLAS's own pool (as many threads as CPUs); bertnode's ranks bound theirs to
// their threads too (model.SetThreads), so each rank of either side gets the same cores.
func torchEnv(o Options, environ []string) []string {
	env := slices.Clone(environ)
	for _, kv := range [][2]string{{"OMP_WAIT_POLICY", "passive"}, {"GLOO_SOCKET_IFNAME", "lo"}, {"OPENBLAS_NUM_THREADS", strconv.Itoa(o.Threads)}} {
		if !slices.ContainsFunc(environ, func(e string) bool { return strings.HasPrefix(e, kv[0]+"=") }) {
			env = append(env, kv[0]+"="+kv[1])
		}
	}
	return env
}

// Run runs the script with o's parameters (call o.Defaults first, so both sides get
// the same threads) in torchEnv, copies its table to w and returns its rows, with the
// CPU time of its steps (torchcpu.py) added.
func (t Torch) Run(ctx context.Context, o Options, w io.Writer) ([]Result, error) {
	dir, err := os.MkdirTemp("", "bertnode-torch-cpu-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	wrapper := filepath.Join(dir, "torchcpu.py")
	if err := os.WriteFile(wrapper, []byte(torchCPU), 0o644); err != nil {
		return nil, err
	}
	args := []string{wrapper, t.Script, "--nprocs", strconv.Itoa(o.Ranks), "--configs"}
	args = append(args, o.Configs...)
	args = append(args, "--batch", strconv.Itoa(o.Batch), "--seq", strconv.Itoa(o.Seq), "--threads", strconv.Itoa(o.Threads),
		"--warmup", strconv.Itoa(o.Warmup), "--steps", strconv.Itoa(o.Steps), "--nosync-steps", strconv.Itoa(o.NoSync), "--tag", o.Tag)
	cmd := exec.CommandContext(ctx, t.Python, args...)
	cmd.Env = append(torchEnv(o, os.Environ()), torchCPUDirEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr // its progress lines repeat the JSON of stdout
	load0 := ringbench.LoadAvg()
	stdout, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w\n%s", t.Python, t.Script, err, tail(stderr.String(), 2000))
	}
	var table strings.Builder
	res, err := ReadResults(bytes.NewReader(stdout), &table)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t.Script, err)
	}
	if len(res) == 0 {
		return nil, fmt.Errorf("%s printed no results:\n%s", t.Script, tail(string(stdout), 2000))
	}
	if err := addTorchCPU(dir, o, res); err != nil {
		return nil, err
	}
	for i := range res {
		res[i].LoadBefore, res[i].LoadAfter = load0, ringbench.LoadAvg()
	}
	_, err = io.WriteString(w, table.String())
	return res, err
}

// addTorchCPU reads what torchcpu.py recorded (per rank, a list of step CPU times per
// config, in the script's order: warm-up, a compute-only warm-up, then each timed step
// and, for the first NoSync, the compute-only step after it) and sets the rows' CPU
// medians, the slowest rank's per step as for bertnode.
func addTorchCPU(dir string, o Options, res []Result) error {
	sync := make([][]float64, len(o.Configs))   // [config][step]
	nosync := make([][]float64, len(o.Configs)) // [config][step]
	for rank := range o.Ranks {
		f, err := os.Open(filepath.Join(dir, fmt.Sprintf("rank%d.jsonl", rank)))
		if err != nil {
			return fmt.Errorf("the script's CPU times: %w", err)
		}
		dec := json.NewDecoder(f)
		for c := range o.Configs {
			var cpu []float64
			err := dec.Decode(&cpu)
			skip := o.Warmup + min(1, o.NoSync)
			if err == nil && len(cpu) != skip+o.Steps+o.NoSync {
				err = fmt.Errorf("%d steps, want %d", len(cpu), skip+o.Steps+o.NoSync)
			}
			if err != nil {
				f.Close()
				return fmt.Errorf("the script's CPU times, rank %d, %s: %w", rank, o.Configs[c], err)
			}
			if rank == 0 {
				sync[c], nosync[c] = make([]float64, o.Steps), make([]float64, o.NoSync)
			}
			i := skip
			for s := range o.Steps {
				sync[c][s] = max(sync[c][s], cpu[i])
				i++
				if s < o.NoSync {
					nosync[c][s] = max(nosync[c][s], cpu[i])
					i++
				}
			}
		}
		f.Close()
	}
	for i := range res {
		if c := slices.Index(o.Configs, res[i].Config); c >= 0 {
			res[i].CPUMedian, res[i].CPUNoSyncMedian = ringbench.Median(sync[c]), ringbench.Median(nosync[c])
		}
	}
	return nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// ReadResults decodes the JSON lines of either side (lines that start with '{' and
// name one of the two benches) and copies every other line to rest.
func ReadResults(r io.Reader, rest io.Writer) ([]Result, error) {
	var res []Result
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	for n := 1; sc.Scan(); n++ {
		t := sc.Bytes()
		if len(t) == 0 || t[0] != '{' {
			fmt.Fprintf(rest, "%s\n", t)
			continue
		}
		var x Result
		if err := json.Unmarshal(t, &x); err != nil {
			return res, fmt.Errorf("line %d: %w", n, err)
		}
		if x.Bench != BenchName && x.Bench != TorchBenchName {
			continue
		}
		res = append(res, x)
	}
	return res, sc.Err()
}

// side pools one side's rows of a config over rounds.
type side struct {
	rows            []Result
	steps, nosync   []float64
	paired          []float64 // step minus the compute-only step after it
	perRoundSamples []float64
	cpu, cpuNoSync  []float64 // per round: median CPU time of a rank's step
}

func (s *side) add(r Result) {
	s.rows = append(s.rows, r)
	s.steps = append(s.steps, r.StepTimes...)
	s.nosync = append(s.nosync, r.NoSyncStepTimes...)
	for i := range min(len(r.StepTimes), len(r.NoSyncStepTimes)) {
		s.paired = append(s.paired, r.StepTimes[i]-r.NoSyncStepTimes[i])
	}
	s.perRoundSamples = append(s.perRoundSamples, r.SamplesPerS)
	if r.CPUMedian > 0 {
		s.cpu = append(s.cpu, r.CPUMedian)
	}
	if r.CPUNoSyncMedian > 0 {
		s.cpuNoSync = append(s.cpuNoSync, r.CPUNoSyncMedian)
	}
}

func (s *side) step() float64       { return ringbench.Median(s.steps) }
func (s *side) nosyncStep() float64 { return ringbench.Median(s.nosync) }

// comm is the communication overhead: the median over pairs of a step and the
// compute-only step after it of their difference, which load that drifts over the run
// moves less than the difference of the medians.
func (s *side) comm() float64 { return ringbench.Median(s.paired) }

// Compare prints both sides' rows side by side, pooling every round's step times per
// config: median step (slowest rank), global samples/s, the ratio bertnode / PyTorch
// (overall and per round), each side's communication overhead (side.comm), the ratio
// of the compute-only steps, which says how much of the difference is not
// communication, and each side's CPU time per step (a rank process's, median over
// rounds) with their ratio, which other work on the machine moves far less than wall
// time. Rows that disagree on the model (layers, width, heads, parameters) are flagged.
func Compare(w io.Writer, torch, ours []Result) error {
	type key struct {
		config                     string
		ranks, batch, threads, seq int
	}
	k := func(r Result) key { return key{r.Config, r.WorldSize, r.BatchPerRank, r.Threads, r.Seq} }
	var keys []key
	sides := map[key]*[2]side{}
	for i, rows := range [][]Result{torch, ours} {
		for _, r := range rows {
			kk := k(r)
			if sides[kk] == nil {
				sides[kk] = &[2]side{}
				keys = append(keys, kk)
			}
			sides[kk][i].add(r)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# PyTorch DDP (gloo) against bertnode's ring, same model, batch and threads, rounds alternating; goal: ratio >= 1.20\n")
	fmt.Fprintf(&b, "%6s %5s %5s %7s | %8s %9s %7s %7s | %8s %9s %7s %7s | %6s %8s %6s | %s\n", "config", "ranks", "batch", "threads",
		"torch ms", "samples/s", "comm", "cpu", "bn ms", "samples/s", "comm", "cpu", "ratio", "no-comm", "cpu", "ratio per round")
	notes := []string{"ratio: bertnode's samples/s over torch's; no-comm: the same for the compute-only steps; cpu: torch's CPU time per step over bertnode's"}
	for _, kk := range keys {
		t, o := &sides[kk][0], &sides[kk][1]
		if len(t.rows) == 0 || len(o.rows) == 0 {
			continue
		}
		gb := float64(kk.ranks * kk.batch)
		ts, bs := gb/t.step(), gb/o.step()
		compute := "-"
		if len(t.nosync) > 0 && len(o.nosync) > 0 {
			compute = fmt.Sprintf("%.2fx", t.nosyncStep()/o.nosyncStep())
		}
		var rounds []string
		for i := range min(len(t.perRoundSamples), len(o.perRoundSamples)) {
			rounds = append(rounds, fmt.Sprintf("%.2f", o.perRoundSamples[i]/t.perRoundSamples[i]))
		}
		tc, oc := ringbench.Median(t.cpu), ringbench.Median(o.cpu)
		cpu := "-"
		if tc > 0 && oc > 0 {
			cpu = fmt.Sprintf("%.2fx", tc/oc)
		}
		fmt.Fprintf(&b, "%6s %5d %5d %7d | %8s %9.2f %7s %7s | %8s %9.2f %7s %7s | %5.2fx %8s %6s | %s\n", kk.config, kk.ranks, kk.batch,
			kk.threads, ms(t.step()), ts, ms(t.comm()), ms(tc), ms(o.step()), bs, ms(o.comm()), ms(oc), bs/ts, compute, cpu,
			strings.Join(rounds, " "))
		tr, or := t.rows[0], o.rows[0]
		if tr.Layers != or.Layers || tr.Hidden != or.Hidden || tr.Heads != or.Heads || tr.Intermediate != or.Intermediate ||
			tr.Params != or.Params || tr.GradBytes != or.GradBytes {
			notes = append(notes, fmt.Sprintf("! %s: the models differ: torch %d layers, hidden %d, %d heads, intermediate %d, %d parameters; "+
				"bertnode %d, %d, %d, %d, %d", kk.config, tr.Layers, tr.Hidden, tr.Heads, tr.Intermediate, tr.Params,
				or.Layers, or.Hidden, or.Heads, or.Intermediate, or.Params))
		}
		for _, r := range o.rows {
			if r.WeightsAgree != nil && !*r.WeightsAgree {
				notes = append(notes, fmt.Sprintf("! %s: bertnode's ranks held different weights after the warm-up", kk.config))
				break
			}
		}
	}
	slices.Sort(notes[1:])
	for _, n := range slices.Compact(notes) {
		fmt.Fprintln(&b, n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
