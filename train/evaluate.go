package train

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/bertnode/bertnode/hf"
	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/safetensors"
	"github.com/bertnode/bertnode/shard"
)

// ForEval loads a fine-tuned checkpoint directory for Evaluate, Predict and Attention:
// spec.Model is the directory (config.json, whose id2label names the classes in id
// order; model.safetensors or pytorch_model.bin; the tokenizer files unless
// spec.Tokenizer names others). When spec.Eval is set, that file is read with spec.Data
// and encoded as the evaluation set. The checkpoint decides the task (its architecture
// and problem_type), overriding spec.Task; the training fields are not used.
func ForEval(spec Spec, out io.Writer) (*Trainer, error) {
	dir := spec.Model
	if st, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("model directory: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("model directory: %s is a file; give the checkpoint directory that holds config.json", dir)
	}
	cfg, err := hf.ReadConfig(filepath.Join(dir, model.ConfigFile))
	if err != nil {
		return nil, err
	}
	if spec.Task, err = checkpointTask(cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, model.ConfigFile), err)
	}
	switch {
	case spec.MaxLength < 8 || spec.MaxLength > cfg.MaxPositionEmbeddings:
		return nil, fmt.Errorf("job spec: max_length: %d is not in [8, %d] (the model's max_position_embeddings)", spec.MaxLength, cfg.MaxPositionEmbeddings)
	case spec.BatchSize < 1:
		return nil, fmt.Errorf("job spec: batch_size: %d: must be positive", spec.BatchSize)
	}
	if err := spec.Data.Validate(); err != nil {
		return nil, fmt.Errorf("job spec: data: %w", err)
	}
	tk, err := newTask(spec)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	labels, err := shard.NewLabelSet(cfg.Labels())
	if err != nil {
		return nil, fmt.Errorf("%s: id2label: %w", filepath.Join(dir, model.ConfigFile), err)
	}
	tok, err := openTokenizer(spec, dir)
	if err != nil {
		return nil, err
	}
	hidden, err := headHidden(dir)
	if err != nil {
		return nil, err
	}
	dev, err := model.ParseDevice(spec.Device)
	if err != nil {
		return nil, err
	}
	model.SetThreads(spec.Threads)
	opts := model.Options{Task: model.Task(spec.Task), NumLabels: labels.Len(), HeadHidden: hidden, HeadDropout: -1,
		Device: dev, Autocast: spec.Autocast}
	m, rep, err := model.Pretrained(dir, hf.Options{}, opts)
	if err != nil {
		return nil, err
	}
	if len(rep.Initialized) > 0 {
		return nil, fmt.Errorf("%s: not a fine-tuned checkpoint: it lacks %v", dir, rep.Initialized)
	}
	t := &Trainer{Spec: spec, Model: m, Tok: tok, Labels: labels, Out: out, task: tk}
	if err := t.attachTokenizer(); err != nil {
		return nil, err
	}
	if spec.Eval == "" {
		return t, nil
	}
	recs, err := readRecords(spec.Data, spec.Eval, out)
	if err != nil {
		return nil, err
	}
	if t.Eval, err = tk.encode(tok, recs, labels, spec.MaxLength); err != nil {
		return nil, err
	}
	return t, nil
}

// checkpointTask reads the task from what transformers records: the architecture,
// and problem_type to tell multi-label from single-label classification.
func checkpointTask(cfg *hf.BertConfig) (string, error) {
	arch := "BertForSequenceClassification" // what a config without architectures loads as
	if len(cfg.Architectures) > 0 {
		arch = cfg.Architectures[0]
	}
	switch arch {
	case "BertForTokenClassification":
		return string(model.NER), nil
	case "BertForQuestionAnswering":
		return string(model.QA), nil
	case "BertForSequenceClassification":
		if cfg.ProblemType == "multi_label_classification" {
			return string(model.MultiLabel), nil
		}
		if cfg.ProblemType == "regression" {
			return "", fmt.Errorf("problem_type: regression is not supported")
		}
		return string(model.Classify), nil
	}
	return "", fmt.Errorf("architectures: %s is not a fine-tuned task model (want BertForSequenceClassification, BertForTokenClassification or BertForQuestionAnswering)", arch)
}

// headHidden is the width of the custom head's extra layer (train's head_hidden), which
// config.json does not record, read from the weights' shapes; 0 without one.
func headHidden(dir string) (int, error) {
	f, err := safetensors.Open(filepath.Join(dir, model.SafetensorsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil // pytorch_model.bin: only the standard head
	} else if err != nil {
		return 0, err
	}
	defer f.Close()
	t, err := f.Tensor("head.dense.weight")
	if err != nil || len(t.Shape) != 2 {
		return 0, nil
	}
	return int(t.Shape[0]), nil
}

// Prediction is the model's answer for one text.
type Prediction struct {
	Text string `json:"text"`
	// Label is the most probable class (classify).
	Label string `json:"label,omitempty"`
	// Labels are the predicted classes: Label alone (classify), or every class whose
	// probability reaches the threshold, possibly none (multilabel).
	Labels []string `json:"labels"`
	// Probs is each class's probability: softmax over the classes (classify), or an
	// independent sigmoid per class (multilabel).
	Probs map[string]float64 `json:"probs"`
}

// Predict classifies texts (and, for multilabel, keeps the classes whose probability is
// at least threshold), Spec.BatchSize at a time.
func (t *Trainer) Predict(texts []string, threshold float64) ([]Prediction, error) {
	multi := t.Spec.Task == string(model.MultiLabel)
	if !multi && t.Spec.Task != string(model.Classify) {
		return nil, fmt.Errorf("predict: task %s is not supported (classify and multilabel are)", t.Spec.Task)
	}
	if len(texts) == 0 {
		return nil, fmt.Errorf("predict: no texts")
	}
	names := t.Labels.Names()
	n := len(names)
	out := make([]Prediction, 0, len(texts))
	exs := make([]Example, t.Spec.BatchSize)
	ptrs := make([]*Example, 0, t.Spec.BatchSize)
	probs := make([]float64, n)
	for i := 0; i < len(texts); i += t.Spec.BatchSize {
		ptrs = ptrs[:0]
		for j, text := range texts[i:min(i+t.Spec.BatchSize, len(texts))] {
			enc, err := t.Tok.Encode(text, t.Spec.MaxLength)
			if err != nil {
				return nil, fmt.Errorf("text %d: %w", i+j+1, err)
			}
			exs[j] = Example{Enc: enc, Text: text}
			ptrs = append(ptrs, &exs[j])
		}
		b, err := t.batch(ptrs)
		if err != nil {
			return nil, err
		}
		b.Labels, b.Targets = nil, nil // no gold labels: no loss
		logits, _, err := t.Model.Infer(b)
		if err != nil {
			return nil, err
		}
		for r, e := range ptrs {
			row := logits[r*n : (r+1)*n]
			p := Prediction{Text: e.Text, Probs: make(map[string]float64, n)}
			if multi {
				p.Labels = []string{}
				for k, v := range row {
					probs[k] = 1 / (1 + math.Exp(-float64(v)))
					if probs[k] >= threshold {
						p.Labels = append(p.Labels, names[k])
					}
				}
			} else {
				softmax(probs, row)
				p.Label = names[slices.Index(probs, slices.Max(probs))]
				p.Labels = []string{p.Label}
			}
			for k, name := range names {
				p.Probs[name] = probs[k]
			}
			out = append(out, p)
		}
	}
	return out, nil
}

// softmax writes the softmax of logits into dst.
func softmax(dst []float64, logits []float32) {
	top := float64(slices.Max(logits))
	var z float64
	for k, v := range logits {
		dst[k] = math.Exp(float64(v) - top)
		z += dst[k]
	}
	for k := range dst {
		dst[k] /= z
	}
}

// Attention returns text's tokens as the model sees them (word pieces, special tokens
// included, truncated to Spec.MaxLength) and every layer's attention over them,
// [layer][head][from][to].
func (t *Trainer) Attention(text string) ([]string, [][][][]float32, error) {
	enc, err := t.Tok.Encode(text, t.Spec.MaxLength)
	if err != nil {
		return nil, nil, err
	}
	b := &model.Batch{B: 1, L: enc.Len(), InputIDs: make([]int64, enc.Len()), TokenTypeIDs: make([]int64, enc.Len()),
		AttentionMask: make([]int64, enc.Len())}
	tokens := make([]string, enc.Len())
	for i, id := range enc.InputIDs {
		b.InputIDs[i], b.TokenTypeIDs[i], b.AttentionMask[i] = int64(id), int64(enc.TokenTypeIDs[i]), 1
		tokens[i] = t.Tok.Vocab().Token(int(id))
	}
	attn, err := t.Model.Attentions(b)
	return tokens, attn, err
}
