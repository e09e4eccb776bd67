package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bertnode/bertnode/serve"
	"github.com/bertnode/bertnode/serve/loadtest"
	"github.com/bertnode/bertnode/train"
)

func init() {
	benchSubcommands = append(benchSubcommands, newBenchServeCmd)
}

func newBenchServeCmd() *cobra.Command {
	var (
		o            loadtest.BenchOptions
		texts, conc  string
		clientsApart bool
	)
	s := train.Defaults()
	s.Model, s.Threads = "tiny", 1 // as bertnode serve
	o.Batch = serve.DefaultOptions().Batch
	c := &cobra.Command{
		Use:   "serve",
		Short: "Load-test bertnode serve with batching off and on, next to the model's raw forward",
		Long: `Serves a classify model on loopback (a checkpoint directory, or a random-init preset:
tiny, mini, small, base) twice, with batching off (--max-batch 1) and on, and loads
/v1/classify from closed-loop clients in another process (bench load; one --texts text
per request) at each --concurrency: --warmup uncounted, then --duration measured. Prints requests per
second, p50 and p99 latency and the mean batch; then replays the batches the batched
server ran at the highest concurrency through the model in-process (the raw forward on
the same batch shapes), and the unbatched server's sequences one by one, and states the
serving goals as measured ratios: batched over unbatched throughput (and p99), and the
server's throughput over the raw forward's. The raw forward's own batched over one-by-one
throughput is what batching could give were serving free. With more than one instance
it replays both again on one instance (each for --duration at most): how the instances
scale batched and one by one. At the highest concurrency it also loads a bare net/http
server that sends back a stored answer: the CPU a request costs before any handler of
bertnode's. With one thread per instance on a CPU it splits the server's CPU time per
request: the batches on the instances' threads (next to the same batches replayed
alone), the rest, and the bare server's.`,
		Example: `  bertnode bench serve --model tiny --concurrency 1,4,16,64
  bertnode bench serve --model base --concurrency 1,8,32 --duration 20s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			runtime.LockOSThread() // libtorch's per-thread state (see package model)
			serveGC()
			for _, f := range strings.Split(conc, ",") {
				n, err := strconv.Atoi(strings.TrimSpace(f))
				if err != nil || n < 1 {
					return fmt.Errorf("--concurrency: %q is not a client count", f)
				}
				o.Concurrency = append(o.Concurrency, n)
			}
			var err error
			if o.Texts, err = loadtest.Texts(texts); err != nil {
				return err
			}
			if st, err := os.Stat(s.Model); err != nil || !st.IsDir() {
				tmp, err := os.MkdirTemp("", "bertnode-bench-serve-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(tmp)
				fmt.Fprintf(cmd.ErrOrStderr(), "writing a random-init %s classify checkpoint into %s\n", s.Model, tmp)
				if s.Model, err = loadtest.Checkpoint(s.Model, texts, tmp, s.MaxLength); err != nil {
					return err
				}
			}
			if o.Trainer, err = train.ForEval(s, cmd.ErrOrStderr()); err != nil {
				return err
			}
			so := serve.Options{Batch: o.Batch}
			resolveInstances(&so, o.Trainer)
			o.Batch = so.Batch
			if o.CPUProfile != "" {
				o.CPUProfile, _ = filepath.Abs(o.CPUProfile)
			}
			if clientsApart {
				exe, err := os.Executable()
				if err != nil {
					return err
				}
				o.Clients = []string{exe, "bench", "load"}
			}
			return loadtest.Bench(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := c.Flags()
	f.StringVar(&s.Model, "model", s.Model, "classify checkpoint directory; else a model train takes (a preset: tiny, mini, small, base) to write a checkpoint of, its head random")
	f.StringVar(&texts, "texts", "data/sms_spam/SMSSpamCollection", "labeltext file whose texts the clients send (and whose labels a preset's checkpoint gets)")
	f.StringVar(&conc, "concurrency", "1,4,16,64", "client counts, comma-separated")
	f.DurationVar(&o.Warmup, "warmup", time.Second, "per load: requests sent before measuring")
	f.DurationVar(&o.Duration, "duration", 5*time.Second, "per load: time measured")
	f.IntVar(&o.Rounds, "rounds", 1, "loads per client count and mode, alternating off and on; the goals take the median")
	f.IntVar(&o.Batch.MaxBatch, "max-batch", o.Batch.MaxBatch, "sequences per batch with batching on")
	f.IntVar(&o.Batch.MaxTokens, "max-batch-tokens", o.Batch.MaxTokens, "padded tokens per batch")
	f.DurationVar(&o.Batch.MaxWait, "max-wait", o.Batch.MaxWait, "how long a sequence may wait for a fuller batch while the model is idle")
	f.Float64Var(&o.Batch.MinFill, "min-fill", o.Batch.MinFill, "smallest share of a batch's padded tokens that must be real tokens (0: no bound)")
	f.IntVar(&o.Batch.Instances, "instances", 0, "batches run at once, each on its own thread and --threads cores (0: one per --threads cores on a CPU, one on a GPU); the raw forward runs as many")
	f.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of the batched server at the highest concurrency")
	f.BoolVar(&clientsApart, "clients-apart", true, "run the clients in another process (bench load), so that req/CPU-s counts the server's CPU alone")
	addSpecFlags(f, &s, "max-length", "threads", "device", "mixed-precision", "quantize")
	return c
}
