// Package ddpbench measures a cluster node's training step the way
// ../shared/bench/ddp_bert_gloo.py measures PyTorch DistributedDataParallel over gloo:
// N rank processes on loopback, each training the same minimal BERT (a model preset)
// on a fixed random batch of its own, the step's time being the slowest rank's. The
// step is the node's (node/session.go): backward of the rank's piece through
// train.Replica, the gradient all-reduce over the real ring, the commit round, clipping
// and AdamW. Compute-only steps (no all-reduce, no commit round) are interleaved with
// the real ones, as the script does, so that both see the same machine and their
// difference is what communication costs. bertnode bench ddp is its command line.
package ddpbench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/bertnode/bertnode/allreduce"
	"github.com/bertnode/bertnode/allreduce/ringbench"
	"github.com/bertnode/bertnode/hf"
)

// Configs are the model presets that are also the script's configs (BERT sizes).
var Configs = []string{"tiny", "mini", "small", "base"}

// Options describe one run.
type Options struct {
	Ranks   int
	Configs []string // model presets, as the script's --configs: tiny, mini, small, base
	Batch   int      // sequences per rank and step
	Seq     int      // tokens per sequence
	// Threads is libtorch's intra-op threads per rank; 0 means CPUs / Ranks (at least 1),
	// the script's default.
	Threads int
	Warmup  int // untimed node steps before the timed ones
	Steps   int // timed node steps
	// NoSync is how many of the timed steps are each followed by a timed compute-only
	// step; < 0 means Steps, 0 none.
	NoSync int
	// Overlap follows each timed node step (all-reduce after backward) with an
	// overlapped one (all-reduce during backward, the node's default), so the two
	// alternate on the same machine.
	Overlap bool
	Codec   allreduce.Codec
	// TCP keeps the ranks on TCP over loopback, as ranks on different hosts reduce;
	// without it codec none takes shared memory (allreduce.Config.NoSharedMemory).
	TCP     bool
	Timeout time.Duration // how long a silent ring neighbour is waited for
	// CPUProfile, when set, makes each rank write a CPU profile to CPUProfile.rank<i>.
	CPUProfile string
	Tag        string // free-form label stored in each result
}

// Step kinds.
const (
	kindSync    = "sync"    // the node's step
	kindNoSync  = "nosync"  // compute only: backward and optimizer, no ring
	kindOverlap = "overlap" // the node's step with the all-reduce during backward (Options.Overlap)
)

// DefaultTimeout is how long a rank waits for a silent neighbour: longer than the
// ring's default, since a neighbour's backward on a loaded machine can take seconds.
const DefaultTimeout = time.Minute

// workerEnv carries a rankSpec to the rank processes Run starts.
const workerEnv = "BERTNODE_DDP_BENCH_WORKER"

type rankSpec struct {
	Options
	Peers  []string
	Rank   int
	Secret []byte
}

// Defaults fills in what the script would (threads, compute-only steps) and the
// timeout.
func (o *Options) Defaults() {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Threads <= 0 {
		o.Threads = max(1, runtime.NumCPU()/max(1, o.Ranks))
	}
	if o.NoSync < 0 {
		o.NoSync = o.Steps
	}
	o.NoSync = min(o.NoSync, o.Steps)
}

func (o *Options) check() error {
	switch {
	case o.Ranks < 1 || o.Ranks > allreduce.MaxRanks:
		return fmt.Errorf("ddpbench: --nprocs %d, want 1 to %d", o.Ranks, allreduce.MaxRanks)
	case len(o.Configs) == 0:
		return errors.New("ddpbench: no --configs")
	case o.Batch < 1:
		return fmt.Errorf("ddpbench: --batch %d, want >= 1", o.Batch)
	case o.Seq < 8 || o.Seq > 512:
		return fmt.Errorf("ddpbench: --seq %d, want 8 to 512", o.Seq)
	case o.Steps < 1:
		return fmt.Errorf("ddpbench: --steps %d, want >= 1", o.Steps)
	case o.Warmup < 0:
		return fmt.Errorf("ddpbench: --warmup %d, want >= 0", o.Warmup)
	}
	for _, c := range o.Configs {
		if !slices.Contains(Configs, c) {
			return fmt.Errorf("ddpbench: --configs: %q is not one of the script's configs %v", c, Configs)
		}
	}
	return nil
}

// IsWorker reports whether this process was started by Run as a rank.
func IsWorker() bool { return os.Getenv(workerEnv) != "" }

// Worker runs the rank described by the environment Run set up, printing its samples
// as JSON lines to out.
func Worker(ctx context.Context, out io.Writer) error {
	var spec rankSpec
	if err := json.Unmarshal([]byte(os.Getenv(workerEnv)), &spec); err != nil {
		return fmt.Errorf("ddpbench: %s: %w", workerEnv, err)
	}
	lns, err := ringbench.InheritedListeners(1)
	if err != nil {
		return fmt.Errorf("ddpbench: %w", err)
	}
	defer lns[0].Close()
	return runRank(ctx, spec, lns[0], out)
}

// Run starts o.Ranks rank processes of self (the argv of a command that calls Worker
// when IsWorker) on loopback, and summarises what they measured, one Result per
// config.
func Run(ctx context.Context, o Options, self []string) ([]Result, error) {
	o.Defaults()
	if err := o.check(); err != nil {
		return nil, err
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	var (
		mu    sync.Mutex
		lines []line
	)
	load0 := ringbench.LoadAvg()
	err := ringbench.LocalRanks{Ranks: o.Ranks, Self: self, Env: workerEnv,
		Spec: func(rank int, rings [][]string) (string, error) {
			b, err := json.Marshal(rankSpec{Options: o, Peers: rings[0], Rank: rank, Secret: []byte(hex.EncodeToString(secret))})
			return string(b), err
		},
		Read: func(_ int, stdout io.Reader) error {
			ls, err := readLines(stdout)
			mu.Lock()
			lines = append(lines, ls...)
			mu.Unlock()
			return err
		},
	}.Run(ctx)
	if err != nil {
		return nil, fmt.Errorf("ddpbench: %w", err)
	}
	res := summarise(o, lines)
	meta := meta{Cpus: runtime.NumCPU(), Timestamp: time.Now().Format(time.RFC3339), LoadBefore: load0, LoadAfter: ringbench.LoadAvg(), Tag: o.Tag}
	meta.Host, _ = os.Hostname()
	for i := range res {
		res[i].meta = meta
	}
	return res, nil
}

// line is one JSON line of a rank's output: a timed step, or what the rank knows of
// a config once it is done with it.
type line struct {
	Step   *sample     `json:"step,omitempty"`
	Config *configInfo `json:"config,omitempty"`
}

// sample is one rank's timing of one step, in seconds.
type sample struct {
	Config  string  `json:"config"`
	Rank    int     `json:"rank"`
	Kind    string  `json:"kind"`
	Iter    int     `json:"iter"`
	Step    float64 `json:"step"`
	Compute float64 `json:"compute"` // ZeroGrad and Backward: tokenizing, forward, backward
	Comm    float64 `json:"comm"`    // after backward, until every rank holds the sum: all-reduce and commit round
	Opt     float64 `json:"opt"`     // Apply: clipping and AdamW
	// CPU is the CPU time the rank process spent in the step (all its threads: libtorch's,
	// the ring's), CommCPU that of the comm phase: unlike wall time, other work on the
	// machine barely moves them.
	CPU        float64 `json:"cpu"`
	ComputeCPU float64 `json:"compute_cpu"`
	CommCPU    float64 `json:"comm_cpu"`
	OptCPU     float64 `json:"opt_cpu"`
	Loss       float64 `json:"loss"`
	// Overlapped steps: the share of the gradient's bytes this rank sent while backward
	// ran, and how long before backward's end the first prefix was declared final.
	Early float64 `json:"early,omitempty"`
	Lead  float64 `json:"lead,omitempty"`
}

type configInfo struct {
	Config    string `json:"config"`
	Rank      int    `json:"rank"`
	Params    int    `json:"params"`
	Trainable int    `json:"trainable"`
	// Weights is a checksum of the weights after the warm-up (node steps only), which
	// every rank must agree on; 0 without warm-up.
	Weights uint32 `json:"weights"`
	// Transport is what the ring reduced through: shm or tcp (allreduce.Stats).
	Transport string `json:"transport"`
}

func readLines(r io.Reader) ([]line, error) {
	var out []line
	dec := json.NewDecoder(r)
	for {
		var l line
		if err := dec.Decode(&l); err == io.EOF {
			return out, nil
		} else if err != nil {
			return out, fmt.Errorf("rank output line %d: %w", len(out)+1, err)
		}
		out = append(out, l)
	}
}

// summarise takes per config, kind and step the slowest rank's time of each phase (as
// the script's all_reduce MAX over ranks does) and reports medians.
func summarise(o Options, lines []line) []Result {
	type key struct {
		config, kind string
		iter         int
	}
	slowest := map[key]*sample{}
	losses := map[key]float64{}
	infos := map[string][]configInfo{}
	for _, l := range lines {
		if c := l.Config; c != nil {
			infos[c.Config] = append(infos[c.Config], *c)
			continue
		}
		s := l.Step
		k := key{s.Config, s.Kind, s.Iter}
		if s.Rank == 0 {
			losses[k] = s.Loss
		}
		m := slowest[k]
		if m == nil {
			c := *s
			slowest[k] = &c
			continue
		}
		m.Step, m.Compute, m.Comm, m.Opt = max(m.Step, s.Step), max(m.Compute, s.Compute), max(m.Comm, s.Comm), max(m.Opt, s.Opt)
		m.CPU, m.CommCPU = max(m.CPU, s.CPU), max(m.CommCPU, s.CommCPU)
		m.ComputeCPU, m.OptCPU = max(m.ComputeCPU, s.ComputeCPU), max(m.OptCPU, s.OptCPU)
		m.Early, m.Lead = min(m.Early, s.Early), min(m.Lead, s.Lead)
	}
	var res []Result
	for _, name := range o.Configs {
		cfg, _ := hf.Preset(name)
		r := Result{Bench: BenchName, Backend: "bertnode-ring", Codec: o.Codec.String(),
			WorldSize: o.Ranks, Threads: o.Threads, Config: name, Layers: cfg.NumHiddenLayers, Hidden: cfg.HiddenSize,
			Heads: cfg.NumAttentionHeads, Intermediate: cfg.IntermediateSize, Vocab: cfg.VocabSize,
			BatchPerRank: o.Batch, GlobalBatch: o.Batch * o.Ranks, Seq: o.Seq, Warmup: o.Warmup, Steps: o.Steps}
		if is := infos[name]; len(is) > 0 {
			r.Params, r.GradBytes = is[0].Params, 4*int64(is[0].Trainable)
			if r.Transport = is[0].Transport; r.Transport == "tcp" {
				r.Transport = "tcp-loopback" // the name the torch side's rows use
			}
			if o.Warmup > 0 {
				agree := len(is) == o.Ranks
				for _, i := range is {
					agree = agree && i.Weights == is[0].Weights
				}
				r.WeightsAgree = &agree
				if agree {
					r.Weights = is[0].Weights
				}
			}
		}
		kind := func(k string, n int) (rows []sample, loss []float64) {
			for i := range n {
				if s := slowest[key{name, k, i}]; s != nil {
					rows = append(rows, *s)
					loss = append(loss, losses[key{name, k, i}])
				}
			}
			return rows, loss
		}
		sync, loss := kind(kindSync, o.Steps)
		if len(sync) == 0 {
			continue
		}
		r.StepTimes = steps(sync)
		r.StepMedian = ringbench.Median(r.StepTimes)
		r.ComputeMedian = ringbench.Median(col(sync, func(s sample) float64 { return s.Compute }))
		r.CommMedian = ringbench.Median(col(sync, func(s sample) float64 { return s.Comm }))
		r.OptMedian = ringbench.Median(col(sync, func(s sample) float64 { return s.Opt }))
		r.CPUMedian = ringbench.Median(col(sync, func(s sample) float64 { return s.CPU }))
		r.CommCPUMedian = ringbench.Median(col(sync, func(s sample) float64 { return s.CommCPU }))
		r.ComputeCPUMedian = ringbench.Median(col(sync, func(s sample) float64 { return s.ComputeCPU }))
		r.OptCPUMedian = ringbench.Median(col(sync, func(s sample) float64 { return s.OptCPU }))
		r.SamplesPerS = float64(r.GlobalBatch) / r.StepMedian
		r.LossFirst, r.LossLast = loss[0], loss[len(loss)-1]
		if nos, _ := kind(kindNoSync, o.NoSync); len(nos) > 0 {
			r.NoSyncSteps = len(nos)
			r.NoSyncStepTimes = steps(nos)
			r.StepNoSyncMedian = ringbench.Median(r.NoSyncStepTimes)
			r.SamplesPerSNoSync = float64(r.GlobalBatch) / r.StepNoSyncMedian
			r.CommOverhead = r.StepMedian - r.StepNoSyncMedian
			r.CommOverheadPaired = pairedMedian(r.StepTimes, r.NoSyncStepTimes)
			r.CPUNoSyncMedian = ringbench.Median(col(nos, func(s sample) float64 { return s.CPU }))
		}
		if ov, _ := kind(kindOverlap, o.Steps); o.Overlap && len(ov) > 0 {
			r.OverlapSteps = len(ov)
			r.OverlapStepTimes = steps(ov)
			r.StepOverlapMedian = ringbench.Median(r.OverlapStepTimes)
			r.ComputeOverlapMedian = ringbench.Median(col(ov, func(s sample) float64 { return s.Compute }))
			r.CommOverlapMedian = ringbench.Median(col(ov, func(s sample) float64 { return s.Comm }))
			r.CPUOverlapMedian = ringbench.Median(col(ov, func(s sample) float64 { return s.CPU }))
			r.EarlyMedian = ringbench.Median(col(ov, func(s sample) float64 { return s.Early }))
			r.LeadMedian = ringbench.Median(col(ov, func(s sample) float64 { return s.Lead }))
			r.OverlapSavedPaired = pairedMedian(r.StepTimes, r.OverlapStepTimes)
			r.CommSavedPaired = pairedMedian(col(sync, func(s sample) float64 { return s.Comm }), col(ov, func(s sample) float64 { return s.Comm }))
		}
		res = append(res, r)
	}
	return res
}

func steps(rows []sample) []float64 { return col(rows, func(s sample) float64 { return s.Step }) }

func col(rows []sample, f func(sample) float64) []float64 {
	out := make([]float64, len(rows))
	for i, s := range rows {
		out[i] = f(s)
	}
	return out
}

// pairedMedian is the median over pairs of a[i] - b[i] (a step and the one after it).
func pairedMedian(a, b []float64) float64 {
	d := make([]float64, min(len(a), len(b)))
	for i := range d {
		d[i] = a[i] - b[i]
	}
	return ringbench.Median(d)
}
