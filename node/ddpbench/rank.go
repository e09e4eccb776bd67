package ddpbench

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/bertnode/bertnode/allreduce"
	"github.com/bertnode/bertnode/allreduce/ringbench"
	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/data"
	"github.com/bertnode/bertnode/node"
	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/train"
)

// runRank is one rank: the ring, then per config a replica trained as the script
// trains its DDP model: Warmup node steps, then Steps timed ones, the first NoSync of
// them each followed by a timed compute-only step (and, with Overlap, an overlapped
// node step).
// The goroutine stays on one OS thread, libtorch's rule.
func runRank(ctx context.Context, spec rankSpec, ln *net.TCPListener, out io.Writer) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	o := spec.Options
	ring, err := allreduce.New(ctx, allreduce.Config{Peers: spec.Peers, Rank: spec.Rank, Secret: spec.Secret,
		Listener: ln, Codec: o.Codec, Timeout: o.Timeout, NoSharedMemory: o.TCP})
	if err != nil {
		return err
	}
	defer ring.Close()
	stop, err := ringbench.Profile(o.CPUProfile, spec.Rank)
	if err != nil {
		return err
	}
	defer stop()
	var lines []line
	for _, name := range o.Configs {
		ls, err := runConfig(ctx, ring, o, name)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		lines = append(lines, ls...)
	}
	enc := json.NewEncoder(out) // after the last step: no output while timing
	for _, l := range lines {
		if err := enc.Encode(l); err != nil {
			return err
		}
	}
	return nil
}

// stepper runs one replica's steps on a ring.
type stepper struct {
	ctx     context.Context
	ring    *allreduce.Ring
	rep     node.Replica
	recs    []shard.Record
	weight  float64 // this rank's share of the global batch, as the node passes it
	applied int64   // optimizer steps taken
}

func runConfig(ctx context.Context, ring *allreduce.Ring, o Options, name string) ([]line, error) {
	rep, err := newReplica(o, name)
	if err != nil {
		return nil, err
	}
	defer rep.Close()
	rank := ring.Rank()
	s := &stepper{ctx: ctx, ring: ring, rep: rep, recs: Records(o.Batch, o.Seq, rank), weight: 1 / float64(ring.Size())}
	// Line the ranks up: building a model takes each its own time.
	if err := ring.AllReduce(ctx, make([]float32, 1), allreduce.OpSum); err != nil {
		return nil, err
	}
	for i := range o.Warmup {
		kind := kindSync
		if o.Overlap && i%2 == 1 {
			kind = kindOverlap // the checksum below then shows both kinds reach the same weights
		}
		if _, err := s.step(kind); err != nil {
			return nil, err
		}
	}
	weights := rep.State()[0]
	info := configInfo{Config: name, Rank: rank, Params: len(weights), Trainable: len(rep.Grad()), Transport: ring.Stats().Transport}
	if o.Warmup > 0 {
		info.Weights = checksum(weights)
	}
	if o.NoSync > 0 {
		if _, err := s.step(kindNoSync); err != nil {
			return nil, err
		}
	}
	if o.Overlap {
		if _, err := s.step(kindOverlap); err != nil {
			return nil, err
		}
	}
	var lines []line
	run := func(kind string, i int) error {
		smp, err := s.step(kind)
		if err != nil {
			return err
		}
		smp.Config, smp.Rank, smp.Iter = name, rank, i
		lines = append(lines, line{Step: &smp})
		return nil
	}
	for i := range o.Steps {
		if err := run(kindSync, i); err != nil {
			return nil, err
		}
		if i < o.NoSync {
			if err := run(kindNoSync, i); err != nil {
				return nil, err
			}
		}
		if o.Overlap {
			if err := run(kindOverlap, i); err != nil {
				return nil, err
			}
		}
	}
	// The ranks leave the config together: no rank's next model build is timed against
	// a neighbour still stepping.
	if err := ring.AllReduce(ctx, make([]float32, 1), allreduce.OpSum); err != nil {
		return nil, err
	}
	return append(lines, line{Config: &info}), nil
}

// step runs one step of the kind and times its phases.
//
// sync is node/session.go's step with the all-reduce after backward (Config.NoOverlap):
// ZeroGrad, Backward of the rank's piece at its share of the global batch with the
// step's seed, the gradient all-reduce (sum), the commit round (3+n values), Apply.
// overlap is the node's default step, the all-reduce started before backward and fed
// the gradient's prefixes as backward finishes them. nosync leaves out the two
// all-reduces.
func (s *stepper) step(kind string) (sample, error) {
	n, r := s.ring.Size(), s.rep
	t0, cpu0 := time.Now(), ringbench.CPUTime()
	var t1 time.Time
	var cpu1 time.Duration
	mark := func() { t1, cpu1 = time.Now(), ringbench.CPUTime() }
	r.ZeroGrad()
	stepSeed := api.StepSeed(seed, s.applied, s.ring.Rank())
	var gs node.GradStats
	var err error
	if kind == kindNoSync {
		gs.Loss, err = r.Backward(s.recs, s.weight, stepSeed)
		mark()
	} else {
		gs, err = node.BackwardAllReduce(s.ctx, s.ring, r, s.recs, s.weight, stepSeed, kind == kindOverlap, mark)
	}
	if err != nil {
		return sample{}, err
	}
	if kind != kindNoSync {
		c := make([]float32, 3+n)
		c[0], c[1], c[2] = 1, float32(gs.Loss*s.weight), float32(len(s.recs))
		c[3+s.ring.Rank()] = float32(t1.Sub(t0).Seconds() * 1000)
		if err := s.ring.AllReduce(s.ctx, c, allreduce.OpSum); err != nil {
			return sample{}, err
		}
	}
	t2, cpu2 := time.Now(), ringbench.CPUTime()
	if _, err := r.Apply(s.applied, 1); err != nil {
		return sample{}, err
	}
	s.applied++
	t3, cpu3 := time.Now(), ringbench.CPUTime()
	smp := sample{Kind: kind, Step: t3.Sub(t0).Seconds(), Compute: t1.Sub(t0).Seconds(), Comm: t2.Sub(t1).Seconds(),
		Opt: t3.Sub(t2).Seconds(), CPU: (cpu3 - cpu0).Seconds(), ComputeCPU: (cpu1 - cpu0).Seconds(), CommCPU: (cpu2 - cpu1).Seconds(),
		OptCPU: (cpu3 - cpu2).Seconds(), Loss: gs.Loss, Lead: gs.Lead.Seconds()}
	if gs.Sent > 0 {
		smp.Early = float64(gs.SentEarly) / float64(gs.Sent)
	}
	return smp, nil
}

// newReplica is the cluster node's BERT replica for a preset, trained as the script
// trains its model: classification of 2 labels, sequences of o.Seq tokens, AdamW at
// lr 2e-5 with weight decay 0.01 (constant), clipping at 1 (the script does not clip),
// the same seed (so the same weights) on every rank.
func newReplica(o Options, preset string) (node.Replica, error) {
	spec := train.Defaults()
	spec.Task, spec.Model, spec.MaxLength, spec.Padding = "classify", preset, o.Seq, "max_length"
	spec.BatchSize, spec.LR, spec.WarmupRatio, spec.WeightDecay, spec.Schedule = o.Batch, 2e-5, 0, 0.01, "constant"
	spec.ClipNorm, spec.Seed, spec.Threads, spec.Device = 1, seed, o.Threads, "cpu"
	spec.Train = "(random batch)" // never read: the records are Records'
	spec.Output = os.TempDir()    // never written: the bench saves nothing
	total := int64(o.Warmup + 3*o.Steps + 2)
	return train.NewReplica(spec, []string{"0", "1"}, nil, total, io.Discard)
}

// seed is the job's seed: the same initial weights on every rank.
const seed = 0

var plainWord = regexp.MustCompile(`^[a-z]{2,}$`)

// Records is the fixed random batch of a rank: batch records of seq-2 words drawn
// from the uncased vocabulary's plain words, each one token, so that every sequence
// is [CLS], seq-2 tokens, [SEP]: seq tokens, no padding, one segment (the script's
// batch: random ids, token types 0, no mask), and random labels 0 or 1. Ranks draw
// different batches.
func Records(batch, seq, rank int) []shard.Record {
	var words []string
	for _, w := range data.UncasedVocab() {
		if plainWord.MatchString(w) {
			words = append(words, w)
		}
	}
	rng := rand.New(rand.NewPCG(1000, uint64(rank)))
	recs := make([]shard.Record, batch)
	for i := range recs {
		var b strings.Builder
		for j := range seq - 2 {
			if j > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(words[rng.IntN(len(words))])
		}
		recs[i] = shard.Record{ID: strconv.Itoa(i), Text: b.String(), Labels: []string{strconv.Itoa(rng.IntN(2))}}
	}
	return recs
}

func checksum(v []float32) uint32 {
	return crc32.ChecksumIEEE(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v)))
}
