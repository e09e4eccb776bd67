package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/dataset"
	"github.com/bertnode/bertnode/internal/atomicfile"
	"github.com/bertnode/bertnode/internal/nativeenv"
	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/node"
	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/train"
	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"
)

func init() { subcommands = append(subcommands, newInferCmd) }

func newInferCmd() *cobra.Command {
	var (
		pf                      predictFlags
		modelRef, input, output string
		name                    string
		nodes, blockRecords     int
		lease                   time.Duration
		wait                    bool
	)
	s := train.Defaults()
	c := &cobra.Command{
		Use:   "infer --model DIR|job:JOB[/best|/final] --input FILE [data flags] [--nodes N] [--wait [--output OUT.jsonl]]",
		Short: "Predict a large data file on the cluster's nodes (offline scoring)",
		Long: `Submits a predict job: bertnode predict's work on a data file, spread over the cluster's
nodes. The output is what bertnode predict --model DIR --file FILE with the same data
flags prints, byte for byte: one JSON line per record, in the file's order.

--model is a fine-tuned checkpoint directory (uploaded, as submit uploads models) or
job:JOB, a finished job's model in the coordinators' store (final, or job:JOB/best).
--input is uploaded and planned into blocks of --block-records records, as training
data is; each block is a unit of work. Nodes lease units one at a time, run the model
on them (loaded once per node, on the device and threads of its bertnode join) and
upload each unit's output; the coordinators record each unit done once. A node that
dies gives its units back at once; a working node renews its lease every third of
--lease, and one silent past it loses its unit to the next node that asks (whichever
of the two finishes first counts).

It runs checkpoints of every task, reading --input as predict reads --file with data
flags: texts (classify, multilabel, embed, mlm; regression's with their pairs), conll
sentences (ner), squad questions (qa) or jsonl choices (choice). --block-records must
be a multiple of --batch-size, so that units cut the input where predict's batches do
(qa's windows and choice's pairs are batched by runs of --batch-size records).

With --wait it follows the job to its end (exit 1 unless it succeeds) and, with
--output, writes the output there; else bertnode download JOB --output OUT.jsonl.`,
		Example: `  bertnode infer --model runs/sms/best --input calls.tsv --format tsv --text-column 1 --nodes 8 --wait --output scores.jsonl
  bertnode infer --model job:job-12/best --input big.jsonl --text-column body
  bertnode infer --model runs/embed/best --input corpus.txt --format text --nodes 8 --wait --output vectors.jsonl
  bertnode download job-13 --output scores.jsonl`,
		Args: cobra.NoArgs,
	}
	cf := addClusterFlags(c, true)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		switch {
		case modelRef == "":
			return errors.New("--model: a checkpoint directory or job:JOB is required")
		case input == "":
			return errors.New("--input: a data file is required")
		case !(pf.threshold >= 0 && pf.threshold <= 1):
			return fmt.Errorf("--threshold: %v is not in [0, 1]", pf.threshold)
		case nodes < 1:
			return fmt.Errorf("--nodes: %d: must be positive", nodes)
		case blockRecords < 1 || blockRecords%s.BatchSize != 0:
			return fmt.Errorf("--block-records: %d is not a positive multiple of --batch-size %d: units must cut the input where predict's batches do", blockRecords, s.BatchSize)
		case output != "" && !wait:
			return errors.New("--output: give --wait too, or bertnode download JOB --output FILE once the job is done")
		}
		// A Parquet file or hf:// URL is converted or downloaded here: the cluster reads
		// what is uploaded.
		data, err := dataset.Resolve(input, s.Data)
		if err != nil {
			return fmt.Errorf("--input: %w", err)
		}
		s.Data = data.Spec
		if fi, err := os.Stat(data.Path); err != nil {
			return fmt.Errorf("--input: %w", err)
		} else if !fi.Mode().IsRegular() {
			return fmt.Errorf("--input: %s is not a file", input)
		}
		if s.Data.Format == "" {
			f, ok := shard.FormatOf(input)
			if !ok {
				return fmt.Errorf("--format: not given, and not implied by --input's extension %q", filepath.Ext(input))
			}
			s.Data.Format = f
		}
		cl, ctx, stop, err := cf.connect(cmd)
		if err != nil {
			return err
		}
		defer stop()
		out := cmd.OutOrStdout()
		task, blob, err := inferModel(ctx, cl, modelRef, s, out)
		if err != nil {
			return err
		}
		for flag, want := range map[string]string{"threshold": string(model.MultiLabel), "top-k": string(model.MLM),
			"doc-stride": string(model.QA), "allow-empty": string(model.QA), "normalize": string(model.Embed), "truncate-dim": string(model.Embed)} {
			if cmd.Flags().Changed(flag) && task != want {
				return fmt.Errorf("--%s: only for %s models; %s is %s", flag, want, modelRef, task)
			}
		}
		in, err := uploadAs(ctx, cl, data.Path, input, out)
		if err != nil {
			return fmt.Errorf("--input: %w", err)
		}
		spec := toPredictSpec(s, pf, task, "blob:"+blob, "blob:"+in)
		spec.Lease = api.Duration(lease)
		spec.Cluster = api.ClusterSpec{Nodes: nodes, BlockRecords: blockRecords}
		text, err := yaml.Marshal(spec)
		if err != nil {
			return err
		}
		if name == "" {
			name = strings.TrimSuffix(filepath.Base(input), filepath.Ext(input))
		}
		j, err := submitJob(ctx, cl, api.SubmitRequest{Name: name, Spec: string(text)}, wait, out)
		if err != nil {
			// A planning error names the input by its blob: name the file.
			return errors.New(strings.ReplaceAll(err.Error(), "blob:"+in, input))
		}
		if output == "" {
			return nil
		}
		return downloadOutput(ctx, cl, j, output, out)
	}
	f := c.Flags()
	f.StringVar(&modelRef, "model", "", "fine-tuned checkpoint `DIR`, or job:JOB[/best|/final] (a finished job's model)")
	f.StringVar(&input, "input", "", "the data `FILE` to predict, read as predict reads --file with data flags (a path or an hf:// URL; Parquet is converted to JSON lines here and uploaded so)")
	f.StringVar(&output, "output", "", "with --wait: write the output (JSON lines) to this `FILE`")
	f.StringVar(&name, "name", "", "the job's name (default: the input file's)")
	f.IntVar(&nodes, "nodes", 1, "nodes to spread the work over (it starts on fewer if fewer are idle)")
	f.IntVar(&blockRecords, "block-records", 256, "records per unit of work (a multiple of --batch-size)")
	f.DurationVar(&lease, "lease", 5*time.Minute, "how long a unit stays a node's without a renewal (a working node renews every third of it)")
	f.BoolVar(&wait, "wait", false, "follow the job until it ends; exit 1 unless it succeeds")
	f.Float64Var(&pf.threshold, "threshold", 0.5, "multilabel: predict every class whose sigmoid probability is at least this")
	f.IntVar(&pf.topK, "top-k", 5, "mlm: the most probable tokens to print at each mask token")
	f.BoolVar(&pf.allowEmpty, "allow-empty", false, "qa: answer nothing where [CLS] outscores every span (SQuAD v2.0 models)")
	f.BoolVar(&pf.normalize, "normalize", false, "embed: scale the vectors to unit length (an embedding checkpoint with a Normalize module always does)")
	f.IntVar(&pf.truncateDim, "truncate-dim", 0, truncateDimUsage)
	addSpecFlags(f, &s, "max-length", "padding", "batch-size", "mixed-precision", "quantize", "doc-stride", "pooling")
	addSpecFlags(f, &s, dataFlags...)
	f.Lookup("batch-size").Usage = batchSizeUsage
	return c
}

// inferModel is the task of infer's --model and its blob: a local checkpoint directory,
// loaded here as predict loads it (so that a bad one fails before anything is
// uploaded), then uploaded; or job:JOB[/kind], a job's model already stored (an
// embedding model with --pooling, as predict reads any checkpoint).
func inferModel(ctx context.Context, cl *api.Client, ref string, s train.Spec, out io.Writer) (task, blob string, err error) {
	if id, ok := strings.CutPrefix(ref, "job:"); ok {
		id, kind, _ := strings.Cut(id, "/")
		kind = cmp.Or(kind, "final")
		if kind != "final" && kind != "best" {
			return "", "", fmt.Errorf("--model: %s: want job:JOB, job:JOB/final or job:JOB/best", ref)
		}
		if s.Pooling != "" {
			if _, err := model.ParsePooling(s.Pooling); err != nil {
				return "", "", fmt.Errorf("--pooling: %w", err)
			}
		}
		j, err := cl.Job(ctx, id)
		if err != nil {
			return "", "", fmt.Errorf("--model: %s: %w", ref, err)
		}
		a, ok := j.Results[kind]
		if !ok {
			return "", "", fmt.Errorf("--model: %s (%s) has no %s model", j.ID, j.State, kind)
		}
		spec, err := api.ParseSpec(j.Spec)
		if err != nil {
			return "", "", fmt.Errorf("--model: %s: %w", ref, err)
		}
		if s.Pooling != "" {
			spec.Task = string(model.Embed)
		}
		return spec.Task, a.Blob, nil
	}
	if _, err := os.Stat(ref); err != nil {
		return "", "", fmt.Errorf("--model: %w (want a checkpoint directory or job:JOB)", err)
	}
	runtime.LockOSThread() // libtorch's grad mode is per OS thread
	defer runtime.UnlockOSThread()
	s.Model = ref
	t, err := forPredict(s, io.Discard) // its errors name the file or the flag's field (max_length...)
	if err != nil {
		return "", "", err
	}
	if blob, err = uploadPacked(ctx, cl, ref, out); err != nil {
		return "", "", fmt.Errorf("--model: %w", err)
	}
	return t.Spec.Task, blob, nil
}

// toPredictSpec is a predict job's spec from predict's flags (s and pf); fromPredictSpec
// gives them back on the node, the fields the job does not set at train's defaults.
func toPredictSpec(s train.Spec, pf predictFlags, task, model, input string) api.PredictSpec {
	return api.PredictSpec{Kind: api.KindPredict, Task: task, Model: model, Input: input, Data: s.Data,
		MaxLength: s.MaxLength, Padding: s.Padding, BatchSize: s.BatchSize, MixedPrecision: s.Autocast, Quantize: s.Quantize,
		Threshold: pf.threshold, TopK: pf.topK, DocStride: s.DocStride, AllowEmpty: pf.allowEmpty, Pooling: s.Pooling, Normalize: pf.normalize,
		TruncateDim: pf.truncateDim}
}

func fromPredictSpec(p api.PredictSpec, modelDir string) (train.Spec, predictFlags) {
	s := train.Defaults()
	s.Model, s.Data = modelDir, p.Data
	s.MaxLength, s.BatchSize = cmp.Or(p.MaxLength, s.MaxLength), cmp.Or(p.BatchSize, s.BatchSize)
	s.Padding, s.Autocast = cmp.Or(p.Padding, s.Padding), cmp.Or(p.MixedPrecision, s.Autocast)
	s.Quantize, s.DocStride, s.Pooling = cmp.Or(p.Quantize, s.Quantize), p.DocStride, p.Pooling
	return s, predictFlags{threshold: p.Threshold, topK: cmp.Or(p.TopK, 5), allowEmpty: p.AllowEmpty, normalize: p.Normalize,
		truncateDim: p.TruncateDim}
}

// predictor is a node's model for a predict job: predict's code path over each unit's
// records.
type predictor struct {
	t    *train.Trainer
	pf   predictFlags
	warn io.Writer
}

// newPredictor loads predict jobs' models on a node: the job's model fetched into
// dir/uploads once, run on the node's device with its threads.
func newPredictor(c node.Blobs, dir string, threads int, device string, logger *log.Logger) node.PredictorFactory {
	return func(ctx context.Context, job *api.Job, spec api.PredictSpec) (node.Predictor, error) {
		modelDir, err := node.FetchUpload(ctx, c, filepath.Join(dir, "uploads"), spec.Model, job)
		if err != nil {
			return nil, fmt.Errorf("model: %w", err)
		}
		s, pf := fromPredictSpec(spec, modelDir)
		s.Threads, s.Device = threads, device
		t, err := forPredict(s, logger.Writer())
		if err != nil {
			return nil, err
		}
		if t.Spec.Task != spec.Task {
			return nil, fmt.Errorf("model: a %s checkpoint, but the job reads its input for %s", t.Spec.Task, spec.Task)
		}
		return &predictor{t: t, pf: pf, warn: logger.Writer()}, nil
	}
}

// Predict writes recs' predictions to w. Out of memory (or, on the CPU, any libtorch
// error) fails the job (node.Agent.failPredict) rather than end the node, whose
// supervisor would start it into the same unit again.
func (p *predictor) Predict(recs []shard.Record, w io.Writer) (err error) {
	defer model.CatchOn(p.t.Model.Opts.Device, &err)
	in, err := recordInput(recs, p.t.Spec.Task)
	if err != nil {
		return err
	}
	return writePredictions(w, p.warn, p.t, in, p.pf)
}

// Close drops the model and frees its memory at once (a node's next job needs it).
func (p *predictor) Close() error {
	p.t = nil
	nativeenv.ReleaseMemory()
	return nil
}

// downloadOutput writes predict job j's output to path: its units' outputs in order.
func downloadOutput(ctx context.Context, cl *api.Client, j *api.Job, path string, out io.Writer) error {
	if j.State != api.Succeeded {
		return fmt.Errorf("%s is %s: its output is complete once it succeeds", j.ID, j.State)
	}
	blobs, err := cl.Outputs(ctx, j.ID)
	if err != nil {
		return fmt.Errorf("%s output: %w", j.ID, err)
	}
	err = atomicfile.Write(path, 0o644, func(w io.Writer) error {
		for i, blob := range blobs {
			rc, _, err := cl.GetBlob(ctx, blob)
			if err != nil {
				return fmt.Errorf("unit %d: %w", i, err)
			}
			_, err = io.Copy(w, rc)
			rc.Close()
			if err != nil {
				return fmt.Errorf("unit %d: %w", i, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s output: %w", j.ID, err)
	}
	fmt.Fprintf(out, "wrote %d predictions of %s (%d units) to %s\n", j.Progress.Records, j.ID, len(blobs), path)
	return nil
}
