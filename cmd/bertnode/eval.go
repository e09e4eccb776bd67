package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"

	"github.com/bertnode/bertnode/internal/atomicfile"
	"github.com/bertnode/bertnode/report"
	"github.com/bertnode/bertnode/train"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func init() { subcommands = append(subcommands, newEvalCmd) }

// inferFlags are the job-spec flags that say how to run a model.
var inferFlags = []string{"tokenizer", "max-length", "truncation", "head-tokens", "padding", "batch-size", "threads", "device", "mixed-precision", "quantize", "base-model"}

// addSpecFlags adds the named flags of specFlags, bound to s, so that every command
// shares one definition (and help text) of each job-spec flag.
func addSpecFlags(f *pflag.FlagSet, s *train.Spec, names ...string) {
	all := pflag.NewFlagSet("spec", pflag.ContinueOnError)
	specFlags(all, s)
	for _, n := range names {
		f.AddFlag(all.Lookup(n))
	}
}

// loadSpec is s, or the YAML spec in file with the flags given on the command line
// applied over it.
func loadSpec(cmd *cobra.Command, file string, s train.Spec) (train.Spec, error) {
	if file == "" {
		return s, nil
	}
	spec, err := train.LoadSpec(file)
	if err != nil {
		return spec, err
	}
	return spec, overrideSpec(cmd.Flags(), &spec)
}

func newEvalCmd() *cobra.Command {
	var specFile, data, out string
	s := train.Defaults()
	s.Model = ""
	c := &cobra.Command{
		Use:   "eval --model DIR --data FILE [flags]",
		Short: "Score a fine-tuned checkpoint on a labelled data file (report, confusion matrix, mistakes)",
		Long: `Runs a checkpoint directory that bertnode train wrote (or a fine-tuned Hugging Face
BERT: config.json with id2label, model.safetensors or pytorch_model.bin, tokenizer files)
over a labelled data file and scores it with the scorer training uses. The task comes
from the checkpoint: classify prints sklearn's classification report and the confusion
matrix; multilabel the per-class report, subset accuracy and Hamming loss; regression
mse, rmse, mae, pearson, spearman and their mean pearson_spearman (run_glue's STS-B
score; a model with several outputs pools them); ner seqeval's entity-level report; qa
SQuAD's exact match and F1 (HasAns/NoAns for v2); an embedding model (a bare base
model, as task embed saves it) ranks, for each text of the file's (text, text_pair)
pairs, every pair by cosine similarity: accuracy@1, accuracy@5 and MRR@10 (its
mistakes: texts whose best match was another's pair), and with --matryoshka-dims the
same over the vectors cut to each width (mrr_at_10_dim64...); multiple choice its
accuracy.
Labels in the data must be among
the checkpoint's (regression: numbers, as many as the model has outputs).

The data file is read as in training: with the data flags, the same as train's
(--format, --delimiter, --header, the column flags, --label-sep ...), or the data
section of a YAML job spec (--spec); flags override the spec.

With --output, writes there metrics.json (every metric and the report, and the
confusion matrix for classify), confusion.png (classify), mistakes.jsonl (error
analysis: text, gold, prediction, confidence and file:line, most confident first) and,
for qa, predictions.json (answers by question id, as the official SQuAD script reads
them).`,
		Example: `  bertnode eval --model runs/sms/best --data data/sms_spam/SMSSpamCollection \
    --format labeltext --max-length 64 --output runs/sms/eval`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec, err := loadSpec(cmd, specFile, s)
			if err != nil {
				return err
			}
			spec.Model = s.Model
			if data != "" {
				spec.Eval = data
			}
			switch {
			case spec.Model == "":
				return fmt.Errorf("--model: a checkpoint directory is required")
			case spec.Eval == "":
				return fmt.Errorf("--data: a labelled data file is required")
			}
			runtime.LockOSThread() // libtorch's grad mode is per OS thread
			t, err := train.ForEval(spec, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			res, err := t.Evaluate()
			if err != nil {
				return err
			}
			stdout := cmd.OutOrStdout()
			fmt.Fprintf(stdout, "%s: %d examples, %s model from %s\n\n", spec.Eval, len(t.Eval), t.Spec.Task, spec.Model)
			if len(res.Report.PerClass) > 0 {
				fmt.Fprintf(stdout, "%s\n", res.Report.Table(4))
			}
			if res.Confusion != nil {
				fmt.Fprintf(stdout, "%s\n", res.Confusion.Table())
			}
			fmt.Fprintf(stdout, "loss %.4f", res.Loss)
			for _, k := range res.Names() {
				fmt.Fprintf(stdout, "  %s %.4f", k, res.Metrics[k])
			}
			fmt.Fprintln(stdout)
			if out == "" {
				return nil
			}
			if err := writeEval(out, t.Spec, len(t.Eval), res); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "wrote %s\n", out)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&s.Model, "model", "", "fine-tuned checkpoint directory (config.json, weights, tokenizer files), or a LoRA adapter directory (adapter_config.json)")
	f.StringVar(&data, "data", "", "labelled data file to score: a path or an hf:// URL, as train's --eval (default: the spec's eval file)")
	f.StringVar(&out, "output", "", "directory for metrics.json, confusion.png and mistakes.jsonl (default: print only)")
	f.StringVar(&specFile, "spec", "", "YAML job spec whose data section (and tokenizer, max_length...) to use")
	addSpecFlags(f, &s, dataFlags...)
	addSpecFlags(f, &s, append(inferFlags, "doc-stride", "matryoshka-dims")...)
	f.Lookup("batch-size").Usage = "examples per forward pass"
	return c
}

// evalFile is metrics.json.
type evalFile struct {
	Model     string             `json:"model"`
	Data      string             `json:"data"`
	Task      string             `json:"task"`
	Examples  int                `json:"examples"`
	Loss      float64            `json:"loss"`
	Metrics   map[string]float64 `json:"metrics"`
	Report    any                `json:"report"`
	Confusion *confusionJSON     `json:"confusion,omitempty"`
}

type confusionJSON struct {
	Labels []string  `json:"labels"`
	Matrix [][]int64 `json:"matrix"` // rows gold, columns predicted
}

// writeEval writes into dir metrics.json, and what the task's result holds of
// confusion.png, mistakes.jsonl and predictions.json.
func writeEval(dir string, spec train.Spec, n int, res train.EvalResult) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	mf := evalFile{Model: spec.Model, Data: spec.Eval, Task: spec.Task, Examples: n, Loss: res.Loss, Metrics: res.Metrics, Report: res.Report}
	if c := res.Confusion; c != nil {
		mf.Confusion = &confusionJSON{Labels: c.Labels, Matrix: c.Matrix()}
		if err := atomicfile.Write(filepath.Join(dir, "confusion.png"), 0o644, func(w io.Writer) error {
			return report.ConfusionPNG(w, c.Labels, c.Matrix(), 600)
		}); err != nil {
			return err
		}
	}
	b, err := json.MarshalIndent(mf, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "metrics.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	if res.Predictions != nil {
		b, err := json.MarshalIndent(res.Predictions, "", "  ")
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, "predictions.json"), append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	// A classification without mistakes still gets its (empty) error analysis.
	if res.Mistakes == nil && res.Confusion == nil {
		return nil
	}
	return atomicfile.Write(filepath.Join(dir, "mistakes.jsonl"), 0o644, func(w io.Writer) error {
		return report.WriteMistakes(w, res.Mistakes)
	})
}
