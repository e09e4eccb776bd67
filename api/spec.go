package api

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/bertnode/bertnode/shard"
	"gopkg.in/yaml.v3"
)

// JobSpec is the part of a job spec (the YAML `bertnode train` reads) that the
// coordinator and the node's step loop use. Unknown fields are left to train.LoadSpec,
// which the CLI and the BERT replica run on the same text.
type JobSpec struct {
	Task      string     `yaml:"task"`
	Train     string     `yaml:"train"`
	Eval      string     `yaml:"eval"`
	EvalSplit float64    `yaml:"eval_split"`
	Data      shard.Spec `yaml:"data"`
	Model     string     `yaml:"model"`
	Tokenizer string     `yaml:"tokenizer"`
	// Distill.Teacher is a checkpoint the nodes fetch as they do the model.
	Distill struct {
		Teacher string `yaml:"teacher"`
	} `yaml:"distill"`

	Seed      int64    `yaml:"seed"`
	BatchSize int      `yaml:"batch_size"`
	GradAccum int      `yaml:"grad_accum"`
	Epochs    float64  `yaml:"epochs"`
	MaxSteps  int      `yaml:"max_steps"`
	LR        float64  `yaml:"lr"`
	ClipNorm  float64  `yaml:"clip_norm"`
	EvalEvery int      `yaml:"eval_steps"`
	SaveEvery int      `yaml:"save_steps"`
	Keep      int      `yaml:"keep_checkpoints"`
	Patience  int      `yaml:"patience"`
	Metric    string   `yaml:"metric"`
	ReportTo  []string `yaml:"report_to"` // tensorboard: event files beside metrics.jsonl

	Cluster ClusterSpec `yaml:"cluster"`
}

// MaxBatch bounds batch_size and grad_accum, and MaxEpochs epochs, so that the global
// batch and the step counts computed from them cannot overflow.
const (
	MaxBatch  = 1 << 20
	MaxEpochs = 1e6
)

// ParseSpec reads a job spec's YAML text over the same defaults as train.Defaults
// (a test in train keeps the two in step) and checks the fields the cluster relies on.
func ParseSpec(text string) (JobSpec, error) {
	s := JobSpec{Task: "classify", Model: "tiny", Seed: 42, BatchSize: 32, GradAccum: 1, Epochs: 3, LR: 5e-5, ClipNorm: 1, Keep: 2}
	// An empty text (or only comments) is an empty spec, which then lacks its train file.
	if err := yaml.NewDecoder(bytes.NewReader([]byte(text))).Decode(&s); err != nil && !errors.Is(err, io.EOF) {
		return s, fmt.Errorf("job spec: %w", err)
	}
	if s.Metric == "" {
		s.Metric = DefaultMetric(s.Task)
	}
	s.Data = s.Data.ForTask(s.Task)
	s.Cluster = s.Cluster.WithDefaults()
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("job spec: %s: %s", field, fmt.Sprintf(format, args...))
	}
	switch {
	case s.Train == "":
		return s, bad("train", "a training file is required")
	case !(s.EvalSplit >= 0 && s.EvalSplit < 1): // NaN too
		return s, bad("eval_split", "%v is not in [0, 1)", s.EvalSplit)
	case s.BatchSize < 1:
		return s, bad("batch_size", "%d: must be positive", s.BatchSize)
	case s.BatchSize > MaxBatch:
		return s, bad("batch_size", "%d is more than %d", s.BatchSize, MaxBatch)
	case s.GradAccum < 1:
		return s, bad("grad_accum", "%d: must be positive", s.GradAccum)
	case s.GradAccum > MaxBatch:
		return s, bad("grad_accum", "%d is more than %d", s.GradAccum, MaxBatch)
	case s.Epochs <= 0 && s.MaxSteps <= 0:
		return s, bad("epochs", "set epochs or max_steps")
	case !(s.Epochs <= MaxEpochs): // NaN and infinity too
		return s, bad("epochs", "%v is more than %g", s.Epochs, float64(MaxEpochs))
	case s.SaveEvery < -1:
		return s, bad("save_steps", "%d: want N > 0 steps, 0 (each epoch) or -1 (only at the end)", s.SaveEvery)
	}
	if err := s.Data.Validate(); err != nil {
		return s, fmt.Errorf("job spec: data: %w", err)
	}
	return s, s.Cluster.Validate()
}

// DefaultMetric is what the best checkpoint and early stopping watch for a task when
// the spec names no metric: run_glue's and seqeval's headline scores, and for
// regression (STS-B) Spearman's rank correlation.
func DefaultMetric(task string) string {
	return map[string]string{"classify": "f1_macro", "multilabel": "f1_micro", "ner": "f1", "qa": "f1", "regression": "spearman", "embed": "mrr_at_10", "choice": "accuracy", "mlm": "perplexity"}[task]
}

// StepSeed is the random seed of a rank's step (0-based): the node and bertnode train
// seed libtorch's generator with it before each step's forward passes, so dropout's
// masks depend only on (seed, step, rank): a resumed or recovered job draws the same
// masks as an uninterrupted one with the same ranks, and one node the same as train.
func StepSeed(seed, step int64, rank int) int64 {
	x := uint64(seed) ^ uint64(step)*0x9E3779B97F4A7C15 ^ uint64(rank+1)*0xBF58476D1CE4E5B9
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
	x = (x ^ (x >> 27)) * 0x94D049BB133111EB
	return int64((x ^ (x >> 31)) >> 1)
}

// GlobalBatch is the records one optimizer step trains on, with ranks nodes in the
// ring: batch_size × grad_accum, times the ranks when the batch shrinks with them.
func (s JobSpec) GlobalBatch(ranks int) int {
	b := s.BatchSize * s.GradAccum
	if s.Cluster.Batch == "shrink" {
		b *= ranks
	}
	return b
}

// LRScale is the factor on the learning rate with ranks nodes: 1 for a constant
// global batch; ranks/nodes when it shrinks (the linear scaling rule).
func (s JobSpec) LRScale(ranks int) float64 {
	if s.Cluster.Batch == "shrink" {
		return float64(ranks) / float64(s.Cluster.Nodes)
	}
	return 1
}

// StepsPerEpoch is the optimizer steps of one epoch over records training records at
// the job's full size.
func (s JobSpec) StepsPerEpoch(records int) int64 {
	b := s.GlobalBatch(s.Cluster.Nodes)
	return max(1, int64((records+b-1)/b))
}

// TotalSteps is the length of the run: max_steps, else epochs × StepsPerEpoch.
func (s JobSpec) TotalSteps(records int) int64 {
	if s.MaxSteps > 0 {
		return int64(s.MaxSteps)
	}
	return int64(math.Ceil(s.Epochs * float64(s.StepsPerEpoch(records))))
}

// PredictSpec is a predict job's spec (bertnode infer writes it; kind: predict): the
// model, the input file read with Data as the model's task reads it, and how the nodes
// run the model, in the fields and with the meanings of bertnode predict's flags.
type PredictSpec struct {
	Kind  string     `yaml:"kind"`  // KindPredict
	Task  string     `yaml:"task"`  // the model's, as the CLI read it: it decides how Input is read
	Model string     `yaml:"model"` // blob:<sha256>: a checkpoint directory packed as a tar
	Input string     `yaml:"input"` // blob:<sha256>
	Data  shard.Spec `yaml:"data"`

	MaxLength      int     `yaml:"max_length"`
	Padding        string  `yaml:"padding"`
	BatchSize      int     `yaml:"batch_size"`
	MixedPrecision string  `yaml:"mixed_precision"`
	Quantize       string  `yaml:"quantize"`
	Threshold      float64 `yaml:"threshold"`   // multilabel
	TopK           int     `yaml:"top_k"`       // mlm
	DocStride      int     `yaml:"doc_stride"`  // qa
	AllowEmpty     bool    `yaml:"allow_empty"` // qa
	Pooling        string  `yaml:"pooling"`     // embed: read any checkpoint as an embedding model
	Normalize      bool    `yaml:"normalize"`   // embed
	// TruncateDim (embed) keeps each vector's first dimensions; 0: all. Left out when 0,
	// so that nodes from before it read the specs that do not use it.
	TruncateDim int `yaml:"truncate_dim,omitempty"`
	// Lease is how long a node may take over a unit before another may take it
	// (default 5m).
	Lease Duration `yaml:"lease"`

	Cluster ClusterSpec `yaml:"cluster"` // nodes, block_records, data
}

// PredictTasks are the tasks a predict job runs: every task, as bertnode predict reads
// a data file for it (an embedding model embeds single texts).
var PredictTasks = []string{"classify", "multilabel", "regression", "ner", "qa", "choice", "embed", "mlm"}

// SpecKind is the kind: field of a job spec's text ("" for a training spec).
func SpecKind(text string) string {
	var k struct {
		Kind string `yaml:"kind"`
	}
	yaml.Unmarshal([]byte(text), &k) // a bad spec is a training spec, which says what is wrong
	return k.Kind
}

// ParsePredictSpec reads a predict job's spec and checks it; its errors name the field.
func ParsePredictSpec(text string) (PredictSpec, error) {
	s := PredictSpec{}
	dec := yaml.NewDecoder(bytes.NewReader([]byte(text)))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil && !errors.Is(err, io.EOF) {
		return s, fmt.Errorf("predict spec: %w", err)
	}
	if s.Lease == 0 {
		s.Lease = Duration(5 * time.Minute)
	}
	s.Data = s.Data.ForPredict(s.Task)
	s.Cluster = s.Cluster.WithDefaults()
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("predict spec: %s: %s", field, fmt.Sprintf(format, args...))
	}
	switch {
	case s.Kind != KindPredict:
		return s, bad("kind", "%q: want %s", s.Kind, KindPredict)
	case !slices.Contains(PredictTasks, s.Task):
		return s, bad("task", "%q: want one of %s", s.Task, strings.Join(PredictTasks, ", "))
	case s.Model == "":
		return s, bad("model", "a model is required")
	case s.Input == "":
		return s, bad("input", "an input file is required")
	case s.BatchSize < 1 || s.BatchSize > MaxBatch:
		return s, bad("batch_size", "%d is not in [1, %d]", s.BatchSize, MaxBatch)
	case s.Cluster.BlockRecords%s.BatchSize != 0:
		return s, bad("cluster.block_records", "%d is not a multiple of batch_size %d: blocks must cut the input where bertnode predict's batches do", s.Cluster.BlockRecords, s.BatchSize)
	case s.Lease < Duration(time.Second):
		return s, bad("lease", "%v is too short (at least 1s)", s.Lease)
	case s.TruncateDim < 0:
		return s, bad("truncate_dim", "%d: want a positive width, or 0 for whole vectors", s.TruncateDim)
	case s.TruncateDim > 0 && s.Task != "embed":
		return s, bad("truncate_dim", "cuts an embedding model's vectors; this job's task is %s", s.Task)
	}
	if err := s.Data.Validate(); err != nil {
		return s, fmt.Errorf("predict spec: data: %w", err)
	}
	return s, s.Cluster.Validate()
}
