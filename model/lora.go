package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"unsafe"

	"github.com/bertnode/bertnode/internal/atomicfile"
	"github.com/bertnode/bertnode/safetensors"
	"github.com/sugarme/gotch/ts"
)

// LoRA is low-rank adaptation as Hugging Face PEFT's LoraConfig gives it: the base model
// frozen, and each targeted dense layer of the encoder computes W x + (alpha/r)·B A
// dropout(x), with A [r, in] drawn Kaiming-uniform (PEFT's init_lora_weights=True) and
// B [out, r] zeros, so training starts from the base model's outputs exactly. The task
// head (every parameter outside the base model: PEFT's modules_to_save) trains fully.
// The zero LoRA is off.
type LoRA struct {
	R       int     `yaml:"r" json:"r,omitempty"`
	Alpha   float64 `yaml:"alpha" json:"alpha,omitempty"`
	Dropout float64 `yaml:"dropout" json:"dropout,omitempty"`
	// TargetModules are matched as PEFT matches a list: a dense layer whose name is one
	// of them or ends in "." and one of them. Empty: the family's default (loraTargets).
	TargetModules []string `yaml:"target_modules" json:"target_modules,omitempty"`
	// Merge has training save the merged model (W + (alpha/r)·B·A) as a plain checkpoint
	// instead of an adapter; the model itself does not read it.
	Merge bool `yaml:"merge" json:"merge,omitempty"`
}

// On says whether any field is set: LoRA is asked for.
func (l LoRA) On() bool {
	return l.R != 0 || l.Alpha != 0 || l.Dropout != 0 || len(l.TargetModules) > 0 || l.Merge
}

// Check names the first bad field of an asked-for LoRA.
func (l LoRA) Check() error {
	switch {
	case l.R <= 0:
		return fmt.Errorf("lora.r: %d: the rank must be positive (PEFT's default is 8)", l.R)
	case !(l.Alpha > 0) || math.IsInf(l.Alpha, 1):
		return fmt.Errorf("lora.alpha: %v: must be positive (the update is scaled by alpha/r)", l.Alpha)
	case !(l.Dropout >= 0 && l.Dropout < 1):
		return fmt.Errorf("lora.dropout: %v is not in [0, 1)", l.Dropout)
	}
	for _, t := range l.TargetModules {
		if t == "" {
			return fmt.Errorf("lora.target_modules: an empty name")
		}
	}
	return nil
}

// loraTargets are the default target modules per model_type: PEFT's
// TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING where it has one (bert, roberta,
// xlm-roberta, electra, deberta-v2); PEFT has none for the others, which get their
// attention's query and value projections likewise (ModernBERT's and NomicBERT's fused
// Wqkv, MPNet's q and v). The adapter's config records the targets, so PEFT loads either.
var loraTargets = map[string][]string{
	"bert": {"query", "value"}, "roberta": {"query", "value"}, "xlm-roberta": {"query", "value"},
	"electra": {"query", "value"}, "deberta-v2": {"query_proj", "value_proj"},
	"camembert": {"query", "value"}, "albert": {"query", "value"}, "distilbert": {"q_lin", "v_lin"},
	"modernbert": {"Wqkv"}, "mpnet": {"q", "v"}, "nomic_bert": {"Wqkv"},
}

// loraState is a model's LoRA: its configuration and the dense layers it wraps.
type loraState struct {
	cfg     LoRA
	scale   float64
	wrapped []*linear       // in declaration order
	hit     map[string]bool // targets that matched a layer
	names   map[string]bool // the last part of every dense layer's name, for errors
	merged  bool            // MergeLoRA has run: inference only
	// drop is the training forward's dropper while it runs (nil otherwise), for the
	// adapters' input dropout.
	drop *dropper
}

// loraAdapter is one wrapped layer's A and B.
type loraAdapter struct {
	a, b *Param
	s    *loraState
}

// newLoRA checks opts' LoRA against the model and makes its state; nil when off.
func newLoRA(modelType string, opts Options) (*loraState, error) {
	l := opts.LoRA
	if !l.On() {
		return nil, nil
	}
	if err := l.Check(); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	switch {
	case opts.Task == MLM:
		return nil, fmt.Errorf("model: lora: task mlm is not supported (its decoder is tied to the frozen embeddings); fine-tune a task head")
	case opts.HeadHidden > 0:
		return nil, fmt.Errorf("model: lora: head_hidden's custom head is no module of transformers' model, so PEFT could not load the adapter")
	case opts.Freeze != Freeze{}:
		return nil, fmt.Errorf("model: lora: freeze does not apply: LoRA freezes the whole base model")
	}
	if len(l.TargetModules) == 0 {
		l.TargetModules = loraTargets[modelType]
		if l.TargetModules == nil {
			return nil, fmt.Errorf("model: lora.target_modules: none given, and model_type %q has no default", modelType)
		}
	}
	return &loraState{cfg: l, scale: l.Alpha / float64(l.R), hit: map[string]bool{}, names: map[string]bool{}}, nil
}

// loraWrap gives the dense layers of one encoder layer that the targets match their A
// and B, declared right after the layer so that the buffer keeps backward's order.
func (m *Model) loraWrap(dense []*linear) {
	s := m.lora
	if s == nil {
		return
	}
	for _, l := range dense {
		module := strings.TrimSuffix(l.w.Name, ".weight")
		s.names[module[strings.LastIndexByte(module, '.')+1:]] = true
		matched := false
		for _, t := range s.cfg.TargetModules {
			if module == t || strings.HasSuffix(module, "."+t) {
				s.hit[t], matched = true, true
			}
		}
		if !matched {
			continue
		}
		out, in := l.w.Shape[0], l.w.Shape[1]
		a := m.Params.add(module+".lora_A.weight", []int64{int64(s.cfg.R), in}, InitKaimingUniform)
		b := m.Params.add(module+".lora_B.weight", []int64{out, int64(s.cfg.R)}, InitZeros)
		b.Decay = true // a weight, zeros at first: transformers' Trainer decays it
		l.lora = &loraAdapter{a: a, b: b, s: s}
		s.wrapped = append(s.wrapped, l)
	}
}

// checkTargets reports a target that matched no dense layer, naming those there are.
func (s *loraState) checkTargets(modelType string) error {
	for _, t := range s.cfg.TargetModules {
		if !s.hit[t] {
			return fmt.Errorf("model: lora.target_modules: %q matches none of %s's encoder dense layers: %s",
				t, modelType, strings.Join(slices.Sorted(maps.Keys(s.names)), ", "))
		}
	}
	return nil
}

// trainable marks the adapters trainable, after the base model was frozen.
func (s *loraState) trainable() {
	for _, l := range s.wrapped {
		l.lora.a.Trainable, l.lora.b.Trainable = true, true
	}
}

// add returns y + scale·B A dropout(x), taking ownership of y. The dropout draws at
// x's shape: where the last layer computes its queries for the first token alone
// (layer.fwd), the query adapter's noise is that row's, not a slice of the whole
// layer's as the layer's own dropouts are; each path is deterministic all the same.
func (a *loraAdapter) add(y, x *ts.Tensor) *ts.Tensor {
	xd := x
	if d := a.s.drop; d != nil && a.s.cfg.Dropout > 0 {
		xd = d.apply(x, a.s.cfg.Dropout)
	}
	h := ts.MustLinear(xd, a.a.T, undefined)
	if xd != x {
		xd.MustDrop()
	}
	u := ts.MustLinear(h, a.b.T, undefined).MustMulScalar(ts.FloatScalar(a.s.scale), true)
	h.MustDrop()
	out := y.MustAdd(u, true)
	u.MustDrop()
	return out
}

// delta is scale·B·A, the adapter's update of the weight.
func (a *loraAdapter) delta() *ts.Tensor {
	return a.b.T.MustMm(a.a.T, false).MustMulScalar(ts.FloatScalar(a.s.scale), true)
}

// isLoRAParam says whether a parameter is an adapter's A or B.
func isLoRAParam(name string) bool {
	return strings.HasSuffix(name, ".lora_A.weight") || strings.HasSuffix(name, ".lora_B.weight")
}

// LoRA returns the model's LoRA configuration, its target modules resolved; the zero
// LoRA when it has none.
func (m *Model) LoRA() LoRA {
	if m.lora == nil {
		return LoRA{}
	}
	return m.lora.cfg
}

// MergeLoRA folds each adapter into its layer's weight, W += (alpha/r)·B·A, for
// inference: the forward is then the base model's, without the adapters' matmuls. The
// model then serves predictions only: Forward refuses to train it.
func (m *Model) MergeLoRA() {
	if m.lora == nil || m.lora.merged {
		return
	}
	noGrad(func() {
		for _, l := range m.lora.wrapped {
			d := l.lora.delta()
			l.w.T.MustAdd_(d)
			d.MustDrop()
			l.lora = nil
		}
	})
	m.lora.merged = true
}

// mergedFlat is the flat weights on the host with the adapters merged into their
// layers' weights as MergeLoRA merges them (the same float32 sums), the model left as
// it is.
func (m *Model) mergedFlat() []float32 {
	flat := m.hostFlat()
	if m.lora == nil || m.lora.merged {
		return flat
	}
	flat = slices.Clone(flat) // on the CPU hostFlat is the model's own memory
	noGrad(func() {
		for _, l := range m.lora.wrapped {
			d := l.lora.delta()
			buf := make([]float32, l.w.Numel)
			readFloats(d, buf)
			d.MustDrop()
			w := flat[l.w.Offset : l.w.Offset+l.w.Numel]
			for i, v := range buf {
				w[i] += v
			}
		}
	})
	return flat
}

// PEFT's file names, and the prefix its PeftModel gives the wrapped model's names.
const (
	AdapterConfigFile = "adapter_config.json"
	AdapterFile       = "adapter_model.safetensors"
	peftPrefix        = "base_model.model."
)

// AdapterConfig is PEFT's adapter_config.json for LoRA, the fields bertnode writes and
// reads; PEFT fills in its defaults for the rest.
type AdapterConfig struct {
	PeftType      string         `json:"peft_type"`
	TaskType      *string        `json:"task_type"`
	Base          string         `json:"base_model_name_or_path"`
	R             int            `json:"r"`
	Alpha         float64        `json:"lora_alpha"`
	Dropout       float64        `json:"lora_dropout"`
	TargetModules any            `json:"target_modules"` // PEFT allows a regex string; bertnode a list
	ModulesToSave []string       `json:"modules_to_save"`
	Bias          string         `json:"bias"`
	FanInFanOut   bool           `json:"fan_in_fan_out"`
	InferenceMode bool           `json:"inference_mode"`
	InitWeights   bool           `json:"init_lora_weights"`
	UseRSLoRA     bool           `json:"use_rslora"`
	UseDoRA       bool           `json:"use_dora"`
	RankPattern   map[string]any `json:"rank_pattern"`
	AlphaPattern  map[string]any `json:"alpha_pattern"`
}

// peftTask is PEFT's TaskType for the model's task; nil (the bare PeftModel) where PEFT
// has none, as for multiple choice.
func (m *Model) peftTask() *string {
	var t string
	switch {
	case m.Opts.Task.Sequence():
		t = "SEQ_CLS"
	case m.Opts.Task == NER:
		t = "TOKEN_CLS"
	case m.Opts.Task == QA:
		t = "QUESTION_ANS"
	case m.Opts.Task == Embed:
		t = "FEATURE_EXTRACTION"
	default:
		return nil
	}
	return &t
}

// modulesToSave are the head's top-level modules (classifier, pre_classifier, pooler...):
// every trainable parameter that is no adapter's, under transformers' names.
func (m *Model) modulesToSave() []string {
	var mods []string
	for _, p := range m.Params.List() {
		if p.Trainable && !isLoRAParam(p.Name) {
			name := m.savedName(p.Name)
			if mod, _, _ := strings.Cut(name, "."); !slices.Contains(mods, mod) {
				mods = append(mods, mod)
			}
		}
	}
	slices.Sort(mods)
	return mods
}

// SaveAdapter writes the model as a PEFT LoRA adapter directory, which
// PeftModel.from_pretrained(base, dir) loads onto base: adapter_config.json and
// adapter_model.safetensors with the adapters' A and B and the head (modules_to_save)
// under the names PEFT's get_peft_model_state_dict gives them, and config.json with the
// labels for bertnode's eval, predict and serve. base is the base model's directory or
// hub name (base_model_name_or_path).
func (m *Model) SaveAdapter(dir string, labels []string, base string) error {
	if m.lora == nil || m.lora.merged {
		return fmt.Errorf("model: no LoRA adapter to save")
	}
	if err := m.saveConfig(dir, labels, SaveOptions{}); err != nil {
		return err
	}
	c := m.lora.cfg
	cfg := AdapterConfig{
		PeftType: "LORA", TaskType: m.peftTask(), Base: base, R: c.R, Alpha: c.Alpha, Dropout: c.Dropout,
		TargetModules: c.TargetModules, ModulesToSave: m.modulesToSave(), Bias: "none", InferenceMode: true,
		InitWeights: true, RankPattern: map[string]any{}, AlphaPattern: map[string]any{},
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, AdapterConfigFile), append(b, '\n'), 0o644); err != nil {
		return err
	}
	// The tensors are views of the model's memory, which gotch's finalizers free once
	// the model is unreachable.
	defer runtime.KeepAlive(m)
	flat := m.hostFlat()
	var tensors []safetensors.Tensor
	for _, p := range m.Params.List() {
		if !p.Trainable {
			continue
		}
		data := flat[p.Offset : p.Offset+p.Numel]
		tensors = append(tensors, safetensors.Tensor{
			Info: safetensors.Info{Name: peftPrefix + m.savedName(p.Name), DType: safetensors.F32, Shape: p.Shape},
			Data: unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(data))), 4*len(data)),
		})
	}
	return safetensors.Save(filepath.Join(dir, AdapterFile), tensors, map[string]string{"format": "pt"})
}

// ReadAdapterConfig reads dir's adapter_config.json as a LoRA configuration; nil, nil
// when dir has none. What bertnode cannot apply as PEFT would is an error naming the
// field.
func ReadAdapterConfig(dir string) (*AdapterConfig, LoRA, error) {
	path := filepath.Join(dir, AdapterConfigFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, LoRA{}, nil
	}
	if err != nil {
		return nil, LoRA{}, err
	}
	var c AdapterConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, LoRA{}, fmt.Errorf("%s: %w", path, err)
	}
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%s: %s: %s", path, field, fmt.Sprintf(format, args...))
	}
	var targets []string
	switch t := c.TargetModules.(type) {
	case []any:
		for _, v := range t {
			s, ok := v.(string)
			if !ok {
				return nil, LoRA{}, bad("target_modules", "%v is not a module name", v)
			}
			targets = append(targets, s)
		}
	default:
		return nil, LoRA{}, bad("target_modules", "%v: want a list of module names (a regex is not supported)", c.TargetModules)
	}
	switch {
	case c.PeftType != "LORA":
		return nil, LoRA{}, bad("peft_type", "%q: only LORA adapters load", c.PeftType)
	case c.Bias != "" && c.Bias != "none":
		return nil, LoRA{}, bad("bias", "%q: only none (no trained biases) is supported", c.Bias)
	case c.FanInFanOut:
		return nil, LoRA{}, bad("fan_in_fan_out", "true is for GPT-2's Conv1D layers, which these models do not have")
	case c.UseRSLoRA:
		return nil, LoRA{}, bad("use_rslora", "rank-stabilized scaling (alpha/sqrt(r)) is not supported")
	case c.UseDoRA:
		return nil, LoRA{}, bad("use_dora", "DoRA is not supported")
	case len(c.RankPattern) > 0 || len(c.AlphaPattern) > 0:
		return nil, LoRA{}, bad("rank_pattern", "per-module ranks and alphas are not supported")
	}
	l := LoRA{R: c.R, Alpha: c.Alpha, Dropout: c.Dropout, TargetModules: targets}
	if err := l.Check(); err != nil {
		return nil, LoRA{}, fmt.Errorf("%s: %w", path, err)
	}
	return &c, l, nil
}

// LoadAdapter copies a PEFT adapter's tensors (dir's adapter_model.safetensors) into the
// adapters and the head. Every adapter's A and B must be there; head parameters it lacks
// (PEFT's default modules_to_save leaves out DistilBERT's pre_classifier, DeBERTa's
// pooler) keep their values and are reported as Initialized. Nothing is copied unless
// everything fits.
func (m *Model) LoadAdapter(dir string) (*LoadReport, error) {
	if m.lora == nil || m.lora.merged {
		return nil, fmt.Errorf("model: no LoRA adapters to load %s into", dir)
	}
	path := filepath.Join(dir, AdapterFile)
	tensors, err := readTensors(path, func(string) bool { return false })
	if err != nil {
		return nil, err
	}
	ps := m.Params
	has := func(n string) bool { return ps.Get(n) != nil }
	mis := &MismatchError{File: path}
	found := map[string]hostTensor{}
	for _, raw := range slices.Sorted(maps.Keys(tensors)) {
		t := tensors[raw]
		name := canonicalName(strings.TrimPrefix(raw, peftPrefix), m.fam.base, has)
		switch p := ps.Get(name); {
		case p == nil || !p.Trainable:
			mis.Unexpected = append(mis.Unexpected, raw)
		case !equalShape(p.Shape, t.shape):
			mis.Shapes = append(mis.Shapes, fmt.Sprintf("%s: adapter %v, model %v", raw, t.shape, p.Shape))
		default:
			found[name] = t
		}
	}
	rep := &LoadReport{Loaded: len(found)}
	for _, p := range ps.List() {
		if _, ok := found[p.Name]; !ok && p.Trainable {
			if isLoRAParam(p.Name) {
				mis.Missing = append(mis.Missing, peftPrefix+m.savedName(p.Name))
			} else {
				rep.Initialized = append(rep.Initialized, p.Name)
			}
		}
	}
	if len(mis.Missing)+len(mis.Unexpected)+len(mis.Shapes) > 0 {
		return nil, mis
	}
	m.copyIn(found)
	return rep, nil
}
