package train

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bertnode/bertnode/allreduce"
	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/shard"
)

// BenchmarkCodecLossCurves trains SST-2 (tiny, max length 64, 300 steps of 2 × 32
// sentences, lr 5e-4) as two data-parallel replicas, each on every other sentence,
// averaging gradients over a TCP ring with codec none, bf16, powersgd and none again,
// and logs per run the training loss (the replicas' mean, every 10 steps) averaged by
// quarter, and the eval loss and accuracy on GLUE's labelled dev set. The two codec
// none runs differ only by the order in which the replicas draw dropout from libtorch's
// shared generator: their difference is the noise the others are judged against.
// Needs the shared SST-2 data ($SHARED, default ../shared/data from the repository
// root); run with -benchtime 1x; about 6 minutes a run on 2 cores.
// BERTNODE_CURVE_STEPS changes the number of steps; BERTNODE_CURVE_RUNS the runs, a
// comma-separated list of codecs, powersgd optionally as powersgd/RANK/START_STEP
// (default: the job spec's defaults, api.ClusterSpec). PowerSGD folds to the model's
// hidden size (128 for tiny).
func BenchmarkCodecLossCurves(b *testing.B) {
	shared := os.Getenv("SHARED")
	if shared == "" {
		shared = "../shared/data"
	}
	if !filepath.IsAbs(shared) {
		shared = filepath.Join("..", shared) // the benchmark runs in train/
	}
	trainFile, evalFile := filepath.Join(shared, "sst2/train.tsv"), filepath.Join(shared, "sst2/test.tsv")
	data, err := os.ReadFile(trainFile)
	if err != nil {
		b.Skipf("no SST-2 data (set SHARED): %v", err)
	}
	steps := 300
	if s := os.Getenv("BERTNODE_CURVE_STEPS"); s != "" {
		if steps, err = strconv.Atoi(s); err != nil || steps < 40 {
			b.Fatalf("BERTNODE_CURVE_STEPS=%q: want a number of steps, at least 40", s)
		}
	}
	const n = 2
	lines := bytes.SplitAfter(data, []byte("\n"))
	header, lines := lines[0], lines[1:]
	dir := b.TempDir()
	shards := make([]string, n)
	for i := range shards {
		part := append([]byte(nil), header...)
		for j := i; j < len(lines); j += n {
			part = append(part, lines[j]...)
		}
		shards[i] = filepath.Join(dir, fmt.Sprintf("shard%d.tsv", i))
		if err := os.WriteFile(shards[i], part, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	runs := "none,bf16,powersgd,none"
	if s := os.Getenv("BERTNODE_CURVE_RUNS"); s != "" {
		runs = s
	}
	type run struct {
		name  string
		codec allreduce.Codec
		psgd  allreduce.PowerSGDParams
	}
	var plan []run
	def := api.ClusterSpec{}.WithDefaults()
	for _, name := range strings.Split(runs, ",") {
		f := strings.Split(name, "/")
		codec, err := allreduce.ParseCodec(f[0])
		if err != nil || len(f) > 3 || len(f) > 1 && codec != allreduce.CodecPowerSGD {
			b.Fatalf("BERTNODE_CURVE_RUNS: %q: want a codec, or powersgd/RANK/START_STEP", name)
		}
		ps := allreduce.PowerSGDParams{Rank: def.PowerSGDRank, StartStep: int64(def.PowerSGDStartStep), Cols: 128}
		if len(f) > 1 {
			ps.Rank, err = strconv.Atoi(f[1])
		}
		if len(f) > 2 && err == nil {
			ps.StartStep, err = strconv.ParseInt(f[2], 10, 64)
		}
		if err != nil {
			b.Fatalf("BERTNODE_CURVE_RUNS: %q: %v", name, err)
		}
		if codec == allreduce.CodecPowerSGD {
			name = fmt.Sprintf("powersgd (r=%d, from step %d)", ps.Rank, ps.StartStep)
		}
		plan = append(plan, run{name, codec, ps})
	}
	for b.Loop() {
		for k, run := range plan {
			codec := run.codec
			specs := make([]Spec, n)
			for i := range specs {
				s := Defaults()
				s.Train, s.Eval = shards[i], evalFile
				s.Data = shard.Spec{Format: "tsv", Text: "sentence", Label: "label"}
				s.Tokenizer = "../data/vocab/bert-base-uncased.vocab.txt"
				s.MaxLength, s.BatchSize, s.LR, s.MaxSteps, s.EvalEvery, s.Threads = 64, 32, 5e-4, steps, steps, 1
				s.Metric = "accuracy"
				s.Output = filepath.Join(dir, fmt.Sprintf("run%d-%s", k, codec), strconv.Itoa(i))
				specs[i] = s
			}
			start := time.Now()
			res := trainReplicasOverRing(b, specs, codec, run.psgd)
			if res[0].Final.Loss != res[1].Final.Loss {
				b.Errorf("%s: the replicas' eval losses differ: %v and %v", codec, res[0].Final.Loss, res[1].Final.Loss)
			}
			q := quarterLosses(b, specs, steps)
			// printed at once: b.Logf would hold every row until the last run ends
			fmt.Printf("%-30s train loss by quarter %.4f %.4f %.4f %.4f | eval loss %.4f accuracy %.4f | %v\n", run.name,
				q[0], q[1], q[2], q[3], res[0].Final.Loss, res[0].Final.Metrics["accuracy"], time.Since(start).Round(time.Second))
		}
	}
}

// trainReplicasOverRing trains one replica per spec, each on its own OS thread,
// averaging gradients over a loopback ring with codec; replicas are built one at a
// time (they share libtorch's generator) and none trains before all are built.
func trainReplicasOverRing(tb testing.TB, specs []Spec, codec allreduce.Codec, psgd allreduce.PowerSGDParams) []*Result {
	n := len(specs)
	lns := make([]allreduce.Listener, n)
	addrs := make([]string, n)
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		defer ln.Close()
		lns[i], addrs[i] = ln.(*net.TCPListener), ln.Addr().String()
	}
	var wg, built sync.WaitGroup
	var initMu sync.Mutex
	built.Add(n)
	errs := make([]error, n)
	res := make([]*Result, n)
	for i := range n {
		wg.Go(func() {
			runtime.LockOSThread()
			initMu.Lock()
			tr, err := Prepare(specs[i], io.Discard)
			initMu.Unlock()
			built.Done()
			built.Wait()
			if err != nil {
				errs[i] = err
				return
			}
			ring, err := allreduce.New(context.Background(), allreduce.Config{Peers: addrs, Rank: i, Generation: 1,
				Secret: []byte("replica-bench-secret-0123456789"), Listener: lns[i], Timeout: time.Minute, Codec: codec, PowerSGD: psgd})
			if err != nil {
				errs[i] = err
				return
			}
			defer ring.Close()
			tr.Sync = ringSync{ring}
			res[i], errs[i] = tr.Run(context.Background())
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			tb.Fatalf("%s: replica %d: %v", codec, i, err)
		}
	}
	return res
}

// quarterLosses reads the training loss the replicas logged every 10 steps and
// returns the mean over the replicas and over each quarter of the run.
func quarterLosses(tb testing.TB, specs []Spec, steps int) [4]float64 {
	var sum [4]float64
	var count [4]int
	for _, s := range specs {
		f, err := os.Open(filepath.Join(s.Output, "metrics.jsonl"))
		if err != nil {
			tb.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var m struct {
				Step int      `json:"step"`
				Loss *float64 `json:"loss"`
				LR   *float64 `json:"lr"`
			}
			if json.Unmarshal(sc.Bytes(), &m) == nil && m.Loss != nil && m.LR != nil && m.Step > 0 {
				q := min(4*(m.Step-1)/steps, 3)
				sum[q] += *m.Loss
				count[q]++
			}
		}
		f.Close()
	}
	for q := range sum {
		sum[q] /= float64(max(count[q], 1))
	}
	return sum
}
