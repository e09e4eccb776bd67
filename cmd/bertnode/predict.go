package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"unicode/utf8"

	"github.com/bertnode/bertnode/internal/atomicfile"
	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/report"
	"github.com/bertnode/bertnode/train"
	"github.com/spf13/cobra"
)

func init() { subcommands = append(subcommands, newPredictCmd) }

func newPredictCmd() *cobra.Command {
	var (
		file, attention string
		threshold       float64
	)
	s := train.Defaults()
	s.Model = ""
	c := &cobra.Command{
		Use:   "predict --model DIR [TEXT...]",
		Short: "Classify texts with a fine-tuned checkpoint",
		Long: `Classifies each TEXT argument, or else each line of --file, or else each line of
standard input (blank lines are skipped; input must be UTF-8), and prints one JSON object
per text:

  {"text":"...","label":"spam","labels":["spam"],"probs":{"ham":0.03,"spam":0.97}}

For a classify checkpoint probs is the softmax over the classes and label the most
probable one; for a multilabel checkpoint probs are independent sigmoids and labels
the classes whose probability is at least --threshold (possibly none).

--attention writes a self-contained HTML page (no network needed) showing every layer's
and head's attention over the first text's word pieces, [CLS] and [SEP] included.`,
		Example: `  bertnode predict --model runs/sms/best "WINNER!! Claim your free prize now" "see you at 6?"
  cut -f2 data/sms_spam/SMSSpamCollection | bertnode predict --model runs/sms/best
  bertnode predict --model runs/sms/best --attention attn.html "free entry to win cash"`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if s.Model == "" {
				return fmt.Errorf("--model: a checkpoint directory is required")
			}
			if !(threshold >= 0 && threshold <= 1) {
				return fmt.Errorf("--threshold: %v is not in [0, 1]", threshold)
			}
			texts, err := predictInput(cmd, args, file)
			if err != nil {
				return err
			}
			runtime.LockOSThread() // libtorch's grad mode is per OS thread
			t, err := train.ForEval(s, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("threshold") && t.Spec.Task != string(model.MultiLabel) {
				return fmt.Errorf("--threshold: only for multilabel checkpoints; %s is %s", s.Model, t.Spec.Task)
			}
			preds, err := t.Predict(texts, threshold)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetEscapeHTML(false)
			for i := range preds {
				if err := enc.Encode(&preds[i]); err != nil {
					return err
				}
			}
			if attention == "" {
				return nil
			}
			tokens, attn, err := t.Attention(texts[0])
			if err != nil {
				return err
			}
			if err := atomicfile.Write(attention, 0o644, func(w io.Writer) error {
				return report.HeadView(w, tokens, attn)
			}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s: attention of %d layers x %d heads over %d tokens\n", attention, len(attn), len(attn[0]), len(tokens))
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&s.Model, "model", "", "fine-tuned checkpoint directory (config.json, weights, tokenizer files)")
	f.StringVar(&file, "file", "", "read texts from this file, one per line (default: arguments, else standard input)")
	f.Float64Var(&threshold, "threshold", 0.5, "multilabel: predict every class whose sigmoid probability is at least this")
	f.StringVar(&attention, "attention", "", "write the first text's attention head view to this HTML file")
	addSpecFlags(f, &s, inferFlags...)
	f.Lookup("batch-size").Usage = "texts per forward pass"
	return c
}

// predictInput is the texts to classify: the arguments, else the lines of file, else of
// standard input.
func predictInput(cmd *cobra.Command, args []string, file string) ([]string, error) {
	if len(args) > 0 {
		if file != "" {
			return nil, fmt.Errorf("--file: give texts as arguments or in a file, not both")
		}
		return args, nil
	}
	name, r := "standard input", cmd.InOrStdin()
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		name, r = file, f
	}
	var texts []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSuffix(sc.Text(), "\r")
		if !utf8.ValidString(text) {
			return nil, fmt.Errorf("%s:%d: not valid UTF-8", name, line)
		}
		if strings.TrimSpace(text) != "" {
			texts = append(texts, text)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(texts) == 0 {
		return nil, fmt.Errorf("%s: no texts to classify (empty, or only blank lines)", name)
	}
	return texts, nil
}
