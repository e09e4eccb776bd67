package train

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

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
// and problem_type), overriding spec.Task; the training fields are not used. A PEFT
// LoRA adapter directory (adapter_config.json) is loaded onto its base model
// (spec.BaseModel, else its base_model_name_or_path) and merged into it.
func ForEval(spec Spec, out io.Writer) (*Trainer, error) {
	dir := spec.Model
	if st, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("model directory: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("model directory: %s is a file; give the checkpoint directory that holds config.json", dir)
	}
	// A PEFT LoRA adapter directory loads its base model, then the adapter, merged.
	adapter, lora, err := model.ReadAdapterConfig(dir)
	if err != nil {
		return nil, err
	}
	base, cfgDir := "", dir
	if adapter != nil {
		if base = cmp.Or(spec.BaseModel, adapter.Base); base == "" {
			return nil, fmt.Errorf("%s: base_model_name_or_path is empty: name the base model (base_model, --base-model)", filepath.Join(dir, model.AdapterConfigFile))
		}
		if _, err := os.Stat(filepath.Join(dir, model.ConfigFile)); err != nil { // PEFT's own adapters have none
			if cfgDir, _, err = model.Resolve(base, hf.Options{}); err != nil {
				return nil, err
			}
		}
	}
	cfg, err := hf.ReadConfig(filepath.Join(cfgDir, model.ConfigFile))
	if err != nil {
		return nil, err
	}
	normalize := false
	_, stErr := os.Stat(filepath.Join(dir, model.STModulesFile))
	switch {
	case spec.Pooling != "":
		if spec.Pooling, err = model.ParsePooling(spec.Pooling); err != nil {
			return nil, fmt.Errorf("job spec: %w", err)
		}
		spec.Task = string(model.Embed) // whatever its head: TEI's --pooling
	case stErr == nil:
		// A sentence-transformers model is an embedding model whatever config.json's
		// architectures say (all-mpnet-base-v2's is MPNetForMaskedLM), as
		// sentence-transformers and TEI read it.
		spec.Task = string(model.Embed)
	default:
		if spec.Task, err = checkpointTask(cfg); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, model.ConfigFile), err)
		}
	}
	if spec.Task == string(model.Embed) && spec.Pooling == "" {
		if spec.Pooling, normalize, err = model.ReadPooling(dir); err != nil {
			return nil, err
		}
	}
	spec.Data = spec.Data.ForTask(spec.Task)
	spec.MLMProbability = cmp.Or(spec.MLMProbability, DefaultMLMProbability) // masks mlm's evaluation
	switch {
	case spec.MaxLength < 8 || spec.MaxLength > cfg.MaxLength():
		return nil, fmt.Errorf("job spec: max_length: %d is not in [8, %d] (the model's max_position_embeddings)", spec.MaxLength, cfg.MaxLength())
	case spec.BatchSize < 1:
		return nil, fmt.Errorf("job spec: batch_size: %d: must be positive", spec.BatchSize)
	}
	if err := spec.Data.Validate(); err != nil {
		return nil, fmt.Errorf("job spec: data: %w", err)
	}
	if err := spec.checkTruncation(); err != nil {
		return nil, err
	}
	switch spec.Quantize {
	case "none":
		spec.Quantize = ""
	case "", "int8":
	default:
		return nil, fmt.Errorf("job spec: quantize: %q: want int8 or none", spec.Quantize)
	}
	tk, err := newTask(spec)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	embed, mlm := spec.Task == string(model.Embed), spec.Task == string(model.MLM)
	labels := &shard.LabelSet{}
	if !embed && !mlm { // an embedding model is evaluated on text pairs, an mlm on texts
		labels, err = shard.NewLabelSet(cfg.Labels())
	}
	if err != nil {
		return nil, fmt.Errorf("%s: id2label: %w", filepath.Join(dir, model.ConfigFile), err)
	}
	tok, err := openTokenizer(spec, dir)
	if err != nil {
		return nil, err
	}
	hidden := 0 // an embedding model reads no head; the masked-LM head has no custom layer; LoRA refuses one
	if !embed && !mlm && adapter == nil {
		if hidden, err = headHidden(dir, model.CustomHeadWeight(cfg)); err != nil {
			return nil, err
		}
	}
	dev, err := model.ParseDevice(spec.Device)
	if err != nil {
		return nil, err
	}
	model.SetThreads(spec.Threads)
	model.SetTF32(spec.TF32 && dev.IsCuda())
	// Matryoshka widths are scored here (the task's); the loss stays the whole vectors'.
	if _, err := spec.Matryoshka().Check(model.Task(spec.Task), cfg.HiddenSize); err != nil {
		return nil, fmt.Errorf("job spec: %w", err)
	}
	opts := model.Options{Task: model.Task(spec.Task), NumLabels: labels.Len(), HeadHidden: hidden, HeadDropout: -1,
		Device: dev, Autocast: spec.Autocast, Pooling: spec.Pooling, LoRA: lora}
	m, rep, err := model.Pretrained(cmp.Or(base, dir), hf.Options{}, opts)
	if err != nil {
		return nil, err
	}
	var fresh []string
	if rep != nil {
		fresh = rep.Initialized
	}
	if adapter != nil {
		arep, err := m.LoadAdapter(dir)
		if err != nil {
			return nil, err
		}
		// The head comes from the adapter, or where its modules_to_save leave part out,
		// from the base checkpoint.
		fresh = slices.DeleteFunc(fresh, func(n string) bool { return !slices.Contains(arep.Initialized, n) })
		m.MergeLoRA()
	}
	if len(fresh) > 0 {
		return nil, fmt.Errorf("%s: not a fine-tuned checkpoint: it lacks %v", dir, fresh)
	}
	if spec.Quantize == "int8" {
		if err := m.Quantize(); err != nil {
			return nil, fmt.Errorf("quantize: %w", err)
		}
	}
	t := &Trainer{Spec: spec, Model: m, Tok: tok, Labels: labels, Out: out, task: tk, Normalize: normalize}
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

// checkpointTask reads the task from what transformers records: the architecture
// (<Family>ForSequenceClassification, ...), and problem_type to tell multi-label from
// single-label classification and regression. Without problem_type, one label is
// regression, transformers' rule when it computes the loss (cross-encoder rerankers
// ship so).
func checkpointTask(cfg *hf.BertConfig) (string, error) {
	family := cfg.ArchitecturePrefix()
	arch := family + "ForSequenceClassification" // what a config without architectures loads as
	if len(cfg.Architectures) > 0 {
		arch = cfg.Architectures[0]
	}
	if arch == model.MLMArchitecture(cfg) { // NomicBERT's is NomicBertForPreTraining
		return string(model.MLM), nil
	}
	switch strings.TrimPrefix(arch, family) {
	case "ForTokenClassification":
		return string(model.NER), nil
	case "ForQuestionAnswering":
		return string(model.QA), nil
	case "ForMultipleChoice":
		return string(model.Choice), nil
	case "Model": // a bare base model: sentence-transformers' and TEI's embedding models
		return string(model.Embed), nil
	case "ForMaskedLM":
		return string(model.MLM), nil
	case "ForSequenceClassification":
		switch {
		case cfg.ProblemType == "multi_label_classification":
			return string(model.MultiLabel), nil
		case cfg.ProblemType == "regression", cfg.ProblemType == "" && cfg.NumLabels() == 1:
			return string(model.Regression), nil
		}
		return string(model.Classify), nil
	}
	return "", fmt.Errorf("architectures: %s is not a fine-tuned task model (want %[2]sForSequenceClassification, %[2]sForTokenClassification, %[2]sForQuestionAnswering, %[2]sForMultipleChoice, %[2]sForMaskedLM or an embedding model's %[2]sModel; --pooling reads any checkpoint's encoder as an embedding model)", arch, family)
}

// headHidden is the width of the custom head's extra layer (train's head_hidden), which
// config.json does not record, read from the shape of its weight, named name (none when
// ""); 0 without one.
func headHidden(dir, name string) (int, error) {
	if name == "" {
		return 0, nil
	}
	f, err := safetensors.Open(filepath.Join(dir, model.SafetensorsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil // pytorch_model.bin: only the standard head
	} else if err != nil {
		return 0, err
	}
	defer f.Close()
	t, err := f.Tensor(name)
	if err != nil || len(t.Shape) != 2 {
		return 0, nil
	}
	return int(t.Shape[0]), nil
}
