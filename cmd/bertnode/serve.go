package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/bertnode/bertnode/internal/nativeenv"
	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/serve"
	"github.com/bertnode/bertnode/train"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func init() { subcommands = append(subcommands, newServeCmd) }

func newServeCmd() *cobra.Command {
	var (
		addr, job, kind string
		grace           time.Duration
		cf              *clusterFlags
	)
	s := train.Defaults()
	// One thread per model instance and an instance per core: the most served under
	// load (see resolveInstances). --instances 1 --threads N answers a lone request sooner.
	s.Model, s.Threads = "", 1
	o := serve.DefaultOptions()
	c := &cobra.Command{
		Use:   "serve --model DIR | --job JOB [--addr :8080]",
		Short: "Serve a fine-tuned checkpoint over HTTP, batching concurrent requests",
		Long: `Serves a checkpoint that bertnode train wrote (or a fine-tuned Hugging Face BERT with
a head) as JSON over HTTP. The routes depend on the checkpoint's task; each answers
what predict prints for the same input.

  POST /v1/classify   {"texts": [...], "top_k": 2, "threshold": 0.5}   classify, multilabel
       -> {"predictions": [{"text", "label", "labels", "probs", "top": [{"label", "prob"}]}]}
                      {"texts": [...]}                                  regression
       -> {"predictions": [{"text", "score"}]}  ("scores" for a model with several outputs)
  POST /v1/rerank     {"query", "texts": [...], "top_n", "return_text", "raw_scores"}
                      regression with one output (cross-encoders), classify with two labels
       -> {"results": [{"index", "score", "text"}]}  highest score first
  POST /v1/ner        {"texts": [...]}                                  ner
       -> {"predictions": [{"text", "words", "tags", "entities", "confidence"}]}
  POST /v1/qa         {"question", "context", "id"} or {"questions": [...]}, "allow_empty"  qa
       -> {"answers": [{"id", "answer", "start", "end", "score"}]}
  POST /v1/fill-mask  {"texts": [...], "top_k": 5}                         mlm
       -> {"predictions": [{"text", "masks": [[{"score", "token", "token_str", "sequence"}]]}]}
  POST /v1/choice     {"text", "choices": [...]} or {"questions": [...]}       choice
       -> {"answers": [{"text", "choice", "index", "probs"}]}
  POST /v1/attention  {"text"}   -> {"tokens", "attentions": [layer][head][from][to]}
  POST /v1/embed      {"texts": [...], "normalize": true}               embed
       -> {"embeddings": [[...], ...]}
  POST /v1/embeddings {"input": "..." or [...], "model", "encoding_format", "dimensions"}
       -> OpenAI's embeddings answer (unit-length vectors; float or base64)      embed
  POST /v1/similarity {"source", "texts": [...]}  -> {"scores": [...]} (cosine)        embed
  POST /v1/tokenize   {"texts": [...]}  -> {"tokens": [[{"id", "token", "start", "end", "special"}]]}
  GET  /v1/model  /healthz  /readyz  /metrics (Prometheus)

An embedding model is a bare base model's checkpoint (config.json's architectures
BertModel, ModernBertModel...; sentence-transformers models such as all-MiniLM-L6-v2,
whose 1_Pooling/config.json gives the pooling and a Normalize module unit-length
vectors), or any checkpoint served with --pooling cls|mean|max, which reads its encoder
and leaves its head.

Requests are tokenized on their own goroutines; their sequences wait in one queue and
run together on the model: the oldest waiting sequence with those closest to it in
length, up to --max-batch sequences and --max-batch-tokens padded tokens. With
--max-wait 0 a batch runs as soon as the model is free, so batches grow with the load;
a positive --max-wait lets a lone sequence wait that long for company. On a CPU,
--instances batches run at once (default: one per --threads cores, so one per core),
each on its own thread, sharing the weights: more served under load than one instance
of all the cores, whose threads wait for each other inside every op; a lone request is
answered sooner by --instances 1 --threads N. On Linux the server's other threads run
under SCHED_BATCH (same CPU share), so that a request's arrival does not preempt an
instance mid-op.

--quantize int8 runs the encoder's dense layers in int8 on a CPU (dynamic quantization,
as PyTorch's quantize_dynamic, weights per channel; no calibration data): a base-sized
model answers 2-3 times the requests. On the SMS models tried, eval's metrics came
out the same to four decimals; check a model's own with bertnode eval --quantize int8.

A text longer than --max-length tokens is cut (classify, rerank's pairs longest text
first, attention) or read in
overlapping windows (ner; --doc-stride tokens shared), or refused with 413 when
--truncate=false; qa always reads long contexts in windows. Malformed JSON or UTF-8,
unknown fields, empty texts and a route the model's task lacks answer 400; a body over
--max-body-bytes or more than --max-texts texts 413; a full queue (--max-queue
sequences) 429; a request not answered within --timeout 503. Errors are JSON
{"error", "type"}.

SIGTERM or SIGINT stops readiness and the listener, answers the requests already taken
(within --shutdown-timeout) and exits.`,
		Example: `  bertnode serve --model runs/sms/best --addr :8080
  curl -s localhost:8080/v1/classify -d '{"texts": ["WINNER!! Claim your free prize now"]}'
  bertnode serve --model runs/squad/best --max-length 384 --doc-stride 128 --allow-empty
  bertnode serve --model all-MiniLM-L6-v2 --max-length 256
  curl -s localhost:8080/v1/embeddings -d '{"input": ["A man plays a guitar.", "Someone makes music."]}'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if job != "" {
				if s.Model != "" {
					return fmt.Errorf("--model and --job: give one")
				}
				cl, err := cf.client()
				if err != nil {
					return err
				}
				dir, err := os.MkdirTemp("", "bertnode-serve-"+job+"-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
				if _, _, err := downloadResult(cmd.Context(), cl, job, kind, dir); err != nil {
					return err
				}
				s.Model = dir
			}
			if s.Model == "" {
				return fmt.Errorf("--model: a checkpoint directory is required (or --job)")
			}
			serveGC()
			serveThreads(cmd.ErrOrStderr())
			t, err := train.ForEval(s, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			resolveInstances(&o, t)
			srv, err := serve.New(t, o)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			q := ""
			if t.Spec.Quantize != "" {
				q = ", " + t.Spec.Quantize + " encoder"
			}
			outputs := fmt.Sprintf("%d labels", t.Labels.Len())
			if t.Spec.Task == string(model.Embed) {
				outputs = fmt.Sprintf("%s pooling, %d dimensions", t.Spec.Pooling, t.Model.Config.HiddenSize)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "serving %s (%s, %s, max length %d%s; %d model instances of %d threads) on http://%s\n",
				s.Model, t.Spec.Task, outputs, t.Spec.MaxLength, q, o.Batch.Instances, model.Threads(), ln.Addr())
			err = srv.Serve(ctx, ln, grace)
			fmt.Fprintln(cmd.ErrOrStderr(), "stopped")
			return err
		},
	}
	cf = addClusterFlags(c, true)
	f := c.Flags()
	f.StringVar(&s.Model, "model", "", "fine-tuned checkpoint directory (config.json, weights, tokenizer files)")
	f.StringVar(&job, "job", "", "serve this cluster job's model instead of --model (from the coordinators, see --coordinator)")
	f.StringVar(&kind, "kind", "best", "with --job: which of its models, best or final")
	f.StringVar(&addr, "addr", ":8080", "address to listen on")
	// Batches are the server's (--max-batch), padded to their longest sequence.
	addSpecFlags(f, &s, "tokenizer", "max-length", "truncation", "head-tokens", "doc-stride", "threads", "device", "mixed-precision", "quantize", "pooling", "base-model")
	f.Lookup("doc-stride").Usage = "qa and ner: tokens consecutive windows share (0: min(128, max-length/3))"
	serveFlags(f, &o)
	f.DurationVar(&grace, "shutdown-timeout", 30*time.Second, "how long shutdown waits for requests in flight")
	return c
}

// serveFlags binds the server's options.
func serveFlags(f *pflag.FlagSet, o *serve.Options) {
	f.IntVar(&o.Batch.MaxBatch, "max-batch", o.Batch.MaxBatch, "sequences per model batch (1: no batching)")
	f.IntVar(&o.Batch.MaxTokens, "max-batch-tokens", o.Batch.MaxTokens, "padded tokens per model batch (sequences x the longest)")
	f.DurationVar(&o.Batch.MaxWait, "max-wait", o.Batch.MaxWait, "how long a sequence may wait for a fuller batch while the model is idle")
	f.Float64Var(&o.Batch.MinFill, "min-fill", o.Batch.MinFill, "smallest share of a batch's padded tokens that must be real tokens (0: no bound)")
	f.IntVar(&o.Batch.MaxQueue, "max-queue", o.Batch.MaxQueue, "sequences that may wait; past it requests get 429")
	f.IntVar(&o.Batch.Instances, "instances", 0, "batches run at once, each on its own thread and --threads cores, sharing the weights (0: one per --threads cores on a CPU, one on a GPU)")
	f.Int64Var(&o.Limits.MaxBodyBytes, "max-body-bytes", o.Limits.MaxBodyBytes, "largest request body")
	f.IntVar(&o.Limits.MaxTexts, "max-texts", o.Limits.MaxTexts, "texts (or questions) per request")
	f.BoolVar(&o.Limits.Truncate, "truncate", o.Limits.Truncate, "cut texts over --max-length (ner: read them in windows); false refuses them with 413")
	f.BoolVar(&o.AllowEmpty, "allow-empty", o.AllowEmpty, "qa: answer nothing where [CLS] outscores every span (SQuAD v2.0 models); a request's allow_empty overrides it")
	f.DurationVar(&o.Timeout, "timeout", o.Timeout, "longest a request waits for the model, queueing included (then 503)")
}

// resolveInstances turns --instances 0 into one instance per --threads cores on a CPU
// and one on a GPU. Several instances each split their matrix products over their own
// threads alone: OpenBLAS's threads are one pool for the process, so it gets --threads
// (model.SetThreads sets it for --threads N; here for --threads 0, libtorch's default).
func resolveInstances(o *serve.Options, t *train.Trainer) {
	cpu := !t.Model.Opts.Device.IsCuda()
	if o.Batch.Instances == 0 {
		o.Batch.Instances = 1
		if cpu {
			o.Batch.Instances = max(1, runtime.NumCPU()/max(model.Threads(), 1))
		}
	}
	if cpu && o.Batch.Instances > 1 {
		nativeenv.SetBLASThreads(max(model.Threads(), 1))
	}
	serveProcs(o.Batch.Instances)
}

// defaultProcs is GOMAXPROCS as the runtime chose it: the cores this process may use.
var defaultProcs = runtime.GOMAXPROCS(0)

// serveProcs gives the Go scheduler a P per model instance on top of the cores, unless
// $GOMAXPROCS says otherwise. An instance is a goroutine locked to its thread that spends
// its time inside libtorch calls, holding a P all the while: with no P idle, the runtime
// takes an instance's P away during every call over 20 µs and wakes a thread to look for
// work with it. With two tiny instances on two cores at 64 clients, four Ps served 10-16%
// more requests per second than two, at 6-12% less CPU per request (four rounds
// alternating, GOMAXPROCS set to 2 for the other side).
func serveProcs(instances int) {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(defaultProcs + instances)
	}
}

// serveThreads leaves the cores to the model's instances whenever they want them (see
// serve.BackgroundThreads); before the model loads. Where the kernel refuses, the
// server runs as before.
func serveThreads(w io.Writer) {
	if err := serve.BackgroundThreads(); err != nil {
		fmt.Fprintf(w, "%v: the instances share the cores without precedence\n", err)
	}
}

// serveGC makes the garbage collector run less often than Go's default (GOGC=100)
// unless $GOGC says otherwise. It was set when gotch allocated 100 KB of Go memory per
// tensor and the collector ran several times per forward pass; without that ballast
// (tools/gotchadapt/ballast.go) it still serves tiny 1-9% more requests per second at
// 64 clients (bench serve, GOGC 800 and 100 alternated twice).
func serveGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(800)
	}
}
