package main

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/train"
)

func init() { subcommands = append(subcommands, newExportCmd) }

func newExportCmd() *cobra.Command {
	var format, output string
	var normalize, externalData bool
	s := train.Defaults()
	s.Model = ""
	c := &cobra.Command{
		Use:   "export --model DIR --format onnx --output DIR",
		Short: "Write a fine-tuned checkpoint as an ONNX model, for ONNX Runtime",
		Long: `Writes the checkpoint in --model as optimum-cli export onnx would: --output gets
model.onnx (ONNX opset 17, the weights inside), config.json and the tokenizer's files,
a directory that optimum's ORTModel classes and transformers.js load (the latter with
{subfolder: ''}: it looks in onnx/ by default), and that ONNX Runtime runs from any
language.

The graph is the model's inference forward, float32. Inputs are int64 [batch_size,
sequence_length] (choice: [batch_size, num_choices, sequence_length]): input_ids, attention_mask and, for BERT, ALBERT, ELECTRA,
NomicBERT and DeBERTa-v2 (not v3), token_type_ids (the others read none), padded as the tokenizer
pads.
Outputs, as optimum names them:

  classify, multilabel, regression   logits [batch_size, labels], before softmax or sigmoid
  ner                                logits [batch_size, sequence_length, labels]
  qa                                 start_logits, end_logits [batch_size, sequence_length]
  choice                             logits [batch_size, num_choices]
  mlm                                logits [batch_size, sequence_length, vocabulary]
  embed                              token_embeddings [batch_size, sequence_length, hidden] and
                                     sentence_embedding [batch_size, hidden]: pooled as the
                                     checkpoint pools (or --pooling), unit length when it ends
                                     with a Normalize module (or --normalize)

A LoRA adapter directory is exported merged into its base model (--base-model). Every
family and head bertnode runs is exported (BERT, DistilBERT, RoBERTa, XLM-RoBERTa,
CamemBERT, ALBERT, ELECTRA, MPNet, ModernBERT, DeBERTa-v2/v3, NomicBERT).
Weights of 2 GB or more (more than one protobuf message holds) go to model.onnx_data
beside model.onnx, as ONNX's external data, which ONNX Runtime and optimum read with
the model; --external-data writes any model that way.`,
		Example: `  bertnode export --model runs/sms/best --format onnx --output runs/sms/onnx
  bertnode export --model runs/embed/best --format onnx --output runs/embed/onnx`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case s.Model == "":
				return fmt.Errorf("--model: a checkpoint directory is required")
			case format != "onnx":
				return fmt.Errorf("--format: %q: want onnx", format)
			case output == "":
				return fmt.Errorf("--output: a directory to write is required")
			case cmd.Flags().Changed("normalize") && s.Pooling == "":
				return fmt.Errorf("--normalize: only with --pooling; an embedding checkpoint says itself whether it normalizes")
			}
			if a, err := os.Stat(s.Model); err == nil {
				if b, err := os.Stat(output); err == nil && os.SameFile(a, b) {
					return fmt.Errorf("--output: %s is the checkpoint itself (its config.json would be replaced); give another directory", output)
				}
			}
			if !cmd.Flags().Changed("max-length") { // an embedding checkpoint's own, written back
				n, err := model.ReadMaxSeqLength(s.Model)
				if err != nil {
					return err
				}
				s.MaxLength = cmp.Or(n, s.MaxLength)
			}
			runtime.LockOSThread() // libtorch's grad mode is per OS thread
			t, err := train.ForEval(s, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			t.Normalize = t.Normalize || normalize
			if err := t.ExportONNX(output, externalData); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%s, %s)\n", filepath.Join(output, model.ONNXFile), t.Model.Config.ModelType, t.Spec.Task)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&s.Model, "model", "", "fine-tuned checkpoint directory (config.json, weights, tokenizer files), or a LoRA adapter directory")
	f.StringVar(&format, "format", "onnx", "what to write: onnx")
	f.StringVar(&output, "output", "", "directory to write model.onnx, config.json and the tokenizer files into")
	f.BoolVar(&normalize, "normalize", false, "with --pooling: scale sentence_embedding to unit length")
	f.BoolVar(&externalData, "external-data", false, "write the weights apart, to model.onnx_data beside model.onnx (ONNX's external data), as always for weights of 2 GB or more")
	addSpecFlags(f, &s, "tokenizer", "max-length", "pooling", "base-model")
	f.Lookup("pooling").Usage = "export the checkpoint as an embedding model pooled by cls, mean or max (default: an embedding checkpoint's own pooling)"
	f.Lookup("max-length").Usage = "embed: the max_seq_length written to sentence_bert_config.json (default: the checkpoint's, else 128; the graph takes any length up to max_position_embeddings)"
	return c
}
