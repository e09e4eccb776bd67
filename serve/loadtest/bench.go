package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/bertnode/bertnode/serve"
	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/tokenize"
	"github.com/bertnode/bertnode/train"
)

// BenchOptions are one side-by-side measurement of a model's server.
type BenchOptions struct {
	Trainer     *train.Trainer // the checkpoint, as train.ForEval loads it
	Texts       []string       // one per request, taken in turn
	Concurrency []int          // client counts, in order
	Warmup      time.Duration  // per load, not counted
	Duration    time.Duration  // per load, measured
	Rounds      int            // loads per mode and client count, alternating the modes
	Batch       serve.BatchConfig
	// CPUProfile, when set, profiles the batched server at the highest concurrency.
	CPUProfile string
	// Clients, when set, is the command line of a process to run the clients in (see
	// RunIn), so that the CPU time measured is the server's alone; else they run here.
	Clients []string
}

// Bench serves the model on loopback with batching off (MaxBatch 1) and on, in turn at
// each client count, and loads /v1/classify; at the highest count it replays the
// batches the batched server ran through the model in-process right after each load.
// It prints the loads and the ratios the serving goals are stated in, each taken from
// loads next to each other in time (the median over the rounds): batched over
// unbatched throughput (and p99), and the server's throughput over the raw forward's
// on the same batches.
func Bench(ctx context.Context, o BenchOptions, out io.Writer) error {
	if len(o.Concurrency) == 0 || len(o.Texts) == 0 || o.Rounds < 1 {
		return fmt.Errorf("bench: want concurrency levels, texts and rounds")
	}
	bodies, err := ClassifyBodies(o.Texts)
	if err != nil {
		return err
	}
	tokens := 0
	for _, t := range o.Texts {
		enc, err := o.Trainer.Tok.Encode(t, o.Trainer.Spec.MaxLength)
		if err != nil {
			return err
		}
		tokens += enc.Len()
	}
	sp := o.Trainer.Spec
	device := sp.Device
	if sp.Quantize != "" {
		device += ", encoder in " + sp.Quantize
	}
	fmt.Fprintf(out, "serve bench: %s (%s, %s), %d texts of %.1f tokens on average (max length %d), one per request, %d model instances of %d libtorch threads on %s; batching on: max batch %d, max batch tokens %d, max wait %v, min fill %v\n",
		sp.Model, sp.Task, o.Trainer.Model.Params, len(o.Texts), float64(tokens)/float64(len(o.Texts)), sp.MaxLength, max(o.Batch.Instances, 1), sp.Threads, device,
		o.Batch.MaxBatch, o.Batch.MaxTokens, o.Batch.MaxWait, o.Batch.MinFill)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "clients\tbatching\treq/s\tp50 ms\tp99 ms\tmean batch\tfill\tmodel busy\treq/CPU-s\tclients' cores\terrors\t")
	rec := &recorder{inner: serve.RunnerFunc(o.Trainer.InferBatch)}
	var speedups, cpuSpeedups, p99s, shares, cpuShares, ceilings []float64
	var batchedScale, oneScale []float64 // the instances' raw forward over one instance's
	type rawRow struct {
		name string
		raw  rawForward
	}
	var serverCores, rawCores, clientCores []float64 // at the top, batched: CPU seconds per second
	// At the top, batched, in µs of CPU per request (one sequence each): the server's, its
	// instances' threads' inside the batches, and the replay's on its threads.
	var serverCPU, modelCPU, rawCPU []float64
	var bareCPU []float64 // net/http's floor, in µs of CPU per request, at the top
	var answer []byte     // a real answer to bodies[0], which the bare server sends back
	load := func(lo Options) (Result, error) {
		if len(o.Clients) > 0 {
			return RunIn(ctx, o.Clients, lo)
		}
		return Run(ctx, lo)
	}
	for i, c := range o.Concurrency {
		top := i == len(o.Concurrency)-1
		var ratios []float64
		for round := range o.Rounds {
			var res [2]Result
			var single [][]*tokenize.Encoding // the unbatched server's, at the top
			for k, on := range []bool{false, true} {
				cfg := o.Batch
				if !on {
					cfg.MaxBatch = 1
				}
				if on {
					single = rec.kept
				}
				rec.reset(top)
				err := serveWhile(ctx, o.Trainer, cfg, rec, func(url string) error {
					if top && on && answer == nil {
						a, err := postOnce(url+"/v1/classify", bodies[0])
						if err != nil {
							return err
						}
						answer = a
					}
					stop, err := profile(top && on && round == 0, o.CPUProfile)
					if err != nil {
						return err
					}
					defer stop()
					res[k], err = load(Options{URL: url + "/v1/classify", Bodies: bodies, Concurrency: c, Warmup: o.Warmup, Duration: o.Duration})
					return err
				})
				if err != nil {
					return err
				}
				r := res[k]
				fmt.Fprintf(tw, "%d\t%s\t%.1f\t%.1f\t%.1f\t%.1f\t%.2f\t%.0f%%\t%.1f\t%s\t%d\t%s\n", c, map[bool]string{false: "off", true: "on"}[on],
					r.Throughput, ms(r.P50), ms(r.P99), rec.meanBatch(), rec.fill(), 100*rec.busy(), r.PerCPUSecond(), r.clientCores(o.Duration), r.Errors, r.FirstError)
			}
			ratios = append(ratios, res[1].Throughput/res[0].Throughput)
			if !top {
				continue
			}
			speedups = append(speedups, res[1].Throughput/res[0].Throughput)
			cpuSpeedups = append(cpuSpeedups, res[1].PerCPUSecond()/res[0].PerCPUSecond())
			p99s = append(p99s, float64(res[1].P99)/float64(res[0].P99))
			raw, err := replay(o.Trainer, rec.kept, max(o.Batch.Instances, 1), 0)
			if err != nil {
				return err
			}
			// The unbatched server's sequences one at a time, for as long as a load
			// lasts at most: what batching could give with serving free of cost.
			one, err := replay(o.Trainer, single, max(o.Batch.Instances, 1), o.Duration)
			if err != nil {
				return err
			}
			rows := []rawRow{{"raw forward", raw}, {"raw, one by one", one}}
			// The same on one instance: how the instances scale, batched and one by one.
			if o.Batch.Instances > 1 {
				raw1, err := replay(o.Trainer, rec.kept, 1, o.Duration)
				if err != nil {
					return err
				}
				one1, err := replay(o.Trainer, single, 1, o.Duration)
				if err != nil {
					return err
				}
				rows = append(rows, rawRow{"raw forward, 1 instance", raw1}, rawRow{"raw, one by one, 1 inst.", one1})
				batchedScale = append(batchedScale, raw.perSecond/raw1.perSecond)
				oneScale = append(oneScale, one.perSecond/one1.perSecond)
			}
			for _, r := range rows {
				fmt.Fprintf(tw, "%d\t%s\t%.1f\t\t\t%s\t\t\t%.1f\t\t\t\n", c, r.name, r.raw.perSecond, r.raw.shape, r.raw.perCPUSecond)
			}
			// net/http alone, answering the same clients a stored answer: the part of a
			// request's cost no handler of ours can remove. Short: it is not the model.
			lo := Options{Bodies: bodies, Concurrency: c, Warmup: min(o.Warmup, time.Second), Duration: min(o.Duration, 5*time.Second)}
			bare, err := bareLoad(ctx, answer, func(url string) (Result, error) {
				lo.URL = url
				return load(lo)
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(tw, "%d\t%s\t%.1f\t%.1f\t%.1f\t\t\t\t%.1f\t%s\t%d\t%s\n", c, "bare net/http", bare.Throughput, ms(bare.P50), ms(bare.P99),
				bare.PerCPUSecond(), bare.clientCores(lo.Duration), bare.Errors, bare.FirstError)
			bareCPU = append(bareCPU, 1e6/bare.PerCPUSecond())
			shares = append(shares, res[1].Throughput/raw.perSecond)
			cpuShares = append(cpuShares, res[1].PerCPUSecond()/raw.perCPUSecond)
			ceilings = append(ceilings, raw.perSecond/one.perSecond)
			serverCores = append(serverCores, res[1].Throughput/res[1].PerCPUSecond())
			rawCores = append(rawCores, raw.perSecond/raw.perCPUSecond)
			clientCores = append(clientCores, res[1].ClientCPU.Seconds()/o.Duration.Seconds())
			serverCPU = append(serverCPU, 1e6/res[1].PerCPUSecond())
			modelCPU = append(modelCPU, float64(rec.cpuPerSeq().Microseconds()))
			rawCPU = append(rawCPU, float64(raw.cpuPerSeq.Microseconds()))
		}
		fmt.Fprintf(tw, "%d\ton/off\t%.2fx\t\t\t\t\t\t\t\t\t\n", c, median(ratios))
	}
	tw.Flush()
	top := o.Concurrency[len(o.Concurrency)-1]
	speedup, p99, share, cpuShare := median(speedups), median(p99s), median(shares), median(cpuShares)
	fmt.Fprintf(out, "goal 1, at %d clients: batching gives %.2fx the unbatched throughput, at %.2fx its p99 (goal: >= 3x at equal or better p99): %s; "+
		"per CPU second: %.2fx; the raw forward itself runs %.2fx faster on the batched shapes than one by one (what batching would gain were serving free)\n",
		top, speedup, p99, met(speedup >= 3 && p99 <= 1), median(cpuSpeedups), median(ceilings))
	if len(batchedScale) > 0 {
		fmt.Fprintf(out, "  %d instances run the batched shapes %.2fx as fast as one, and one by one %.2fx\n",
			o.Batch.Instances, median(batchedScale), median(oneScale))
	}
	whose := "the clients' own cost included"
	if len(o.Clients) > 0 {
		whose = "the server's alone: the clients ran in another process"
	}
	fmt.Fprintf(out, "goal 2, at %d clients: the server delivers %.0f%% of the raw forward's throughput on the same batches (goal: >= 80%%): %s; "+
		"per CPU second (%s; other load on the machine left out): %.0f%%; cores used: the server %.2f, its clients %.2f, the raw forward %.2f, of %d\n",
		top, 100*share, met(share >= 0.8), whose, 100*cpuShare, median(serverCores), median(clientCores), median(rawCores), runtime.NumCPU())
	// With more threads an instance's ops run partly on libtorch's pool, which a thread's
	// clock misses; on a GPU its clock counts the launching, not the forward.
	if sp.Threads == 1 && !o.Trainer.Model.Opts.Device.IsCuda() {
		srv, model := median(serverCPU), median(modelCPU)
		who := "the server"
		if len(o.Clients) == 0 {
			who = "the server and its clients"
		}
		fmt.Fprintf(out, "  CPU per request: %s %.0f µs, of which the batches on the instances' threads %.0f µs (replayed alone: %.0f µs) and the rest %.0f µs (HTTP, JSON, tokenizing, queueing, the Go runtime); "+
			"a bare net/http handler sending a stored answer to the same clients: %.0f µs\n",
			who, srv, model, median(rawCPU), srv-model, median(bareCPU))
	}
	return nil
}

// median of xs (the mean of the middle two for an even count).
func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	if n == 0 {
		return 0
	}
	return (s[(n-1)/2] + s[n/2]) / 2
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// serveWhile serves t's model on a loopback port while fn loads it, its threads but the
// instances' in the background as `bertnode serve` runs them (serve.BackgroundThreads).
// Then every thread returns to the default policy, for the replays: the model alone.
func serveWhile(ctx context.Context, t *train.Trainer, cfg serve.BatchConfig, r serve.Runner, fn func(url string) error) (err error) {
	if err := serve.BackgroundThreads(); err != nil {
		return err
	}
	defer func() { err = errors.Join(err, serve.DefaultThreads()) }()
	opts := serve.DefaultOptions()
	opts.Batch, opts.Runner, opts.Log = cfg, r, log.New(io.Discard, "", 0)
	opts.Timeout = time.Hour // measure the latency, whatever it is
	opts.Batch.MaxQueue = max(opts.Batch.MaxQueue, cfg.MaxBatch)
	srv, err := serve.New(t, opts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx, ln, time.Minute) }()
	err = fn("http://" + ln.Addr().String())
	stop()
	return errors.Join(err, <-served)
}

// postOnce is the body of url's 200 answer to body.
func postOnce(url string, body []byte) ([]byte, error) {
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s: %.200s", url, resp.Status, b)
	}
	return b, err
}

// bareLoad serves answer to every POST on a loopback port, with nothing else than
// net/http reading the request, while load loads it.
func bareLoad(ctx context.Context, answer []byte, load func(url string) (Result, error)) (Result, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Result{}, err
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(answer)
	})}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	res, err := load("http://" + ln.Addr().String() + "/v1/classify")
	hs.Shutdown(ctx)
	if e := <-served; e != http.ErrServerClosed {
		err = errors.Join(err, e)
	}
	return res, err
}

// profile starts a CPU profile into path when on and path is set; stop ends it.
func profile(on bool, path string) (stop func(), err error) {
	if !on || path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// recorder counts the batches a server runs and keeps them when asked, for the replay.
type recorder struct {
	inner serve.Runner

	mu      sync.Mutex
	keep    bool
	kept    [][]*tokenize.Encoding
	batches int
	seqs    int
	tokens  int // real
	padded  int
	running time.Duration // in Run
	cpu     time.Duration // the threads' CPU time in Run
	first   time.Time     // the first Run's start
	last    time.Time     // the latest Run's end
}

func (r *recorder) Run(seqs []*tokenize.Encoding) ([][]float32, error) {
	r.mu.Lock()
	r.batches++
	r.seqs += len(seqs)
	longest := 0
	for _, e := range seqs {
		longest = max(longest, e.Len())
		r.tokens += e.Len()
	}
	r.padded += longest * len(seqs)
	if r.keep {
		r.kept = append(r.kept, slices.Clone(seqs))
	}
	r.mu.Unlock()
	start, cpu := time.Now(), ThreadCPU() // the batcher runs each batch on one locked thread
	out, err := r.inner.Run(seqs)
	end := time.Now()
	cpu = ThreadCPU() - cpu
	r.mu.Lock()
	if r.first.IsZero() {
		r.first = start
	}
	r.last = end
	r.running += end.Sub(start)
	r.cpu += cpu
	r.mu.Unlock()
	return out, err
}

// busy is the share of the time from the first batch's start to the last one's end that
// the model was running a batch.
func (r *recorder) busy() float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.running.Seconds() / max(r.last.Sub(r.first).Seconds(), 1e-9)
}

// cpuPerSeq is the CPU time the batches took on their threads, per sequence.
func (r *recorder) cpuPerSeq() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cpu / time.Duration(max(r.seqs, 1))
}

// reset zeroes the counts; keep says whether to keep the batches from now on.
func (r *recorder) reset(keep bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keep, r.batches, r.seqs, r.tokens, r.padded = keep, 0, 0, 0, 0
	r.running, r.cpu, r.first, r.last = 0, 0, time.Time{}, time.Time{}
	if keep {
		r.kept = nil
	}
}

// fill is the share of real tokens in the padded batches.
func (r *recorder) fill() float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return float64(r.tokens) / float64(max(r.padded, 1))
}

func (r *recorder) meanBatch() float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return float64(r.seqs) / float64(max(r.batches, 1))
}

// rawForward is the replay's throughput, by wall clock and by CPU time.
type rawForward struct {
	perSecond, perCPUSecond float64
	cpuPerSeq               time.Duration // on the instances' threads
	shape                   string        // the batches' mean
}

// replay runs batches through the model in-process on instances goroutines locked to
// their threads, each taking the next batch when it is free, as the server's instances
// do (dealing them in turn would hand one goroutine every larger batch where sizes
// alternate). With limit above zero, no batch starts once limit has passed.
func replay(t *train.Trainer, batches [][]*tokenize.Encoding, instances int, limit time.Duration) (rawForward, error) {
	if len(batches) == 0 {
		return rawForward{}, fmt.Errorf("bench: the server ran no batch")
	}
	errs := make(chan error, instances)
	var (
		next      atomic.Int64 // the next batch to take; those below it ran
		threadCPU atomic.Int64 // the instances', summed as they end
	)
	start, cpu := time.Now(), CPUTime()
	for range instances {
		go func() {
			runtime.LockOSThread()
			from := ThreadCPU()
			err := func() error {
				for limit <= 0 || time.Since(start) < limit {
					k := int(next.Add(1) - 1)
					if k >= len(batches) {
						break
					}
					if _, err := t.InferBatch(batches[k]); err != nil {
						return err
					}
				}
				return nil
			}()
			threadCPU.Add(int64(ThreadCPU() - from))
			errs <- err
		}()
	}
	var err error
	for range instances {
		err = errors.Join(err, <-errs)
	}
	took, cpuTook := time.Since(start), CPUTime()-cpu
	if err != nil {
		return rawForward{}, err
	}
	done := batches[:min(int(next.Load()), len(batches))]
	seqs, padded := 0, 0
	for _, b := range done {
		longest := 0
		for _, e := range b {
			longest = max(longest, e.Len())
		}
		seqs += len(b)
		padded += longest * len(b)
	}
	return rawForward{
		perSecond:    float64(seqs) / took.Seconds(),
		perCPUSecond: float64(seqs) / cpuTook.Seconds(),
		cpuPerSeq:    time.Duration(threadCPU.Load()) / time.Duration(max(seqs, 1)),
		shape:        fmt.Sprintf("mean %.1f sequences x %.1f tokens", float64(seqs)/float64(len(done)), float64(padded)/float64(seqs)),
	}, nil
}

// ClassifyBodies makes a /v1/classify request body of each text.
func ClassifyBodies(texts []string) ([][]byte, error) {
	out := make([][]byte, len(texts))
	for i, t := range texts {
		var err error
		if out[i], err = json.Marshal(map[string][]string{"texts": {t}}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Checkpoint writes a random-init classify checkpoint of a preset (tiny, mini, small,
// base) with the labels of a labeltext file into dir/ckpt and returns its path: what
// serving costs does not depend on what the weights learnt. Call it from a goroutine
// locked to its thread (see package model).
func Checkpoint(preset, labeltext, dir string, maxLen int) (string, error) {
	s := train.Defaults()
	s.Task, s.Model, s.Train, s.Data, s.MaxLength, s.Output = "classify", preset, labeltext, shard.Spec{Format: shard.LabelText}, maxLen, dir
	t, err := train.Prepare(s, io.Discard)
	if err != nil {
		return "", err
	}
	ckpt := filepath.Join(dir, "ckpt")
	return ckpt, t.Save(ckpt)
}

// Texts reads the texts of a labeltext file.
func Texts(labeltext string) ([]string, error) {
	r, err := shard.OpenFile(shard.Spec{Format: shard.LabelText}, labeltext)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var texts []string
	for {
		var rec shard.Record
		if err := r.Next(&rec); errors.Is(err, io.EOF) {
			return texts, nil
		} else if err != nil {
			return nil, err
		}
		texts = append(texts, rec.Text)
	}
}
