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
	Regression Task = "regression" // NumLabels scores per sequence: mean squared error
	// Embed pools the last hidden states into one vector per sequence (Options.Pooling):
	// a sentence-embedding model, without a head. It trains on (anchor, positive) pairs,
	// or (anchor, positive, hard negative) triplets, with in-batch negatives (embed.go).
	Embed Task = "embed"
	// Choice is multiple choice: a score per (text, choice) sequence from the sequence
	// head with one output, softmax and cross-entropy over each example's choices
	// (Batch.Choices sequences in a row).
	Choice Task = "choice"
	// MLM is masked-language-model training (domain-adaptive pretraining): the family's
	// masked-LM head, logits over the vocabulary per token, the decoder tied to the word
	// embeddings unless a ModernBERT config unties it (mlm.go); labels per token as
	// ner's, -100 where nothing was masked.
	MLM Task = "mlm"
)

// ParseTask checks a task name.
func ParseTask(s string) (Task, error) {
	switch t := Task(s); t {
	case Classify, MultiLabel, NER, QA, Regression, Embed, Choice, MLM:
		return t, nil
	}
	return "", fmt.Errorf("task %q: want classify, multilabel, regression, ner, qa, embed, choice or mlm", s)
}

// Sequence says whether the task predicts once per sequence, from its first token (or
// its pooled tokens): the sequence classification head, which regression shares.
func (t Task) Sequence() bool { return t == Classify || t == MultiLabel || t == Regression }

// pooled says whether the task's head reads the sequence's first token (or its pooled
// tokens): the sequence tasks' and multiple choice's, which has the same head in most
// families.
func (t Task) pooled() bool { return t.Sequence() || t == Choice }

// Freeze says which parameters do not train.
type Freeze struct {
	Embeddings bool `yaml:"embeddings" json:"embeddings"`
	Layers     int  `yaml:"layers" json:"layers"` // the first N encoder layers
	Base       bool `yaml:"base" json:"base"`     // the whole encoder: only the head trains
}

// Options shape a model beyond its config.json.
type Options struct {
	Task      Task
	NumLabels int // classes (classify, multilabel, ner) or scores (regression); QA has 2 outputs
	// HeadHidden > 0 puts a dense layer of that width (GELU, dropout) under the output
	// layer: the custom head. Its parameters are named head.*.
	HeadHidden int
	// HeadDropout is the head's dropout (head.go); < 0 means the rate transformers'
	// class for the family and task takes from the config (classifier_dropout, else
	// hidden_dropout_prob; DistilBERT's seq_classif_dropout, qa_dropout...).
	HeadDropout float64
	Freeze      Freeze
	Device      gotch.Device // the zero Device is the CPU
	// ClassWeights weight the cross-entropy per class (classify, ner) or are the
	// positive weights of BCE (multilabel); empty means unweighted. Regression has no
	// classes to weight.
	ClassWeights []float32
	// Autocast runs the forward in "bf16" or "fp16" on CUDA (mixed precision); "" is fp32.
	Autocast string
	// Pooling is the embed task's (cls, mean or max; "" is mean).
	Pooling string
	// Matryoshka, for the embed task, trains the vectors' leading dimensions to work
	// alone too (matryoshka.go).
	Matryoshka Matryoshka
	// LoRA, when set, freezes the base model and trains low-rank adapters on its
	// encoder's dense layers and the head (lora.go).
	LoRA LoRA
	// LabelSmoothing mixes this share of a uniform distribution into the targets of the
	// cross-entropy losses (classify, choice, ner, qa, mlm) in training; evaluation's loss
	// stays unsmoothed, as transformers' Trainer computes it.
	LabelSmoothing float64
	// Distill blends a teacher's soft targets (Batch.Teacher) into the training loss.
	Distill Distill
	// GradientCheckpointing recomputes each encoder layer's activations during backward
	// instead of keeping them from the forward (recompute.go): less memory, more compute.
	GradientCheckpointing bool
}

// Model is an encoder of the BERT family (see family.go) with one task head.
type Model struct {
	Config *hf.BertConfig
	Opts   Options
	Params *Params

	fam    *family
	emb    embeddings
	layers []*layer // in the order Forward applies them; ALBERT's repeat its shared ones
	head   head

	modern       *modern                     // ModernBERT's layers and head (modernbert.go), which it has instead of layers and head
	deberta      *deberta                    // DeBERTa's relative attention (debertav2.go)
	mpnet        *mpnet                      // MPNet's relative attention bias (mpnet.go)
	act          func(*ts.Tensor) *ts.Tensor // the feed-forward activation, config's hidden_act
	classWeights *ts.Tensor
	posIDs       *ts.Tensor // 0..max_position-1, sliced per batch
	quantized    bool       // Quantize has run: inference only
	lora         *loraState // the LoRA adapters (lora.go), or nil
}

// New builds a model with freshly initialised weights (seed libtorch first with
// ManualSeed for reproducible ones); LoadCheckpoint then overwrites them. The config's
// model_type picks the encoder family.
func New(cfg *hf.BertConfig, opts Options) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	fam, err := familyOf(cfg)
	if err != nil {
		return nil, err
	}
	if opts.Task == "" {
		opts.Task = Classify
	}
	if opts.Device == (gotch.Device{}) { // gotch aborts the process on a nameless device
		opts.Device = gotch.CPU
	}
	switch opts.Task {
	case QA:
		opts.NumLabels = 2
	case Choice:
		opts.NumLabels = 1 // a score per choice
	case Embed:
		opts.NumLabels = cfg.HiddenSize // the width of its output
		if opts.Pooling, err = ParsePooling(opts.Pooling); err != nil {
			return nil, fmt.Errorf("model: %w", err)
		}
		if opts.HeadHidden > 0 || len(opts.ClassWeights) > 0 {
			return nil, fmt.Errorf("model: an embedding model has no head to widen or weight")
		}
	case MLM:
		if err := checkMLM(fam, cfg); err != nil {
			return nil, err
		}
		opts.NumLabels = cfg.VocabSize
		if opts.HeadHidden > 0 || len(opts.ClassWeights) > 0 {
			return nil, fmt.Errorf("model: the masked-LM head has transformers' layers: none to widen, no classes to weight")
		}
	}
	if opts.Task != Embed && opts.Pooling != "" {
		return nil, fmt.Errorf("model: pooling %q is the embed task's; this model's task is %s", opts.Pooling, opts.Task)
	}
	if opts.NumLabels < 1 {
		return nil, fmt.Errorf("model: %s needs at least one label", opts.Task)
	}
	if len(opts.ClassWeights) > 0 && opts.Task == Regression {
		return nil, fmt.Errorf("model: class weights: regression has scores, not classes to weight")
	}
	if len(opts.ClassWeights) > 0 && len(opts.ClassWeights) != opts.NumLabels {
		return nil, fmt.Errorf("model: %d class weights for %d labels", len(opts.ClassWeights), opts.NumLabels)
	}
	switch {
	case !(opts.LabelSmoothing >= 0 && opts.LabelSmoothing < 1):
		return nil, fmt.Errorf("model: label smoothing %v is not in [0, 1)", opts.LabelSmoothing)
	case opts.LabelSmoothing > 0 && (opts.Task == MultiLabel || opts.Task == Regression || opts.Task == Embed):
		return nil, fmt.Errorf("model: label smoothing is for the cross-entropy losses (classify, choice, ner, qa, mlm), not %s's", opts.Task)
	}
	if err := opts.Distill.check(opts.Task); err != nil {
		return nil, err
	}
	if opts.Matryoshka, err = opts.Matryoshka.Check(opts.Task, cfg.HiddenSize); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if opts.Freeze.Layers > cfg.NumHiddenLayers {
		return nil, fmt.Errorf("model: cannot freeze %d layers of %d", opts.Freeze.Layers, cfg.NumHiddenLayers)
	}
	if opts.Freeze.Layers > 0 && fam.layer == nil {
		return nil, fmt.Errorf("model: %s shares its layers among all %d, so the first %d cannot be frozen alone; freeze the embeddings or the base instead",
			cfg.ModelType, cfg.NumHiddenLayers, opts.Freeze.Layers)
	}
	switch opts.Autocast {
	case "", "bf16", "fp16":
	default:
		return nil, fmt.Errorf("model: autocast %q: want bf16, fp16 or none", opts.Autocast)
	}
	if opts.Autocast != "" && !opts.Device.IsCuda() {
		return nil, fmt.Errorf("model: mixed precision (%s) needs a CUDA device", opts.Autocast)
	}
	if err := checkModern(cfg, opts); err != nil {
		return nil, err
	}
	act, err := activation(cfg.FeedForwardAct())
	if err != nil {
		return nil, err
	}
	lora, err := newLoRA(cfg.ModelType, opts)
	if err != nil {
		return nil, err
	}
	m := &Model{Config: cfg, Opts: opts, Params: newParams(opts.Device), act: act, fam: fam, lora: lora}
	fam.declare(m)
	frozen := fam.fixed(cfg)
	if lora != nil {
		if err := lora.checkTargets(cfg.ModelType); err != nil {
			return nil, err
		}
		frozen = append(frozen, fam.base)
	}
	if opts.Freeze.Embeddings || opts.Freeze.Base {
		frozen = append(frozen, fam.embeddings...)
	}
	if opts.Freeze.Base {
		frozen = append(frozen, fam.base)
	} else {
		for i := 0; i < opts.Freeze.Layers; i++ {
			frozen = append(frozen, fam.layer(i))
		}
	}
	m.Params.freeze(frozen)
	if lora != nil {
		lora.trainable()
	}
	m.Params.build(cfg.InitializerRange)
	if fam.init != nil {
		fam.init(m)
	}
	if len(opts.ClassWeights) > 0 {
		m.classWeights = ts.MustOfSlice(opts.ClassWeights).MustTo(opts.Device, true)
	}
	if m.emb.pos != nil {
		pos := make([]int64, cfg.MaxPositionEmbeddings)
		for i := range pos {
			pos[i] = int64(i)
		}
		m.posIDs = ts.MustOfSlice(pos).MustTo(opts.Device, true)
	}
	return m, nil
}

// Batch is one padded batch, row-major [B, L] for the token inputs.
type Batch struct {
	B, L     int
	InputIDs []int64
	// TokenTypeIDs: nil means all zeros. Encoders without token types (DistilBERT) or
	// with a single one (RoBERTa's type_vocab_size 1) ignore them, as their tokenizers
	// give none.
	TokenTypeIDs  []int64
	AttentionMask []int64 // 1 for real tokens, 0 for padding
	// Labels: classify [B] class ids; ner [B*L] with -100 for ignored tokens; mlm [B*L]
	// the original token ids where masked, -100 elsewhere;
	// qa [2*B] start positions then end positions. Nil for inference.
	Labels []int64
	// Targets: multilabel [B*NumLabels] in {0, 1}; regression [B*NumLabels] scores.
	// Nil for inference.
	Targets []float32
	// Choices: multiple choice's sequences per example, each example's in a row (B a
	// multiple of it); Labels are then [B/Choices] indexes of the right one.
	Choices int
	// Teacher: a teacher model's logits for this batch, row-major in Output.Logits' shape
	// (its Infer's), with labels: the soft targets of distillation (Options.Distill).
	Teacher []float32
}

// Output is what a forward pass returns. The caller drops the tensors it keeps.
type Output struct {
	// Logits: classify/multilabel/regression [B, N]; ner [B, L, N]; qa [B, L, 2]; mlm
	// [B, L, V], or with labels only the masked tokens' rows [masked, V], in order.
	Logits *ts.Tensor
	Loss   *ts.Tensor // scalar; nil when the batch has no labels
	// Soft and Hard are the parts Loss blends when the batch has a teacher's logits:
	// the distillation loss and the loss against the labels. Nil otherwise.
	Soft, Hard *ts.Tensor
	// Attentions per layer [B, heads, L, L], when asked for.
	Attentions []*ts.Tensor

	recompute *recompute // a checkpointed training forward's (recompute.go)
}

// Forward runs the model. train enables dropout; attentions keeps every layer's
// attention probabilities for inspection.
func (m *Model) Forward(b *Batch, train, attentions bool) (*Output, error) {
	runtime.LockOSThread() // each op's error is read back on the thread that ran it
	defer runtime.UnlockOSThread()
	if err := m.checkBatch(b); err != nil {
		return nil, err
	}
	if train && m.quantized {
		return nil, fmt.Errorf("model: an int8-quantized model is for inference; it cannot train")
	}
	if train && m.lora != nil && m.lora.merged {
		return nil, fmt.Errorf("model: a model with its LoRA adapters merged is for inference; it cannot train")
	}
	if m.Opts.Autocast != "" {
		setAutocast(m.Opts.Autocast)
		defer setAutocast("")
	}
	dev := m.Opts.Device
	shape := []int64{int64(b.B), int64(b.L)}
	ids := ts.MustOfSlice(b.InputIDs).MustView(shape, true).MustTo(dev, true)
	defer ids.MustDrop()
	mask := ts.MustOfSlice(b.AttentionMask).MustView(shape, true).MustTo(dev, true)
	defer mask.MustDrop()

	// Padding gets the lowest float added to its attention scores: after softmax its
	// weight is exactly 0, so a sequence's logits do not depend on its batch's padding.
	ext := additiveMask(mask, b)
	defer ext.MustDrop()

	drop, err := newDropper(train, dev)
	if err != nil {
		return nil, err
	}
	defer drop.done()
	if train && m.lora != nil {
		m.lora.drop = drop
		defer func() { m.lora.drop = nil }()
	}
	out := &Output{}
	if m.modern != nil {
		out.Logits = m.modern.forward(m, b, ids, mask, ext, drop, train, attentions, out)
	} else {
		out.Logits = m.encode(b, ids, mask, ext, drop, train, attentions, out)
	}
	if out.Logits.DType() != gotch.Float { // autocast computes the head in half precision
		out.Logits = out.Logits.MustTotype(gotch.Float, true)
	}
	if b.Labels != nil || b.Targets != nil {
		smoothing := 0.0
		if train {
			smoothing = m.Opts.LabelSmoothing
		}
		out.Loss = m.loss(out.Logits, b, smoothing)
		if b.Teacher != nil {
			out.Hard = out.Loss
			out.Soft = m.softLoss(out.Logits, b)
			out.Loss = m.Opts.Distill.blend(out.Soft, out.Hard)
		}
	}
	return out, nil
}

// encode computes the logits of b with the BERT-like families' layers and head.
func (m *Model) encode(b *Batch, ids, mask, ext *ts.Tensor, drop *dropper, train, attentions bool, out *Output) *ts.Tensor {
	var h *ts.Tensor
	if m.deberta != nil {
		h = m.debertaEmbed(b, ids, mask, drop)
	} else {
		h = m.emb.fwd(m, b, ids, drop)
	}
	// A token head's loss (QA's, as transformers computes it) reads the logits under
	// the padding too: with labels, token heads keep the padded rows.
	var p *packing
	if !train && !attentions && (m.head.first || b.Labels == nil) {
		p = newPacking(b, ext, m.Opts.Device)
	}
	if p != nil {
		defer p.drop()
		h = m.layersPacked(h, p, drop)
	} else {
		h = m.layersPadded(h, ext, b, drop, attentions, out)
	}
	if m.head.mlm != nil {
		return m.mlmLogits(h, b)
	}
	return m.head.fwd(h, mask, drop)
}

// additiveMask is the mask [B, L] as attention scores take it, [B, 1, 1, L]: 0 for
// tokens, the lowest float for padding.
func additiveMask(mask *ts.Tensor, b *Batch) *ts.Tensor {
	return mask.MustTotype(gotch.Float, false).MustMulScalar(ts.FloatScalar(-1), true).
		MustAddScalar(ts.FloatScalar(1), true).MustMulScalar(ts.FloatScalar(-math.MaxFloat32), true).
		MustView([]int64{int64(b.B), 1, 1, int64(b.L)}, true)
}

// layersPadded runs the layers on h [B, L, H], keeping the attentions in out when asked.
func (m *Model) layersPadded(h, ext *ts.Tensor, b *Batch, drop *dropper, attentions bool, out *Output) *ts.Tensor {
	if drop.train && m.Opts.GradientCheckpointing && !attentions {
		// The relative embeddings and the position bias depend on no layer: made once.
		var grafts []graft
		var keep []*ts.Tensor
		rs := m.relative(b.L)
		if rs != nil {
			grafts = append(grafts, newGraft(rs.emb))
			rs = &relState{d: rs.d, emb: grafts[0].in, idx: rs.idx}
			keep = append(keep, rs.idx)
		}
		e := ext.MustShallowClone()
		if pb := m.positionBias(b.L); pb != nil {
			e = pb.MustAdd(ext, true)
			grafts = append(grafts, newGraft(e))
			e = grafts[len(grafts)-1].in
		} else {
			keep = append(keep, e)
		}
		return m.recomputed(h, drop, out, len(m.layers), func(i int, x *ts.Tensor, drop *dropper) *ts.Tensor {
			y, _ := m.layers[i].fwd(m, x, e, rs, b, drop, false, i == len(m.layers)-1 && m.head.first)
			return y
		}, grafts, keep...)
	}
	rs := m.relative(b.L)
	defer rs.drop()
	if pb := m.positionBias(b.L); pb != nil { // every layer adds it to its scores, with the mask
		ext = pb.MustAdd(ext, true)
		defer ext.MustDrop()
	}
	for i, ly := range m.layers {
		// A sequence head reads the first token alone: the last layer computes only its
		// output, unless every layer's attentions are asked for.
		first := i == len(m.layers)-1 && m.head.first && !attentions
		var probs *ts.Tensor
		h, probs = ly.fwd(m, h, ext, rs, b, drop, attentions, first)
		if probs != nil {
			out.Attentions = append(out.Attentions, probs)
		}
	}
	return h
}

// layersPacked runs the layers for inference on the tokens of h [B, L, H] alone
// (unpad.go). For a sequence head it returns the first positions' outputs, [B, 1, H];
// for a token head [B, L, H] with zeros under the padding, whose logits only a loss
// would read (transformers computes them from the padding's rows; they differ).
func (m *Model) layersPacked(h *ts.Tensor, p *packing, drop *dropper) *ts.Tensor {
	x := p.pack(h)
	h.MustDrop()
	rs := m.relative(int(p.L))
	defer rs.drop()
	if pb := m.positionBias(int(p.L)); pb != nil { // each group's positions are the batch's
		for _, g := range p.groups {
			blk := pb.MustNarrow(2, 0, g.L, false).MustNarrow(3, 0, g.L, true)
			ext := g.ext
			g.ext = blk.MustAdd(ext, true)
			ext.MustDrop()
		}
		pb.MustDrop()
	}
	for i, ly := range m.layers {
		x = ly.fwdPacked(m, x, p, rs, drop, m.head.first && i == len(m.layers)-1)
	}
	if !m.head.first {
		return p.unpack(x)
	}
	return x.MustIndexSelect(0, p.unorder, true).MustView([]int64{p.B, 1, -1}, true)
}

func (m *Model) checkBatch(b *Batch) error {
	n := b.B * b.L
	switch {
	case b.B < 1 || b.L < 1:
		return fmt.Errorf("model: empty batch [%d, %d]", b.B, b.L)
	case b.L > m.Config.MaxLength() && m.Config.RotaryScalingFactor != nil:
		return fmt.Errorf("model: sequence length %d over max_trained_positions %d, past which NomicBERT's rotary_scaling_factor changes the rotary base (not built)",
			b.L, m.Config.MaxTrainedPositions)
	case b.L > m.Config.MaxLength() && m.Config.PositionOffset() == 0:
		return fmt.Errorf("model: sequence length %d over %s %d", b.L, m.Config.FieldName("max_position_embeddings"), m.Config.MaxPositionEmbeddings)
	case b.L > m.Config.MaxLength():
		return fmt.Errorf("model: sequence length %d over the %d positions max_position_embeddings %d leaves after the offset %d (the padding index + 1)",
			b.L, m.Config.MaxLength(), m.Config.MaxPositionEmbeddings, m.Config.PositionOffset())
	case len(b.InputIDs) != n || len(b.AttentionMask) != n || b.TokenTypeIDs != nil && len(b.TokenTypeIDs) != n:
		return fmt.Errorf("model: batch [%d, %d] needs %d ids, mask and type ids; got %d, %d, %d", b.B, b.L, n, len(b.InputIDs), len(b.AttentionMask), len(b.TokenTypeIDs))
	}
	for i, id := range b.InputIDs {
		if id < 0 || id >= int64(m.Config.VocabSize) {
			return fmt.Errorf("model: token id %d at %d outside the vocabulary (%d)", id, i, m.Config.VocabSize)
		}
	}
	for i, id := range m.tokenTypes(b) {
		if id < 0 || id >= int64(m.Config.TypeVocabSize) {
			return fmt.Errorf("model: token type id %d at %d outside [0, %d)", id, i, m.Config.TypeVocabSize)
		}
	}
	for i, v := range b.AttentionMask {
		if v != 0 && v != 1 {
			return fmt.Errorf("model: attention mask %d at %d: want 0 or 1", v, i)
		}
	}
	if err := m.checkTeacher(b); err != nil {
		return err
	}
	want := 0
	switch m.Opts.Task {
	case Embed:
		n := len(b.Labels)
		switch {
		case b.Targets != nil:
			return fmt.Errorf("model: an embedding model takes Labels, not Targets")
		case b.Labels != nil && b.B != 2*n && b.B != 3*n:
			return fmt.Errorf("model: embed labels: %d for a batch of %d sequences; want one per anchor, the batch's first third or half", n, b.B)
		}
		for i, l := range b.Labels {
			if l < 0 || l >= int64(b.B-n) {
				return fmt.Errorf("model: embed label %d at %d: not a candidate of the batch's [0, %d)", l, i, b.B-n)
			}
		}
		return nil
	case Choice:
		switch {
		case b.Labels == nil:
		case b.Choices < 2 || b.B%b.Choices != 0:
			return fmt.Errorf("model: choice: %d choices per example for a batch of %d sequences", b.Choices, b.B)
		case len(b.Labels) != b.B/b.Choices:
			return fmt.Errorf("model: choice labels: %d values for %d examples", len(b.Labels), b.B/b.Choices)
		}
		for i, l := range b.Labels {
			if l < 0 || l >= int64(b.Choices) {
				return fmt.Errorf("model: choice label %d at %d outside [0, %d)", l, i, b.Choices)
			}
		}
		return nil
	case Classify:
		want = b.B
	case NER, MLM:
		want = n
	case QA:
		want = 2 * b.B
	case MultiLabel, Regression:
		if b.Targets != nil && len(b.Targets) != b.B*m.Opts.NumLabels {
			return fmt.Errorf("model: %s targets: %d values for %d x %d", m.Opts.Task, len(b.Targets), b.B, m.Opts.NumLabels)
		}
		if b.Labels != nil {
			return fmt.Errorf("model: %s takes Targets, not Labels", m.Opts.Task)
		}
		return nil
	}
	if b.Labels != nil && len(b.Labels) != want {
		return fmt.Errorf("model: %s labels: %d values, want %d", m.Opts.Task, len(b.Labels), want)
	}
	if b.Labels != nil && m.Opts.Task != QA {
		for i, l := range b.Labels {
			if (l < 0 || l >= int64(m.Opts.NumLabels)) && !((m.Opts.Task == NER || m.Opts.Task == MLM) && l == IgnoreIndex) {
				return fmt.Errorf("model: label %d at %d outside [0, %d)", l, i, m.Opts.NumLabels)
			}
		}
	}
	return nil
}

// IgnoreIndex marks token labels the loss skips (sub-tokens after the first, specials).
const IgnoreIndex = -100

var undefined = ts.NewTensor() // an absent optional tensor argument

// loss is the task's loss against the batch's labels, the cross-entropies' targets
// smoothed by smoothing.
func (m *Model) loss(logits *ts.Tensor, b *Batch, smoothing float64) *ts.Tensor {
	dev := m.Opts.Device
	w := undefined
	if m.classWeights != nil {
		w = m.classWeights
	}
	const mean = 1
	switch m.Opts.Task {
	case Embed:
		if m.Opts.Matryoshka.On() {
			return m.Opts.Matryoshka.loss(logits, b, dev)
		}
		return rankingLoss(logits, b, dev)
	case MultiLabel:
		t := ts.MustOfSlice(b.Targets).MustView([]int64{int64(b.B), int64(m.Opts.NumLabels)}, true).MustTo(dev, true)
		defer t.MustDrop()
		return logits.MustBinaryCrossEntropyWithLogits(t, undefined, w, mean, false)
	case Choice: // transformers' view(-1, num_choices) then cross-entropy
		t := ts.MustOfSlice(b.Labels).MustTo(dev, true)
		defer t.MustDrop()
		rows := logits.MustView([]int64{-1, int64(b.Choices)}, false)
		defer rows.MustDrop()
		return rows.MustCrossEntropyLoss(t, undefined, mean, IgnoreIndex, smoothing, false)
	case Regression:
		// transformers' MSELoss(logits.squeeze(), labels.squeeze()) for one output and
		// over all outputs for several: either way the mean over every score.
		t := ts.MustOfSlice(b.Targets).MustView([]int64{int64(b.B), int64(m.Opts.NumLabels)}, true).MustTo(dev, true)
		defer t.MustDrop()
		return logits.MustMseLoss(t, mean, false)
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
		ls := start.MustCrossEntropyLoss(ts0, undefined, mean, int64(b.L), smoothing, true)
		le := end.MustCrossEntropyLoss(te, undefined, mean, int64(b.L), smoothing, true)
		ts0.MustDrop()
		te.MustDrop()
		defer le.MustDrop()
		return ls.MustAdd(le, true).MustMulScalar(ts.FloatScalar(0.5), true)
	case NER:
		t := ts.MustOfSlice(b.Labels).MustTo(dev, true)
		defer t.MustDrop()
		flat := logits.MustView([]int64{-1, int64(m.Opts.NumLabels)}, false)
		defer flat.MustDrop()
		return flat.MustCrossEntropyLoss(t, w, mean, IgnoreIndex, smoothing, false)
	case MLM:
		flat := logits.MustView([]int64{-1, int64(m.Opts.NumLabels)}, false)
		defer flat.MustDrop()
		// The logits are the masked tokens' rows (maskedRows). The mean over them, as
		// transformers' (a sum over a count, so that a batch where nothing was masked
		// gives 0, not the mean's NaN).
		masked := maskedLabels(b.Labels)
		if len(masked) == 0 { // no rows: a zero that backward goes through
			return flat.MustSumDimIntlist([]int64{0, 1}, false, gotch.Float, false)
		}
		mt := ts.MustOfSlice(masked).MustTo(dev, true)
		defer mt.MustDrop()
		const sum = 2
		return flat.MustCrossEntropyLoss(mt, undefined, sum, IgnoreIndex, smoothing, false).MustDivScalar(ts.FloatScalar(float64(max(len(masked), 1))), true)
	}
	t := ts.MustOfSlice(b.Labels).MustTo(dev, true)
	defer t.MustDrop()
	return logits.MustCrossEntropyLoss(t, w, mean, IgnoreIndex, smoothing, false)
}
