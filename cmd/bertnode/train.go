package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime"

	"github.com/bertnode/bertnode/train"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func init() { subcommands = append(subcommands, newTrainCmd) }

func newTrainCmd() *cobra.Command {
	var specFile string
	s := train.Defaults()
	c := &cobra.Command{
		Use:   "train [--spec job.yaml] [flags]",
		Short: "Fine-tune a model on this machine",
		Long: `Fine-tune a BERT model on one machine. The job comes from a YAML spec (--spec);
flags given on the command line override it. Writes to --output: metrics.jsonl,
curves.png, confusion.png, mistakes.jsonl, and the checkpoints best/ and final/ in the
Hugging Face layout (config.json, model.safetensors, tokenizer files); with
--report-to tensorboard also a TensorBoard event file of the same scalars.

With --lora-r (or a spec's lora section) only low-rank adapters and the head train;
best/ and final/ are then PEFT adapter directories (adapter_config.json,
adapter_model.safetensors), which eval, predict and serve load onto the base model.

Interrupted (Ctrl-C) or given --save-steps, it writes resumable checkpoints
(checkpoint-N/: weights, optimizer state, RNG and data position); --resume auto
continues from the latest one exactly as if the run had not stopped.`,
		Example: `  bertnode train --train data/sms_spam/SMSSpamCollection --format labeltext \
    --eval-split 0.2 --model tiny --tokenizer data/vocab/bert-base-uncased.vocab.txt \
    --lr 1e-3 --epochs 2 --metric f1_spam --output runs/sms`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec := s
			if specFile != "" {
				var err error
				if spec, err = train.LoadSpec(specFile); err != nil {
					return err
				}
				if err := overrideSpec(cmd.Flags(), &spec); err != nil {
					return err
				}
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			runtime.LockOSThread() // libtorch's grad mode is per OS thread
			t, err := train.Prepare(spec, cmd.OutOrStdout())
			if err != nil {
				return err
			}
			_, err = t.Run(ctx)
			if ctx.Err() != nil {
				return fmt.Errorf("interrupted; continue with --resume auto (checkpoint in %s)", spec.Output)
			}
			return err
		},
	}
	c.Flags().StringVar(&specFile, "spec", "", "YAML job spec")
	specFlags(c.Flags(), &s)
	c.Flags().MarkHidden("quantize") // inference only
	c.Flags().MarkHidden("base-model")
	return c
}

// overrideSpec applies the flags given on the command line to a spec read from a file.
func overrideSpec(set *pflag.FlagSet, spec *train.Spec) error {
	over := pflag.NewFlagSet("spec", pflag.ContinueOnError)
	specFlags(over, spec)
	var err error
	set.Visit(func(f *pflag.Flag) {
		if err != nil || over.Lookup(f.Name) == nil {
			return
		}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			err = over.Lookup(f.Name).Value.(pflag.SliceValue).Replace(sv.GetSlice())
			return
		}
		err = over.Set(f.Name, f.Value.String())
	})
	return err
}

// specFlags binds one flag per job-spec field to s.
func specFlags(f *pflag.FlagSet, s *train.Spec) {
	f.StringVar(&s.Task, "task", s.Task, "classify | multilabel | regression (a number per text or text pair, as STS-B) | ner | qa | embed (sentence embeddings from text pairs) | choice (multiple choice) | mlm (masked-LM training on texts, domain adaptation)")
	f.StringVar(&s.Train, "train", s.Train, "training data file: a path, or a Hugging Face dataset file hf://datasets/OWNER/NAME[@REV]/PATH or split of its Parquet conversion hf://datasets/OWNER/NAME@~parquet/CONFIG/SPLIT")
	f.StringVar(&s.Eval, "eval", s.Eval, "evaluation data file (a path or an hf:// URL, as --train)")
	f.Float64Var(&s.EvalSplit, "eval-split", s.EvalSplit, "hold out this fraction of --train for evaluation when --eval is not given")
	dataSpecFlags(f, &s.Data)
	f.StringVar(&s.Model, "model", s.Model, "Hugging Face directory or hub name (BERT, DistilBERT, RoBERTa, XLM-RoBERTa, CamemBERT, ALBERT, ELECTRA, ModernBERT, DeBERTa-v2/v3, MPNet, NomicBERT), or a preset: tiny, mini, small, base, or <family>-tiny|mini|small (distilbert-tiny, roberta-tiny, albert-tiny, electra-tiny, modernbert-tiny, deberta-v2-tiny, mpnet-tiny, nomic_bert-tiny...)")
	f.StringVar(&s.Tokenizer, "tokenizer", s.Tokenizer, "vocab.txt, tokenizer.json or a model directory (default: the model's; for a preset, BERT's uncased vocabulary built in)")
	f.IntVar(&s.MaxLength, "max-length", s.MaxLength, "tokens per sequence, special tokens included")
	f.StringVar(&s.Padding, "padding", s.Padding, "longest (per batch) | max_length")
	f.IntVar(&s.DocStride, "doc-stride", s.DocStride, "qa: context tokens shared by consecutive windows (0: min(128, max-length/3))")
	f.StringVar(&s.Truncation, "truncation", s.Truncation, "which tokens of a text longer than --max-length stay: head (its start), tail (its end) or head_tail (--head-tokens from its start, the rest from its end); default the tokenizer's (head), and a checkpoint's as it was trained")
	f.IntVar(&s.HeadTokens, "head-tokens", s.HeadTokens, "truncation head_tail: tokens kept from the start (0: max-length / 4)")
	f.IntVar(&s.BatchSize, "batch-size", s.BatchSize, "examples per micro-batch")
	f.IntVar(&s.GradAccum, "grad-accum", s.GradAccum, "micro-batches per optimizer step")
	f.BoolVar(&s.AutoMicroBatch, "auto-micro-batch", s.AutoMicroBatch, "take a step out of the device's memory again in micro-batches half as large, and keep them: the batch stays --batch-size x --grad-accum")
	f.Float64Var(&s.Epochs, "epochs", s.Epochs, "passes over the training data")
	f.IntVar(&s.MaxSteps, "max-steps", s.MaxSteps, "optimizer steps (overrides --epochs when > 0)")
	f.Float64Var(&s.LR, "lr", s.LR, "peak learning rate")
	f.Float64Var(&s.WarmupRatio, "warmup-ratio", s.WarmupRatio, "fraction of steps of linear warmup")
	f.IntVar(&s.WarmupSteps, "warmup-steps", s.WarmupSteps, "steps of linear warmup (overrides --warmup-ratio when > 0)")
	f.StringVar(&s.Optimizer, "optimizer", s.Optimizer, "adamw | sgd (with momentum) | lamb (layer-wise trust ratio, for large batches)")
	f.Float64Var(&s.WeightDecay, "weight-decay", s.WeightDecay, "weight decay, not on biases and LayerNorm (adamw, lamb: decoupled; sgd: L2 added to the gradient, as torch's)")
	f.Float64Var(&s.Momentum, "momentum", s.Momentum, "sgd: momentum (0: plain SGD)")
	f.BoolVar(&s.Nesterov, "nesterov", s.Nesterov, "sgd: Nesterov momentum")
	f.Float64Var(&s.AdamBeta1, "adam-beta1", s.AdamBeta1, "adamw, lamb: beta1 (0: 0.9)")
	f.Float64Var(&s.AdamBeta2, "adam-beta2", s.AdamBeta2, "adamw, lamb: beta2 (0: 0.999; RoBERTa's recipe 0.98)")
	f.Float64Var(&s.AdamEpsilon, "adam-epsilon", s.AdamEpsilon, "adamw, lamb: epsilon (0: 1e-8 adamw, 1e-6 lamb)")
	f.Float64Var(&s.LayerLRDecay, "layer-lr-decay", s.LayerLRDecay, "adamw: layer-wise learning rate decay (0.95: each layer 0.95x the rate of the one above; 0: off)")
	f.StringVar(&s.Schedule, "schedule", s.Schedule, "linear | cosine | constant")
	f.Float64Var(&s.ClipNorm, "clip-norm", s.ClipNorm, "clip the gradient's global norm to this (0: off)")
	f.Float32SliceVar(&s.ClassWeights, "class-weights", s.ClassWeights, "loss weight per class, in label order")
	f.BoolVar(&s.Freeze.Embeddings, "freeze-embeddings", s.Freeze.Embeddings, "do not train the embeddings")
	f.IntVar(&s.Freeze.Layers, "freeze-layers", s.Freeze.Layers, "do not train the first N encoder layers")
	f.BoolVar(&s.Freeze.Base, "freeze-base", s.Freeze.Base, "train only the head")
	f.IntVar(&s.HeadHidden, "head-hidden", s.HeadHidden, "custom head: an extra dense layer of this width")
	f.IntVar(&s.LoRA.R, "lora-r", s.LoRA.R, "LoRA: train rank-r adapters on the frozen base model, and the head, as Hugging Face PEFT's LoraConfig (0: off)")
	f.Float64Var(&s.LoRA.Alpha, "lora-alpha", s.LoRA.Alpha, "LoRA: the adapters' update is scaled by alpha/r")
	f.Float64Var(&s.LoRA.Dropout, "lora-dropout", s.LoRA.Dropout, "LoRA: dropout on the adapters' input")
	f.StringSliceVar(&s.LoRA.TargetModules, "lora-target-modules", s.LoRA.TargetModules, "LoRA: the encoder's dense layers to adapt, by name or name suffix as PEFT's target_modules (default: query,value; DeBERTa query_proj,value_proj; DistilBERT q_lin,v_lin; ModernBERT Wqkv)")
	f.BoolVar(&s.LoRA.Merge, "lora-merge", s.LoRA.Merge, "LoRA: save best/ and final/ as plain checkpoints with the adapters merged, not as PEFT adapter directories")
	f.StringVar(&s.BaseModel, "base-model", s.BaseModel, "the base model a LoRA adapter directory in --model loads onto (default: its adapter_config.json's base_model_name_or_path)")
	f.BoolVar(&s.GradientCheckpointing, "gradient-checkpointing", s.GradientCheckpointing, "recompute each encoder layer's activations in backward instead of keeping them, as transformers' gradient_checkpointing: activation memory of one layer instead of all, for about a third more compute")
	f.Float64Var(&s.LabelSmoothing, "label-smoothing", s.LabelSmoothing, "classify, choice, ner, qa, mlm: smooth the training loss's targets by this share of a uniform distribution, as transformers' label_smoothing_factor (0: off; evaluation's loss stays unsmoothed)")
	f.StringVar(&s.Distill.Teacher, "distill-teacher", s.Distill.Teacher, "knowledge distillation: a fine-tuned checkpoint directory of the same task, labels and tokenizer, whose outputs the model learns to match besides the labels")
	f.Float64Var(&s.Distill.Temperature, "distill-temperature", s.Distill.Temperature, "distillation: the temperature softening both models' outputs")
	f.Float64Var(&s.Distill.Alpha, "distill-alpha", s.Distill.Alpha, "distillation: the loss is alpha × the distillation loss (T² × KL to the teacher's softened outputs; multilabel: BCE; regression: MSE) + (1 − alpha) × the loss against the labels")
	f.Int64Var(&s.Seed, "seed", s.Seed, "random seed (weights, dropout, data order)")
	f.IntVar(&s.Threads, "threads", s.Threads, "CPU threads for libtorch and OpenBLAS (0: their defaults)")
	f.StringVar(&s.Device, "device", s.Device, "cpu | cuda | cuda:N | auto")
	f.StringVar(&s.Autocast, "mixed-precision", s.Autocast, "bf16 | fp16 on CUDA (default fp32)")
	f.StringVar(&s.Quantize, "quantize", s.Quantize, "int8: run the encoder's dense layers in int8 on the CPU (dynamic quantization, as PyTorch's quantize_dynamic; inference only) | none")
	f.StringVar(&s.Pooling, "pooling", s.Pooling, "embed: pool the last hidden states by cls, mean or max (default mean); predict and serve: read any checkpoint as such an embedding model (default: an embedding checkpoint's own pooling)")
	f.IntSliceVar(&s.MatryoshkaDims, "matryoshka-dims", s.MatryoshkaDims, "embed: train the vectors cut to their first N dimensions, for each N, the loss summed over these widths alone (list the model's width too, e.g. 768,512,256,128,64), as sentence-transformers' MatryoshkaLoss, and score each width; eval: score each width")
	f.Float64SliceVar(&s.MatryoshkaWeights, "matryoshka-weights", s.MatryoshkaWeights, "embed: each --matryoshka-dims width's loss weight, in the same order (none given: 1 each)")
	f.BoolVar(&s.TF32, "tf32", s.TF32, "let float32 matmuls on CUDA use TensorFloat-32 on GPUs that have it (Ampere and later); --tf32=false for full fp32")
	f.IntVar(&s.EvalEvery, "eval-steps", s.EvalEvery, "evaluate every N steps (0: every epoch)")
	f.IntVar(&s.Patience, "patience", s.Patience, "early stopping: evaluations without improvement (0: off)")
	f.StringVar(&s.Metric, "metric", s.Metric, "metric for the best checkpoint and early stopping, e.g. accuracy, f1_spam (default: f1_macro for classify, f1_micro for multilabel, spearman for regression, f1 for ner and qa); the lowest of mse, rmse, mae and hamming_loss is the best")
	f.StringVar(&s.Output, "output", s.Output, "output directory")
	f.StringSliceVar(&s.ReportTo, "report-to", s.ReportTo, "also report metrics to: tensorboard (event files in --output; metrics.jsonl is always written)")
	f.IntVar(&s.SaveEvery, "save-steps", s.SaveEvery, "write a resumable checkpoint every N steps (0: each epoch; -1: only when interrupted)")
	f.IntVar(&s.KeepCheckpoints, "keep-checkpoints", s.KeepCheckpoints, "how many resumable checkpoints to keep (0: all)")
	f.StringVar(&s.Resume, "resume", s.Resume, "continue exactly from a checkpoint: auto (the latest in --output) or a checkpoint directory")
}
