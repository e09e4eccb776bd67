package model

import (
	"fmt"
	"math"
	"runtime"

	"github.com/bertnode/bertnode/hf"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Task is what the head on top of the encoder does.
type Task string

const (
	Classify   Task = "classify"   // one label per sequence: softmax + cross-entropy
	MultiLabel Task = "multilabel" // any number of labels per sequence: sigmoid + BCE-with-logits
	NER        Task = "ner"        // one label per token: cross-entropy, -100 ignored
	QA         Task = "qa"         // extractive QA: start and end logits per token
)

// ParseTask checks a task name.
func ParseTask(s string) (Task, error) {
	switch t := Task(s); t {
	case Classify, MultiLabel, NER, QA:
		return t, nil
	}
	return "", fmt.Errorf("task %q: want classify, multilabel, ner or qa", s)
}

// Freeze says which parameters do not train.
type Freeze struct {
	Embeddings bool `yaml:"embeddings" json:"embeddings"`
	Layers     int  `yaml:"layers" json:"layers"` // the first N encoder layers
	Base       bool `yaml:"base" json:"base"`     // the whole encoder: only the head trains
}

// Options shape a model beyond its config.json.
type Options struct {
	Task      Task
	NumLabels int // classes (classify, multilabel, ner); QA has 2 outputs
	// HeadHidden > 0 puts a dense layer of that width (GELU, dropout) under the output
	// layer: the custom head. Its parameters are named head.*.
	HeadHidden int
	// HeadDropout is the dropout before the output layer; < 0 means the config's
	// classifier_dropout, else hidden_dropout_prob, as transformers does.
	HeadDropout float64
	Freeze      Freeze
	Device      gotch.Device // the zero Device is the CPU
	// ClassWeights weight the cross-entropy per class (classify, ner) or are the
	// positive weights of BCE (multilabel); empty means unweighted.
	ClassWeights []float32
	// Autocast runs the forward in "bf16" or "fp16" on CUDA (mixed precision); "" is fp32.
	Autocast string
}

// Model is a BERT encoder with one task head.
type Model struct {
	Config *hf.BertConfig
	Opts   Options
	Params *Params

	emb    embeddings
	layers []layer
	pooler *linear // nil for token-level tasks, which transformers builds without one
	head   head

	act          func(*ts.Tensor) *ts.Tensor // the feed-forward activation, config's hidden_act
	classWeights *ts.Tensor
	posIDs       *ts.Tensor // 0..max_position-1, sliced per batch
}

type linear struct{ w, b *Param }

func (l *linear) fwd(x *ts.Tensor) *ts.Tensor { return ts.MustLinear(x, l.w.T, l.b.T) }

type layerNorm struct {
	w, b *Param
	eps  float64
}

func (n *layerNorm) fwd(x *ts.Tensor) *ts.Tensor {
	return ts.MustLayerNorm(x, n.w.Shape, n.w.T, n.b.T, n.eps, true)
}

type embeddings struct {
	word, pos, typ *Param
	norm           layerNorm
}

type layer struct {
	q, k, v, attnOut linear
	attnNorm         layerNorm
	inter, out       linear
	outNorm          layerNorm
}

type head struct {
	hidden *linear // the custom head's extra layer, or nil
	out    linear
	drop   float64
}

// New builds a model with freshly initialised weights (seed libtorch first with
// ManualSeed for reproducible ones); LoadCheckpoint then overwrites them.
func New(cfg *hf.BertConfig, opts Options) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Task == "" {
		opts.Task = Classify
	}
	if opts.Device == (gotch.Device{}) { // gotch aborts the process on a nameless device
		opts.Device = gotch.CPU
	}
	if opts.Task == QA {
		opts.NumLabels = 2
	}
	if opts.NumLabels < 1 {
		return nil, fmt.Errorf("model: %s needs at least one label", opts.Task)
	}
	if len(opts.ClassWeights) > 0 && len(opts.ClassWeights) != opts.NumLabels {
		return nil, fmt.Errorf("model: %d class weights for %d labels", len(opts.ClassWeights), opts.NumLabels)
	}
	if opts.Freeze.Layers > cfg.NumHiddenLayers {
		return nil, fmt.Errorf("model: cannot freeze %d layers of %d", opts.Freeze.Layers, cfg.NumHiddenLayers)
	}
	switch opts.Autocast {
	case "", "bf16", "fp16":
	default:
		return nil, fmt.Errorf("model: autocast %q: want bf16, fp16 or none", opts.Autocast)
	}
	if opts.Autocast != "" && !opts.Device.IsCuda() {
		return nil, fmt.Errorf("model: mixed precision (%s) needs a CUDA device", opts.Autocast)
	}
	act, err := activation(cfg.HiddenAct)
	if err != nil {
		return nil, err
	}
	m := &Model{Config: cfg, Opts: opts, Params: newParams(opts.Device), act: act}
	m.declare()
	var frozen []string
	if opts.Freeze.Embeddings || opts.Freeze.Base {
		frozen = append(frozen, "bert.embeddings.")
	}
	nl := opts.Freeze.Layers
	if opts.Freeze.Base {
		nl = cfg.NumHiddenLayers
		frozen = append(frozen, "bert.pooler.")
	}
	for i := 0; i < nl; i++ {
		frozen = append(frozen, fmt.Sprintf("bert.encoder.layer.%d.", i))
	}
	m.Params.freeze(frozen)
	m.Params.build(cfg.InitializerRange)
	if len(opts.ClassWeights) > 0 {
		m.classWeights = ts.MustOfSlice(opts.ClassWeights).MustTo(opts.Device, true)
	}
	pos := make([]int64, cfg.MaxPositionEmbeddings)
	for i := range pos {
		pos[i] = int64(i)
	}
	m.posIDs = ts.MustOfSlice(pos).MustTo(opts.Device, true)
	return m, nil
}

// declare names every parameter as transformers does, so checkpoints map one to one.
func (m *Model) declare() {
	c, ps := m.Config, m.Params
	h, inter := int64(c.HiddenSize), int64(c.IntermediateSize)
	lin := func(name string, out, in int64) linear {
		return linear{ps.add(name+".weight", []int64{out, in}, InitNormal), ps.add(name+".bias", []int64{out}, InitZeros)}
	}
	norm := func(name string) layerNorm {
		return layerNorm{ps.add(name+".weight", []int64{h}, InitOnes), ps.add(name+".bias", []int64{h}, InitZeros), c.LayerNormEps}
	}
	e := &m.emb
	e.word = ps.add("bert.embeddings.word_embeddings.weight", []int64{int64(c.VocabSize), h}, InitNormal)
	e.word.PadRow = int64(c.PadTokenID)
	e.pos = ps.add("bert.embeddings.position_embeddings.weight", []int64{int64(c.MaxPositionEmbeddings), h}, InitNormal)
	e.typ = ps.add("bert.embeddings.token_type_embeddings.weight", []int64{int64(c.TypeVocabSize), h}, InitNormal)
	e.norm = norm("bert.embeddings.LayerNorm")
	for i := 0; i < c.NumHiddenLayers; i++ {
		p := fmt.Sprintf("bert.encoder.layer.%d.", i)
		m.layers = append(m.layers, layer{
			q: lin(p+"attention.self.query", h, h), k: lin(p+"attention.self.key", h, h),
			v: lin(p+"attention.self.value", h, h), attnOut: lin(p+"attention.output.dense", h, h),
			attnNorm: norm(p + "attention.output.LayerNorm"),
			inter:    lin(p+"intermediate.dense", inter, h), out: lin(p+"output.dense", h, inter),
			outNorm: norm(p + "output.LayerNorm"),
		})
	}
	if m.Opts.Task == Classify || m.Opts.Task == MultiLabel {
		pl := lin("bert.pooler.dense", h, h)
		m.pooler = &pl
	}
	m.head.drop = m.Opts.HeadDropout
	if m.head.drop < 0 {
		m.head.drop = c.HiddenDropoutProb
		if c.ClassifierDropout != nil {
			m.head.drop = *c.ClassifierDropout
		}
	}
	in := h
	if m.Opts.HeadHidden > 0 {
		hl := lin("head.dense", int64(m.Opts.HeadHidden), h)
		m.head.hidden = &hl
		in = int64(m.Opts.HeadHidden)
	}
	outName := "classifier"
	if m.Opts.Task == QA {
		outName = "qa_outputs"
	}
	m.head.out = lin(outName, int64(m.Opts.NumLabels), in)
}

// Batch is one padded batch, row-major [B, L] for the token inputs.
type Batch struct {
	B, L          int
	InputIDs      []int64
	TokenTypeIDs  []int64 // nil means all zeros
	AttentionMask []int64 // 1 for real tokens, 0 for padding
	// Labels: classify [B] class ids; ner [B*L] with -100 for ignored tokens;
	// qa [2*B] start positions then end positions. Nil for inference.
	Labels []int64
	// Targets: multilabel [B*NumLabels] in {0, 1}. Nil for inference.
	Targets []float32
}

// Output is what a forward pass returns. The caller drops the tensors it keeps.
type Output struct {
	Logits *ts.Tensor // classify/multilabel [B, N]; ner [B, L, N]; qa [B, L, 2]
	Loss   *ts.Tensor // scalar; nil when the batch has no labels
	// Attentions per layer [B, heads, L, L], when asked for.
	Attentions []*ts.Tensor
}

// Forward runs the model. train enables dropout; attentions keeps every layer's
// attention probabilities for inspection.
func (m *Model) Forward(b *Batch, train, attentions bool) (*Output, error) {
	runtime.LockOSThread() // each op's error is read back on the thread that ran it
	defer runtime.UnlockOSThread()
	if err := m.checkBatch(b); err != nil {
		return nil, err
	}
	if m.Opts.Autocast != "" {
		setAutocast(m.Opts.Autocast)
		defer setAutocast("")
	}
	dev := m.Opts.Device
	shape := []int64{int64(b.B), int64(b.L)}
	ids := ts.MustOfSlice(b.InputIDs).MustView(shape, true).MustTo(dev, true)
	defer ids.MustDrop()
	var types *ts.Tensor
	if b.TokenTypeIDs != nil {
		types = ts.MustOfSlice(b.TokenTypeIDs).MustView(shape, true).MustTo(dev, true)
	} else {
		types = ts.MustZeros(shape, gotch.Int64, dev)
	}
	defer types.MustDrop()
	mask := ts.MustOfSlice(b.AttentionMask).MustView(shape, true).MustTo(dev, true)
	defer mask.MustDrop()

	c := m.Config
	hDrop, aDrop := c.HiddenDropoutProb, c.AttentionProbsDropoutProb
	// Padding gets the lowest float added to its attention scores: after softmax its
	// weight is exactly 0, so a sequence's logits do not depend on its batch's padding.
	ext := mask.MustTotype(gotch.Float, false).MustMulScalar(ts.FloatScalar(-1), true).
		MustAddScalar(ts.FloatScalar(1), true).MustMulScalar(ts.FloatScalar(-math.MaxFloat32), true).
		MustView([]int64{int64(b.B), 1, 1, int64(b.L)}, true)
	defer ext.MustDrop()

	pos := m.posIDs.MustNarrow(0, 0, int64(b.L), false)
	x := ts.MustEmbedding(m.emb.word.T, ids, int64(c.PadTokenID), false, false)
	pe := ts.MustEmbedding(m.emb.pos.T, pos, -1, false, false)
	te := ts.MustEmbedding(m.emb.typ.T, types, -1, false, false)
	pos.MustDrop()
	x = x.MustAdd(pe, true).MustAdd(te, true)
	pe.MustDrop()
	te.MustDrop()
	h := ts.MustDropout(m.emb.norm.fwd(x), hDrop, train)
	x.MustDrop()

	out := &Output{}
	nh, hd := int64(c.NumAttentionHeads), int64(c.HeadSize())
	B, L := int64(b.B), int64(b.L)
	heads := func(t *ts.Tensor) *ts.Tensor { // [B,L,H] -> [B,heads,L,hd]
		return t.MustView([]int64{B, L, nh, hd}, true).MustPermute([]int64{0, 2, 1, 3}, true)
	}
	scale := ts.FloatScalar(1 / math.Sqrt(float64(hd)))
	for i := range m.layers {
		ly := &m.layers[i]
		q := heads(ly.q.fwd(h))
		k := heads(ly.k.fwd(h))
		v := heads(ly.v.fwd(h))
		scores := q.MustMatmul(k.MustTranspose(-1, -2, true), true).MustMulScalar(scale, true).MustAdd(ext, true)
		probs := scores.MustSoftmax(-1, gotch.Float, true)
		if attentions {
			out.Attentions = append(out.Attentions, probs.MustDetach(false))
		}
		ctx := ts.MustDropout(probs, aDrop, train).MustMatmul(v, true).
			MustPermute([]int64{0, 2, 1, 3}, true).MustContiguous(true).MustView([]int64{B, L, nh * hd}, true)
		probs.MustDrop()
		v.MustDrop()
		a := ts.MustDropout(ly.attnOut.fwd(ctx), hDrop, train).MustAdd(h, true)
		ctx.MustDrop()
		h.MustDrop()
		h = ly.attnNorm.fwd(a)
		a.MustDrop()
		f := m.act(ly.inter.fwd(h))
		o := ts.MustDropout(ly.out.fwd(f), hDrop, train).MustAdd(h, true)
		f.MustDrop()
		h.MustDrop()
		h = ly.outNorm.fwd(o)
		o.MustDrop()
	}

	var feat *ts.Tensor
	if m.pooler != nil {
		cls := h.MustSelect(1, 0, false)
		feat = m.pooler.fwd(cls).MustTanh(true)
		cls.MustDrop()
		h.MustDrop()
	} else {
		feat = h
	}
	if m.head.hidden != nil {
		d := ts.MustDropout(feat, m.head.drop, train)
		feat.MustDrop()
		feat = m.head.hidden.fwd(d).MustGelu("none", true)
		d.MustDrop()
	}
	d := ts.MustDropout(feat, m.head.drop, train)
	feat.MustDrop()
	out.Logits = m.head.out.fwd(d)
	d.MustDrop()
	if out.Logits.DType() != gotch.Float { // autocast computes the head in half precision
		out.Logits = out.Logits.MustTotype(gotch.Float, true)
	}
	if b.Labels != nil || b.Targets != nil {
		out.Loss = m.loss(out.Logits, b)
	}
	return out, nil
}

func (m *Model) checkBatch(b *Batch) error {
	n := b.B * b.L
	switch {
	case b.B < 1 || b.L < 1:
		return fmt.Errorf("model: empty batch [%d, %d]", b.B, b.L)
	case b.L > m.Config.MaxPositionEmbeddings:
		return fmt.Errorf("model: sequence length %d over max_position_embeddings %d", b.L, m.Config.MaxPositionEmbeddings)
	case len(b.InputIDs) != n || len(b.AttentionMask) != n || b.TokenTypeIDs != nil && len(b.TokenTypeIDs) != n:
		return fmt.Errorf("model: batch [%d, %d] needs %d ids, mask and type ids; got %d, %d, %d", b.B, b.L, n, len(b.InputIDs), len(b.AttentionMask), len(b.TokenTypeIDs))
	}
	for i, id := range b.InputIDs {
		if id < 0 || id >= int64(m.Config.VocabSize) {
			return fmt.Errorf("model: token id %d at %d outside the vocabulary (%d)", id, i, m.Config.VocabSize)
		}
	}
	for i, id := range b.TokenTypeIDs {
		if id < 0 || id >= int64(m.Config.TypeVocabSize) {
			return fmt.Errorf("model: token type id %d at %d outside [0, %d)", id, i, m.Config.TypeVocabSize)
		}
	}
	for i, v := range b.AttentionMask {
		if v != 0 && v != 1 {
			return fmt.Errorf("model: attention mask %d at %d: want 0 or 1", v, i)
		}
	}
	want := 0
	switch m.Opts.Task {
	case Classify:
		want = b.B
	case NER:
		want = n
	case QA:
		want = 2 * b.B
	case MultiLabel:
		if b.Targets != nil && len(b.Targets) != b.B*m.Opts.NumLabels {
			return fmt.Errorf("model: multilabel targets: %d values for %d x %d", len(b.Targets), b.B, m.Opts.NumLabels)
		}
		if b.Labels != nil {
			return fmt.Errorf("model: multilabel takes Targets, not Labels")
		}
		return nil
	}
	if b.Labels != nil && len(b.Labels) != want {
		return fmt.Errorf("model: %s labels: %d values, want %d", m.Opts.Task, len(b.Labels), want)
	}
	if b.Labels != nil && m.Opts.Task != QA {
		for i, l := range b.Labels {
			if (l < 0 || l >= int64(m.Opts.NumLabels)) && !(m.Opts.Task == NER && l == IgnoreIndex) {
				return fmt.Errorf("model: label %d at %d outside [0, %d)", l, i, m.Opts.NumLabels)
			}
		}
	}
	return nil
}

// IgnoreIndex marks token labels the loss skips (sub-tokens after the first, specials).
const IgnoreIndex = -100

var undefined = ts.NewTensor() // an absent optional tensor argument

func (m *Model) loss(logits *ts.Tensor, b *Batch) *ts.Tensor {
	dev := m.Opts.Device
	w := undefined
	if m.classWeights != nil {
		w = m.classWeights
	}
	const mean = 1
	switch m.Opts.Task {
	case MultiLabel:
		t := ts.MustOfSlice(b.Targets).MustView([]int64{int64(b.B), int64(m.Opts.NumLabels)}, true).MustTo(dev, true)
		defer t.MustDrop()
		return logits.MustBinaryCrossEntropyWithLogits(t, undefined, w, mean, false)
	case QA:
		// transformers clamps positions outside the sequence to L and ignores them.
		pos := make([]int64, len(b.Labels))
		for i, p := range b.Labels {
			pos[i] = min(max(p, 0), int64(b.L))
		}
		t := ts.MustOfSlice(pos).MustTo(dev, true)
		defer t.MustDrop()
		start := logits.MustSelect(2, 0, false)
		end := logits.MustSelect(2, 1, false)
		ts0 := t.MustNarrow(0, 0, int64(b.B), false)
		te := t.MustNarrow(0, int64(b.B), int64(b.B), false)
		ls := start.MustCrossEntropyLoss(ts0, undefined, mean, int64(b.L), 0, true)
		le := end.MustCrossEntropyLoss(te, undefined, mean, int64(b.L), 0, true)
		ts0.MustDrop()
		te.MustDrop()
		return ls.MustAdd(le, true).MustMulScalar(ts.FloatScalar(0.5), true)
	case NER:
		t := ts.MustOfSlice(b.Labels).MustTo(dev, true)
		defer t.MustDrop()
		flat := logits.MustView([]int64{-1, int64(m.Opts.NumLabels)}, false)
		defer flat.MustDrop()
		return flat.MustCrossEntropyLoss(t, w, mean, IgnoreIndex, 0, false)
	}
	t := ts.MustOfSlice(b.Labels).MustTo(dev, true)
	defer t.MustDrop()
	return logits.MustCrossEntropyLoss(t, w, mean, IgnoreIndex, 0, false)
}
