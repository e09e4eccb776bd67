// Package train fine-tunes a model on one machine: the job spec, the data pipeline from
// records to batches, the training loop (accumulation, clipping, schedule, evaluation,
// checkpoints) and the metrics it reports. A distributed node runs the same loop on its
// shard of the data with a gradient all-reduce plugged in (GradSync).
package train

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/hf"
	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/tokenize"
	"gopkg.in/yaml.v3"
)

// Spec is a training job: what `bertnode train` reads from YAML, flags overriding it,
// and what the coordinator will accept.
type Spec struct {
	Task  string     `yaml:"task"`  // classify | multilabel | regression | ner | qa | embed | choice | mlm
	Train string     `yaml:"train"` // training data file
	Eval  string     `yaml:"eval"`  // evaluation file; empty with EvalSplit holds out part of Train
	Data  shard.Spec `yaml:"data"`  // format, columns, encoding, skip_bad_records
	// EvalSplit holds out this fraction of Train for evaluation when Eval is empty:
	// every record whose index hashes below it, so the split is stable.
	EvalSplit float64 `yaml:"eval_split"`

	Model     string `yaml:"model"`      // HF directory, hub name, or preset (hf.Preset: tiny, roberta-tiny...)
	Tokenizer string `yaml:"tokenizer"`  // vocab.txt, tokenizer.json or a directory; default the model's
	Lowercase *bool  `yaml:"lowercase"`  // for a bare vocab.txt (default true)
	MaxLength int    `yaml:"max_length"` // tokens per sequence, specials included
	Padding   string `yaml:"padding"`    // longest (dynamic, per batch) | max_length
	DocStride int    `yaml:"doc_stride"` // qa: context tokens shared by consecutive windows (default min(128, max_length/3))
	// Truncation is which tokens of a text longer than max_length stay: head (its
	// start), tail (its end: transformers' truncation_side left) or head_tail (its first
	// head_tokens and the rest from its end, Sun et al. 2019). Empty: the tokenizer's
	// (head unless its tokenizer_config.json says left); the checkpoint's tokenizer
	// records it, so eval, predict and serve truncate as training did.
	Truncation string `yaml:"truncation"`
	HeadTokens int    `yaml:"head_tokens"` // head_tail: tokens kept from the start (default max_length / 4)

	BatchSize   int     `yaml:"batch_size"`
	GradAccum   int     `yaml:"grad_accum"` // micro-batches per optimizer step
	Epochs      float64 `yaml:"epochs"`
	MaxSteps    int     `yaml:"max_steps"` // optimizer steps; overrides Epochs when > 0
	LR          float64 `yaml:"lr"`
	WarmupRatio float64 `yaml:"warmup_ratio"`
	WarmupSteps int     `yaml:"warmup_steps"` // overrides WarmupRatio when > 0, as in HF's TrainingArguments
	WeightDecay float64 `yaml:"weight_decay"`
	Schedule    string  `yaml:"schedule"` // linear | constant | cosine
	ClipNorm    float64 `yaml:"clip_norm"`
	Optimizer   string  `yaml:"optimizer"` // adamw | sgd | lamb
	Momentum    float64 `yaml:"momentum"`  // sgd (default 0.9)
	Nesterov    bool    `yaml:"nesterov"`  // sgd: Nesterov momentum
	// AdamBeta1, AdamBeta2 and AdamEpsilon are adamw's and lamb's (HF's names); 0: the
	// optimizer's defaults (model.OptimizerOptions).
	AdamBeta1   float64 `yaml:"adam_beta1"`
	AdamBeta2   float64 `yaml:"adam_beta2"`
	AdamEpsilon float64 `yaml:"adam_epsilon"`
	// LayerLRDecay (adamw; 0: off) trains the top layer at lr x it, each layer below at
	// it times the one above, the embeddings last; the head at lr (model.LayerLRScales).
	LayerLRDecay float64 `yaml:"layer_lr_decay"`

	ClassWeights []float32    `yaml:"class_weights"`
	Freeze       model.Freeze `yaml:"freeze"`
	HeadHidden   int          `yaml:"head_hidden"`
	Dropout      *float64     `yaml:"dropout"` // head dropout; default the config's
	// LoRA trains low-rank adapters on the frozen base model and the head (PEFT's
	// LoraConfig: model.LoRA); best/ and final/ are PEFT adapter directories, or with
	// lora.merge plain checkpoints of the merged weights.
	LoRA model.LoRA `yaml:"lora"`
	// BaseModel (eval, predict, serve) is the base model a LoRA adapter directory loads
	// onto; default its adapter_config.json's base_model_name_or_path.
	BaseModel string `yaml:"base_model"`
	// MLMProbability is the share of tokens task mlm masks (default 0.15).
	MLMProbability float64 `yaml:"mlm_probability"`
	// LabelSmoothing mixes this share of a uniform distribution into the targets of the
	// training loss (classify, choice, ner, qa, mlm), as transformers'
	// label_smoothing_factor; the evaluation loss stays unsmoothed. 0: off.
	LabelSmoothing float64 `yaml:"label_smoothing"`
	// Distill trains the model to match a fine-tuned teacher's outputs as well as the
	// labels (knowledge distillation); off without a teacher.
	Distill Distill `yaml:"distill"`

	Seed     int64  `yaml:"seed"`
	Threads  int    `yaml:"threads"`
	Device   string `yaml:"device"`          // cpu | cuda | cuda:N | auto
	Autocast string `yaml:"mixed_precision"` // "" | bf16 | fp16 (CUDA)
	// GradientCheckpointing recomputes each encoder layer's activations in backward
	// instead of keeping them (transformers' gradient_checkpointing): activation memory
	// of one layer instead of all, for about a third more compute per step.
	GradientCheckpointing bool `yaml:"gradient_checkpointing"`
	// AutoMicroBatch: a step out of the device's memory is taken again in micro-batches
	// half as large, and the rest of the run keeps them (the batch, and so the
	// training, stays what it was), as transformers' auto_find_batch_size finds a
	// batch size that fits, but without changing the batch.
	AutoMicroBatch bool   `yaml:"auto_micro_batch"`
	TF32           bool   `yaml:"tf32"`     // TensorFloat-32 matmuls on GPUs that have it (default on)
	Quantize       string `yaml:"quantize"` // int8: eval, predict, serve (CPU) run the encoder's dense layers in int8; not training
	// Pooling (predict, serve) reads the checkpoint as a sentence-embedding model that
	// pools its last hidden states by cls, mean or max, whatever its head; "" takes an
	// embedding checkpoint's own (sentence-transformers' 1_Pooling, else mean).
	Pooling string `yaml:"pooling"`
	// MatryoshkaDims (task embed) trains the vectors cut to their first MatryoshkaDims[i]
	// dimensions: the loss is the sum over these widths alone (the model's own width
	// among them, as a rule) of each one's ranking loss weighted by MatryoshkaWeights
	// (default 1 each), as sentence-transformers' MatryoshkaLoss; evaluation scores each.
	MatryoshkaDims    []int     `yaml:"matryoshka_dims"`
	MatryoshkaWeights []float64 `yaml:"matryoshka_weights"`

	EvalEvery int `yaml:"eval_steps"` // evaluate every N steps; 0 = at each epoch's end
	Patience  int `yaml:"patience"`   // early stopping: evaluations without improvement
	// Metric is what early stopping and the best checkpoint watch; default f1_macro
	// (classify), f1_micro (multilabel), f1 (ner: entity-level; qa: SQuAD F1),
	// spearman (regression). Errors and losses (mse, rmse, mae, hamming_loss) are
	// watched for their lowest value, the others for their highest.
	Metric      string `yaml:"metric"`
	PositiveTag string `yaml:"positive"` // the positive class, for binary F1 (e.g. spam)
	Output      string `yaml:"output"`   // output directory
	// ReportTo names where metrics go besides metrics.jsonl, which is always written:
	// tensorboard (event files in Output).
	ReportTo []string `yaml:"report_to"`
	// SaveEvery writes a resumable checkpoint every N steps; 0 at each epoch's end;
	// -1 only when the run is interrupted (which always writes one). KeepCheckpoints
	// bounds how many stay (0: all).
	SaveEvery       int    `yaml:"save_steps"`
	KeepCheckpoints int    `yaml:"keep_checkpoints"`
	Resume          string `yaml:"resume"` // "" | auto (latest checkpoint in output) | a checkpoint directory

	// Cluster is how `bertnode submit` runs the job across nodes; `bertnode train`
	// ignores it.
	Cluster api.ClusterSpec `yaml:"cluster"`
}

// Distill is task-specific knowledge distillation (model.Distill): the loss is alpha ×
// the distillation loss against the teacher's logits at temperature + (1 − alpha) ×
// the loss against the labels.
type Distill struct {
	// Teacher is a fine-tuned checkpoint directory of the same task, with the same labels
	// in the same order and the same tokenizer vocabulary as this job's.
	Teacher     string  `yaml:"teacher"`
	Temperature float64 `yaml:"temperature"` // softens both models' distributions (default 2)
	Alpha       float64 `yaml:"alpha"`       // the distillation loss's weight (default 0.5)
}

// Defaults are what an unset field means.
func Defaults() Spec {
	return Spec{
		Task: "classify", Model: "tiny", MaxLength: 128, Padding: "longest",
		BatchSize: 32, GradAccum: 1, Epochs: 3, LR: 5e-5, WarmupRatio: 0.1, WeightDecay: 0.01,
		Schedule: "linear", ClipNorm: 1.0, Optimizer: "adamw", Momentum: 0.9, Seed: 42, Threads: 0, Device: "cpu",
		Output: "runs/train", KeepCheckpoints: 2, TF32: true, MLMProbability: DefaultMLMProbability,
		Distill: defaultDistill,
	}
}

var defaultDistill = Distill{Temperature: 2, Alpha: 0.5}

// LoadSpec reads a YAML job spec file over Defaults (see ParseSpec).
func LoadSpec(path string) (Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Defaults(), err
	}
	s, err := ParseSpec(string(b))
	if err != nil {
		return s, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// ParseSpec reads a YAML job spec over Defaults; unknown fields are errors, so that a
// typo is not silently ignored.
func ParseSpec(text string) (Spec, error) {
	s := Defaults()
	dec := yaml.NewDecoder(strings.NewReader(text))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil && !errors.Is(err, io.EOF) {
		return s, err
	}
	return s, nil
}

// LRSchedule is the learning rate schedule of a run of total steps.
func (s *Spec) LRSchedule(total int) Schedule {
	warmup := int(math.Ceil(s.WarmupRatio * float64(total)))
	if s.WarmupSteps > 0 {
		warmup = s.WarmupSteps
	}
	return Schedule{Kind: s.Schedule, Peak: s.LR, Total: total, Warmup: warmup}
}

// Matryoshka is the spec's Matryoshka dimensions and weights, as the model takes them.
func (s *Spec) Matryoshka() model.Matryoshka {
	return model.Matryoshka{Dims: s.MatryoshkaDims, Weights: s.MatryoshkaWeights}
}

// Validate names the first bad field.
func (s *Spec) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("job spec: %s: %s", field, fmt.Sprintf(format, args...))
	}
	if s.Metric == "" {
		s.Metric = api.DefaultMetric(s.Task)
	}
	if _, err := model.ParseTask(s.Task); err != nil {
		return bad("task", "%v", err)
	}
	if len(s.ClassWeights) > 0 && s.Task == string(model.Regression) {
		return bad("class_weights", "regression has scores, not classes to weight")
	}
	s.Data = s.Data.ForTask(s.Task)
	if s.Quantize != "" && s.Quantize != "none" {
		return bad("quantize", "%q is for eval, predict and serve: training runs in full precision", s.Quantize)
	}
	if s.Task == string(model.Embed) {
		p, err := model.ParsePooling(s.Pooling)
		if err != nil {
			return bad("pooling", "%v", err)
		}
		s.Pooling = p
		switch {
		case s.HeadHidden > 0 || len(s.ClassWeights) > 0 || s.Dropout != nil:
			return bad("task", "an embedding model has no head: head_hidden, class_weights and dropout do not apply")
		case s.Freeze.Base:
			return bad("freeze.base", "an embedding model is its base model alone: nothing would train")
		}
	} else if s.Task == string(model.MLM) {
		switch {
		case !(s.MLMProbability > 0 && s.MLMProbability < 1):
			return bad("mlm_probability", "%v is not in (0, 1)", s.MLMProbability)
		case s.HeadHidden > 0 || len(s.ClassWeights) > 0:
			return bad("task", "the masked-LM head is transformers': head_hidden and class_weights do not apply")
		}
	}
	if s.LoRA.On() {
		if err := s.LoRA.Check(); err != nil {
			return fmt.Errorf("job spec: %w", err)
		}
		if _, err := hf.Preset(s.Model); err == nil && !s.LoRA.Merge {
			if _, err := os.Stat(s.Model); err != nil {
				return bad("lora.merge", "model %q is a random-init preset, which no adapter can be loaded onto later: set merge: true, or train from a saved checkpoint", s.Model)
			}
		}
	}
	if _, err := s.Matryoshka().Check(model.Task(s.Task), 0); err != nil {
		return fmt.Errorf("job spec: %w", err)
	}
	if s.Task != string(model.Embed) && s.Pooling != "" {
		return bad("pooling", "%q is for embedding models (task embed), and for reading any checkpoint as one in predict and serve", s.Pooling)
	}
	if _, err := newTask(*s); err != nil {
		return bad("task", "%v", err)
	}
	switch task := model.Task(s.Task); {
	case !(s.LabelSmoothing >= 0 && s.LabelSmoothing < 1):
		return bad("label_smoothing", "%v is not in [0, 1)", s.LabelSmoothing)
	case s.LabelSmoothing > 0 && (task == model.MultiLabel || task == model.Regression || task == model.Embed):
		return bad("label_smoothing", "smooths the cross-entropy of classify, choice, ner, qa and mlm; %s's loss is not one", task)
	}
	if d := s.Distill; d.Teacher == "" {
		if d != defaultDistill {
			return bad("distill.teacher", "a teacher checkpoint directory is required to distil")
		}
	} else {
		switch {
		case s.Task == string(model.Embed):
			return bad("distill", "an embedding model has no logits to match; distillation is for the other tasks")
		case !(d.Temperature > 0) || d.Temperature > 1e6:
			return bad("distill.temperature", "%v: must be a positive number", d.Temperature)
		case !(d.Alpha >= 0 && d.Alpha <= 1):
			return bad("distill.alpha", "%v is not in [0, 1]", d.Alpha)
		}
	}
	switch {
	case s.Train == "":
		return bad("train", "a training file is required")
	case !(s.EvalSplit >= 0 && s.EvalSplit < 1): // NaN too, as in the float checks below
		return bad("eval_split", "%v is not in [0, 1)", s.EvalSplit)
	case s.MaxLength < 8 || s.MaxLength > 512:
		return bad("max_length", "%d is not in [8, 512]", s.MaxLength)
	case s.Padding != "longest" && s.Padding != "max_length":
		return bad("padding", "%q: want longest or max_length", s.Padding)
	case s.BatchSize < 1 || s.BatchSize > api.MaxBatch:
		return bad("batch_size", "%d is not in [1, %d]", s.BatchSize, api.MaxBatch)
	case s.GradAccum < 1 || s.GradAccum > api.MaxBatch:
		return bad("grad_accum", "%d is not in [1, %d]", s.GradAccum, api.MaxBatch)
	case s.Epochs <= 0 && s.MaxSteps <= 0:
		return bad("epochs", "set epochs or max_steps")
	case !(s.Epochs <= api.MaxEpochs):
		return bad("epochs", "%v is more than %g", s.Epochs, float64(api.MaxEpochs))
	case !(s.LR > 0) || math.IsInf(s.LR, 1):
		return bad("lr", "%v: must be a positive number", s.LR)
	case !(s.WarmupRatio >= 0 && s.WarmupRatio <= 1):
		return bad("warmup_ratio", "%v is not in [0, 1]", s.WarmupRatio)
	case s.WarmupSteps < 0:
		return bad("warmup_steps", "%d is negative", s.WarmupSteps)
	case !(s.AdamBeta1 >= 0 && s.AdamBeta1 < 1):
		return bad("adam_beta1", "%v is not in (0, 1)", s.AdamBeta1)
	case !(s.AdamBeta2 >= 0 && s.AdamBeta2 < 1):
		return bad("adam_beta2", "%v is not in (0, 1)", s.AdamBeta2)
	case !(s.AdamEpsilon >= 0 && s.AdamEpsilon < 1):
		return bad("adam_epsilon", "%v is not in (0, 1)", s.AdamEpsilon)
	case (s.AdamBeta1 != 0 || s.AdamBeta2 != 0 || s.AdamEpsilon != 0) && s.Optimizer == "sgd":
		return bad("adam_beta1", "adam_beta1, adam_beta2 and adam_epsilon are adamw's and lamb's, not sgd's")
	case !(s.WeightDecay >= 0) || math.IsInf(s.WeightDecay, 1):
		return bad("weight_decay", "%v: must be a number, not negative", s.WeightDecay)
	case !(s.ClipNorm >= 0) || math.IsInf(s.ClipNorm, 1):
		return bad("clip_norm", "%v: must be a number, not negative (0: no clipping)", s.ClipNorm)
	case s.Schedule != "linear" && s.Schedule != "constant" && s.Schedule != "cosine":
		return bad("schedule", "%q: want linear, constant or cosine", s.Schedule)
	case !slices.Contains(model.OptimizerNames, s.Optimizer):
		return bad("optimizer", "%q: want one of %s", s.Optimizer, strings.Join(model.OptimizerNames, ", "))
	case !(s.Momentum >= 0 && s.Momentum < 1):
		return bad("momentum", "%v is not in [0, 1)", s.Momentum)
	case s.Nesterov && (s.Optimizer != "sgd" || s.Momentum == 0):
		return bad("nesterov", "Nesterov momentum needs optimizer sgd with momentum > 0")
	case !(s.LayerLRDecay >= 0 && s.LayerLRDecay <= 1): // NaN too
		return bad("layer_lr_decay", "%v is not in (0, 1] (0: off)", s.LayerLRDecay)
	case s.LayerLRDecay > 0 && s.Optimizer != "adamw":
		return bad("layer_lr_decay", "only with optimizer adamw, not %s", s.Optimizer)
	case s.Autocast == "fp16" && s.Cluster.Codec == "powersgd":
		// An overflowed step's infinities would stay in PowerSGD's error memory and
		// its reused factor, and every later step would overflow.
		return bad("cluster.codec", "powersgd cannot carry mixed_precision fp16's overflowed steps: use mixed_precision bf16, or another codec")
	case s.SaveEvery < -1:
		return bad("save_steps", "%d: want N > 0 steps, 0 (each epoch) or -1 (only when interrupted)", s.SaveEvery)
	case s.DocStride < 0:
		return bad("doc_stride", "%d: must not be negative", s.DocStride)
	case s.Output == "":
		return bad("output", "an output directory is required")
	}
	if err := s.checkTruncation(); err != nil {
		return err
	}
	for _, r := range s.ReportTo {
		if r != "tensorboard" {
			return bad("report_to", "%q: want tensorboard (metrics.jsonl is always written)", r)
		}
	}
	if err := s.Data.Validate(); err != nil {
		return fmt.Errorf("job spec: data: %w", err)
	}
	return nil
}

// checkTruncation checks truncation and head_tokens, and sets head_tokens' default.
func (s *Spec) checkTruncation() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("job spec: %s: %s", field, fmt.Sprintf(format, args...))
	}
	switch s.Truncation {
	case "", "head", "tail", "head_tail":
	default:
		return bad("truncation", "%q: want head, tail or head_tail", s.Truncation)
	}
	if s.Truncation != "" && s.Truncation != "head" && (s.Task == string(model.QA) || s.Task == string(model.NER)) {
		return bad("truncation", "%s reads a long text in windows (doc_stride), not truncated", s.Task)
	}
	if s.Truncation != "head_tail" {
		if s.HeadTokens != 0 {
			return bad("head_tokens", "only with truncation head_tail")
		}
		return nil
	}
	if s.HeadTokens == 0 {
		s.HeadTokens = s.MaxLength / 4
	}
	if s.HeadTokens < 1 || s.HeadTokens >= s.MaxLength-4 {
		return bad("head_tokens", "%d is not in [1, %d): the tail needs room too", s.HeadTokens, s.MaxLength-4)
	}
	return nil
}

// truncation is the tokenizer truncation the spec asks for; false when it leaves the
// tokenizer's own.
func (s *Spec) truncation() (tokenize.Truncation, bool) {
	switch s.Truncation {
	case "head":
		return tokenize.Truncation{}, true
	case "tail":
		return tokenize.Truncation{Left: true}, true
	case "head_tail":
		return tokenize.Truncation{Left: true, Head: s.HeadTokens}, true
	}
	return tokenize.Truncation{}, false
}
