package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/hf"
	"github.com/bertnode/bertnode/safetensors"
)

// familyConfig is a small encoder of the family with weights scaled as smallConfig's:
// 2 layers (ALBERT: 3 applications of one shared layer), width 32, 4 heads; ALBERT and
// ELECTRA factorize their embeddings to 16; RoBERTa has padding id 1 and one token type;
// ModernBERT's second layer attends 4 positions either side; DeBERTa is v3's kind; MPNet
// has mpnet-base's padding id 1, its positions after it; NomicBERT is nomic-embed-text-v1.5's
// kind with a 256-wide gated MLP (NomicBERT rounds the width up to 256).
func familyConfig(t testing.TB, modelType string, dropout float64) *hf.BertConfig {
	t.Helper()
	c, err := hf.NewConfig(modelType)
	if err != nil {
		t.Fatal(err)
	}
	c.VocabSize, c.HiddenSize, c.NumHiddenLayers, c.NumAttentionHeads = 100, 32, 2, 4
	c.IntermediateSize, c.MaxPositionEmbeddings = 64, 64
	c.HiddenDropoutProb, c.AttentionProbsDropoutProb = dropout, dropout
	c.HiddenAct = "gelu"
	c.InitializerRange = 0.2
	switch modelType {
	case "albert":
		c.EmbeddingSize, c.NumHiddenLayers, c.NumHiddenGroups, c.InnerGroupNum = 16, 3, 1, 1
		c.HiddenAct = "gelu_new"
	case "electra":
		c.EmbeddingSize = 16
	case "roberta":
		c.PadTokenID, c.TypeVocabSize, c.MaxPositionEmbeddings, c.LayerNormEps = 1, 1, 66, 1e-5
	case "modernbert":
		c.PadTokenID, c.LocalAttention, c.GlobalAttnEvery, c.EmbeddingDropout = 0, 8, 2, dropout
	case "deberta-v2": // as deberta-v3-base, with 4 buckets either side
		c.RelativeAttention, c.PositionBiasedInput, c.PositionBuckets, c.PosAttType = true, false, 8, hf.PosAttType{"p2c", "c2p"}
		c.ShareAttKey, c.NormRelEbd, c.LayerNormEps, c.TypeVocabSize, c.PadTokenID = true, "layer_norm", 1e-7, 0, 0
	case "mpnet":
		c.MaxPositionEmbeddings, c.LayerNormEps = 66, 1e-5
	case "nomic_bert":
		c.HiddenAct, c.IntermediateSize, c.RotaryEmbFraction, c.RotaryScalingFactor = "swiglu", 256, 1, nil
		c.QKVProjBias, c.MLPFc1Bias, c.MLPFc2Bias, c.LayerNormEps, c.ClassifierDropout = false, false, false, 1e-12, &dropout
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

var modelTypes = []string{"bert", "distilbert", "roberta", "albert", "electra", "modernbert", "deberta-v2", "mpnet", "nomic_bert"}

// familyTasks are the heads of every family.
var familyTasks = []Options{
	{Task: Classify, NumLabels: 3},
	{Task: MultiLabel, NumLabels: 4},
	{Task: NER, NumLabels: 5},
	{Task: QA},
	{Task: Regression, NumLabels: 1},
	{Task: Choice},
}

// transformersNames are the state dict keys transformers' <Family>For<Task> model has for
// familyConfig, spelled out from its modules (not from this package's declarations).
func transformersNames(modelType string, task Task) []string {
	var names []string
	lin := func(n string) { names = append(names, n+".weight", n+".bias") }
	emb := func(p string, types bool) {
		names = append(names, p+"word_embeddings.weight", p+"position_embeddings.weight")
		if types {
			names = append(names, p+"token_type_embeddings.weight")
		}
		lin(p + "LayerNorm")
	}
	layers := func(format string, parts ...string) { // two layers, weights and biases
		for i := range 2 {
			for _, l := range parts {
				lin(fmt.Sprintf(format, i) + l)
			}
		}
	}
	bertLayers := func(base string) {
		layers(base+"encoder.layer.%d.", "attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
			"attention.output.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm")
	}
	sequence := task.pooled()
	if modelType == "modernbert" { // no biases but the classifier's; no norm before layer 0's attention
		names = append(names, "model.embeddings.tok_embeddings.weight", "model.embeddings.norm.weight", "model.final_norm.weight",
			"head.dense.weight", "head.norm.weight", "classifier.weight", "classifier.bias")
		for i := range 2 {
			p := fmt.Sprintf("model.layers.%d.", i)
			if i > 0 {
				names = append(names, p+"attn_norm.weight")
			}
			for _, l := range []string{"attn.Wqkv", "attn.Wo", "mlp_norm", "mlp.Wi", "mlp.Wo"} {
				names = append(names, p+l+".weight")
			}
		}
		slices.Sort(names)
		return names
	}
	switch modelType {
	case "nomic_bert": // no biases in attention and MLP, as nomic-embed-text-v1.5's
		names = append(names, "bert.embeddings.word_embeddings.weight", "bert.embeddings.token_type_embeddings.weight")
		lin("bert.emb_ln")
		for i := range 2 {
			p := fmt.Sprintf("bert.encoder.layers.%d.", i)
			for _, l := range []string{"attn.Wqkv", "attn.out_proj", "mlp.fc11", "mlp.fc12", "mlp.fc2"} {
				names = append(names, p+l+".weight")
			}
			lin(p + "norm1")
			lin(p + "norm2")
		}
		if sequence {
			lin("bert.pooler.dense")
		}
	case "deberta-v2":
		names = append(names, "deberta.embeddings.word_embeddings.weight", "deberta.encoder.rel_embeddings.weight")
		lin("deberta.embeddings.LayerNorm")
		lin("deberta.encoder.LayerNorm")
		layers("deberta.encoder.layer.%d.", "attention.self.query_proj", "attention.self.key_proj", "attention.self.value_proj",
			"attention.output.dense", "attention.output.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm")
		if sequence {
			lin("pooler.dense")
		}
	case "bert":
		emb("bert.embeddings.", true)
		bertLayers("bert.")
		if sequence {
			lin("bert.pooler.dense")
		}
	case "roberta":
		emb("roberta.embeddings.", true)
		bertLayers("roberta.")
	case "mpnet":
		emb("mpnet.embeddings.", false)
		names = append(names, "mpnet.encoder.relative_attention_bias.weight")
		layers("mpnet.encoder.layer.%d.", "attention.attn.q", "attention.attn.k", "attention.attn.v", "attention.attn.o",
			"attention.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm")
	case "electra":
		emb("electra.embeddings.", true)
		lin("electra.embeddings_project")
		bertLayers("electra.")
	case "distilbert":
		emb("distilbert.embeddings.", false)
		layers("distilbert.transformer.layer.%d.", "attention.q_lin", "attention.k_lin", "attention.v_lin", "attention.out_lin",
			"sa_layer_norm", "ffn.lin1", "ffn.lin2", "output_layer_norm")
		if sequence {
			lin("pre_classifier")
		}
	case "albert":
		emb("albert.embeddings.", true)
		lin("albert.encoder.embedding_hidden_mapping_in")
		p := "albert.encoder.albert_layer_groups.0.albert_layers.0."
		for _, l := range []string{"attention.query", "attention.key", "attention.value", "attention.dense", "attention.LayerNorm",
			"ffn", "ffn_output", "full_layer_layer_norm"} {
			lin(p + l)
		}
		if sequence {
			lin("albert.pooler")
		}
	}
	switch {
	case task == QA:
		lin("qa_outputs")
	case task == Choice && (modelType == "roberta" || modelType == "mpnet"): // RobertaForMultipleChoice, MPNetForMultipleChoice
		lin(modelType + ".pooler.dense")
		lin("classifier")
	case task == Choice && modelType == "electra": // ElectraForMultipleChoice
		lin("sequence_summary.summary")
		lin("classifier")
	case sequence && (modelType == "roberta" || modelType == "electra" || modelType == "mpnet"):
		lin("classifier.dense")
		lin("classifier.out_proj")
	default:
		lin("classifier")
	}
	slices.Sort(names)
	return names
}

// Every family and head declares exactly the parameters transformers' model class has,
// under the same names; a state dict with those names loads, saves under them again, and
// reloads bit for bit; config.json names transformers' class for the task.
func TestFamilyCheckpointNames(t *testing.T) {
	for _, mt := range modelTypes {
		for _, opts := range familyTasks {
			t.Run(mt+"/"+string(opts.Task), func(t *testing.T) {
				lockThread(t)
				cfg := familyConfig(t, mt, 0.1)
				src := newModel(t, cfg, opts, 1)
				var names []string
				for _, p := range src.Params.List() {
					names = append(names, p.Name)
				}
				slices.Sort(names)
				if want := transformersNames(mt, opts.Task); !slices.Equal(names, want) {
					t.Fatalf("parameters\n%v\ntransformers'\n%v", names, want)
				}

				// transformers' state dict: our tensors, under its names, in its order.
				path := writeSafetensors(t, f32Tensors(src, func(n string) string { return n }))
				dst := newModel(t, cfg, opts, 2)
				rep, err := dst.LoadWeights(path)
				if err != nil {
					t.Fatal(err)
				}
				if rep.Loaded != len(names) || len(rep.Initialized)+len(rep.Ignored) != 0 {
					t.Fatalf("%+v", rep)
				}
				sameWeights(t, dst, flatCopy(src), "loaded")
				dir := t.TempDir()
				if err := dst.Save(dir, nil, SaveOptions{}); err != nil {
					t.Fatal(err)
				}
				saved := tensorNames(t, filepath.Join(dir, SafetensorsFile))
				if !slices.Equal(saved, names) {
					t.Fatalf("saved %v", saved)
				}
				again := newModel(t, cfg, opts, 3)
				if _, err := again.LoadWeights(filepath.Join(dir, SafetensorsFile)); err != nil {
					t.Fatal(err)
				}
				sameWeights(t, again, flatCopy(src), "saved and reloaded")
				back, err := hf.ReadConfig(filepath.Join(dir, ConfigFile))
				if err != nil {
					t.Fatal(err)
				}
				arch := map[string]string{"bert": "Bert", "distilbert": "DistilBert", "roberta": "Roberta", "albert": "Albert", "electra": "Electra", "modernbert": "ModernBert", "deberta-v2": "DebertaV2", "mpnet": "MPNet", "nomic_bert": "NomicBert"}[mt] +
					map[Task]string{Classify: "ForSequenceClassification", MultiLabel: "ForSequenceClassification", Regression: "ForSequenceClassification", NER: "ForTokenClassification", QA: "ForQuestionAnswering", Choice: "ForMultipleChoice"}[opts.Task]
				if back.ModelType != mt || !slices.Equal(back.Architectures, []string{arch}) {
					t.Fatalf("config.json: model_type %q, architectures %v, want %s", back.ModelType, back.Architectures, arch)
				}
			})
		}
	}
}

// Published pretraining checkpoints (the base model and its pretraining heads, maybe a
// pooler, under bare or prefixed names) load into every task model: the heads and
// buffers are ignored and the task head starts fresh.
func TestFamilyPretrainingCheckpoints(t *testing.T) {
	pretraining := map[string][]string{
		"bert":       {"cls.predictions.bias", "cls.seq_relationship.weight"},
		"distilbert": {"vocab_transform.weight", "vocab_layer_norm.weight", "vocab_projector.bias"},
		"roberta":    {"lm_head.dense.weight", "lm_head.bias", "roberta.pooler.dense.weight", "roberta.embeddings.token_type_ids"},
		"albert":     {"predictions.decoder.weight", "sop_classifier.classifier.weight", "albert.embeddings.position_ids"},
		"electra":    {"discriminator_predictions.dense.weight", "discriminator_predictions.dense_prediction.bias", "generator_lm_head.weight"},
		"modernbert": {"decoder.bias"},
		"deberta-v2": {"lm_predictions.lm_head.bias", "mask_predictions.classifier.weight", "deberta.embeddings.position_embeddings.weight"},
		"mpnet":      {"lm_head.dense.weight", "lm_head.decoder.weight", "lm_head.bias", "mpnet.pooler.dense.weight", "mpnet.embeddings.position_ids"},
		"nomic_bert": {"cls.predictions.transform.dense.weight", "cls.predictions.transform.layer_norm.bias", "cls.predictions.decoder.bias"},
	}
	for _, mt := range modelTypes {
		t.Run(mt, func(t *testing.T) {
			lockThread(t)
			cfg := familyConfig(t, mt, 0.1)
			for _, opts := range familyTasks {
				src := newModel(t, cfg, Options{Task: NER, NumLabels: 2}, 1)
				base := src.fam.base
				bare := mt == "albert" || mt == "nomic_bert" // a bare AlbertModel's or NomicBertModel's names
				tensors := f32Tensors(src, func(n string) string {
					if !strings.HasPrefix(n, base) {
						return ""
					}
					if bare {
						return strings.TrimPrefix(n, base)
					}
					return n
				})
				dst := newModel(t, cfg, opts, 2)
				var ignored []string // RobertaForMultipleChoice uses the pooler
				for _, n := range pretraining[mt] {
					if dst.Params.Get(n) == nil {
						ignored = append(ignored, n)
						tensors = append(tensors, safetensors.Tensor{Info: safetensors.Info{Name: n, DType: safetensors.F32, Shape: []int64{1}}, Data: make([]byte, 4)})
					}
				}
				rep, err := dst.LoadWeights(writeSafetensors(t, tensors))
				if err != nil {
					t.Fatalf("%s: %v", opts.Task, err)
				}
				slices.Sort(ignored)
				if !slices.Equal(rep.Ignored, ignored) {
					t.Errorf("%s: ignored %v, want %v", opts.Task, rep.Ignored, ignored)
				}
				for _, n := range rep.Initialized {
					if strings.HasPrefix(n, base) && !strings.HasPrefix(n, base+"pooler") {
						t.Errorf("%s: encoder parameter %s initialised fresh", opts.Task, n)
					}
				}
				srcFlat, dstFlat := src.Params.FlatSlice(), dst.Params.FlatSlice()
				for _, p := range src.Params.List() {
					if !strings.HasPrefix(p.Name, base) {
						continue
					}
					q := dst.Params.Get(p.Name)
					if i := firstDiff(srcFlat[p.Offset:p.Offset+p.Numel], dstFlat[q.Offset:q.Offset+q.Numel]); i >= 0 {
						t.Fatalf("%s: %s differs at %d", opts.Task, p.Name, i)
					}
				}
			}
		})
	}
}

// offsetPositions is transformers' create_position_ids_from_input_ids: positions count
// the non-padding ids from pad+1, padding ids keep pad, wherever they are.
func TestRobertaPositionIDs(t *testing.T) {
	b := &Batch{B: 2, L: 5, InputIDs: []int64{0, 7, 8, 2, 1, 0, 1, 9, 2, 1}}
	got := offsetPositions(b, 1)
	// cumsum(ids != 1) * (ids != 1) + 1, row by row.
	want := []int64{2, 3, 4, 5, 1, 2, 1, 3, 4, 1}
	if !slices.Equal(got, want) {
		t.Fatalf("positions %v, want %v", got, want)
	}
}

// RoBERTa reads the position embedding rows from pad+1 on: a model whose rows 0..pad are
// garbage gives the logits of one whose rows are anything else there, and moving the rows
// by one changes them; its padding row starts at zero and never trains; the length limit
// is what the offset leaves; pair token types are ignored (type_vocab_size 1).
func TestRobertaPositionOffset(t *testing.T) {
	lockThread(t)
	cfg := familyConfig(t, "roberta", 0)
	m := newModel(t, cfg, Options{Task: NER, NumLabels: 3}, 1)
	pos := m.Params.Get("roberta.embeddings.position_embeddings.weight")
	flat := m.Params.FlatSlice()
	row := func(i int) []float32 {
		return flat[pos.Offset+int64(i*cfg.HiddenSize) : pos.Offset+int64((i+1)*cfg.HiddenSize)]
	}
	if slices.ContainsFunc(row(1), func(v float32) bool { return v != 0 }) {
		t.Fatal("the padding row of the position embeddings is not zero")
	}
	r := rand.New(rand.NewPCG(1, 2))
	b := randomBatch(r, m, 12, []int{12, 7})
	for i, id := range b.InputIDs { // no padding id among the real tokens
		if id == 1 {
			b.InputIDs[i] = 5
		}
	}
	for i := range b.L {
		if b.AttentionMask[b.L+i] == 0 {
			b.InputIDs[b.L+i] = 1
		}
	}
	want, _, err := m.Infer(b)
	if err != nil {
		t.Fatal(err)
	}
	copy(row(0), row(5)) // rows below the offset are never read
	got, _, _ := m.Infer(b)
	if i := firstDiff(got, want); i >= 0 {
		t.Fatalf("row 0 changed logit %d", i)
	}
	b.TokenTypeIDs[3] = 1 // a pair's second segment: RoBERTa's tokenizer gives none
	got, _, err = m.Infer(b)
	if err != nil {
		t.Fatal(err)
	}
	if i := firstDiff(got, want); i >= 0 {
		t.Fatalf("a token type changed logit %d", i)
	}
	copy(row(2), row(40)) // the first token's row
	got, _, _ = m.Infer(b)
	if firstDiff(got, want) < 0 {
		t.Fatal("the first token does not read row pad+1")
	}

	m.Params.ZeroGrad()
	if _, err := m.Backward(b, 1); err != nil {
		t.Fatal(err)
	}
	g := m.Params.GradSlice()[pos.Offset+int64(cfg.HiddenSize) : pos.Offset+int64(2*cfg.HiddenSize)]
	if slices.ContainsFunc(g, func(v float32) bool { return v != 0 }) {
		t.Fatal("the padding row of the position embeddings has a gradient")
	}
	long := randomBatch(r, m, cfg.MaxLength()+1, []int{cfg.MaxLength() + 1})
	if _, err := m.Forward(long, false, false); err == nil || !strings.Contains(err.Error(), "sequence length 65 over the 64 positions max_position_embeddings 66 leaves after the offset 2") {
		t.Fatalf("too long: %v", err)
	}
}

// ALBERT declares one layer and applies it num_hidden_layers times; its gradient is the
// sum of the gradients the same weights get as separate layers (num_hidden_groups =
// num_hidden_layers, every group a copy).
func TestAlbertSharedLayer(t *testing.T) {
	lockThread(t)
	cfg := familyConfig(t, "albert", 0)
	opts := Options{Task: Classify, NumLabels: 2}
	shared := newModel(t, cfg, opts, 1)
	if len(shared.layers) != 3 || shared.layers[0] != shared.layers[1] || shared.layers[1] != shared.layers[2] {
		t.Fatalf("%d layers applied, not one shared three times", len(shared.layers))
	}
	ucfg := *cfg
	ucfg.NumHiddenGroups = 3
	unrolled := newModel(t, &ucfg, opts, 2)
	const g0 = "albert.encoder.albert_layer_groups.0."
	sf, uf := shared.Params.FlatSlice(), unrolled.Params.FlatSlice()
	for _, p := range unrolled.Params.List() {
		src := p.Name
		if rest, ok := strings.CutPrefix(p.Name, "albert.encoder.albert_layer_groups."); ok {
			src = g0 + rest[strings.Index(rest, ".")+1:]
		}
		q := shared.Params.Get(src)
		copy(uf[p.Offset:p.Offset+p.Numel], sf[q.Offset:q.Offset+q.Numel])
	}
	r := rand.New(rand.NewPCG(3, 4))
	b := randomBatch(r, shared, 10, []int{10, 6, 8})
	for _, m := range []*Model{shared, unrolled} {
		m.Params.ZeroGrad()
		if _, err := m.Backward(b, 1); err != nil {
			t.Fatal(err)
		}
	}
	sg, ug := shared.Params.GradSlice(), unrolled.Params.GradSlice()
	var worst float64
	for _, p := range shared.Params.List() {
		for i := range p.Numel {
			want := 0.0
			if rest, ok := strings.CutPrefix(p.Name, g0); ok {
				for g := range 3 {
					q := unrolled.Params.Get(fmt.Sprintf("albert.encoder.albert_layer_groups.%d.%s", g, rest))
					want += float64(ug[q.Offset+i])
				}
			} else {
				want = float64(ug[unrolled.Params.Get(p.Name).Offset+i])
			}
			d := math.Abs(float64(sg[p.Offset+i])-want) / (1e-3 + math.Abs(want))
			worst = max(worst, d)
		}
	}
	if worst > 1e-4 {
		t.Fatalf("shared gradient differs from the sum by %g (relative)", worst)
	}

	// Layer i applies group int(i / (layers / groups)): 3 layers in 2 groups are 0, 0, 1.
	gcfg := *cfg
	gcfg.NumHiddenGroups, gcfg.InnerGroupNum = 2, 2
	m := newModel(t, &gcfg, opts, 1)
	ly := func(g, j int) *layer {
		for _, l := range m.layers {
			if l.q.w.Name == fmt.Sprintf("albert.encoder.albert_layer_groups.%d.albert_layers.%d.attention.query.weight", g, j) {
				return l
			}
		}
		return nil
	}
	want := []*layer{ly(0, 0), ly(0, 1), ly(0, 0), ly(0, 1), ly(1, 0), ly(1, 1)}
	if !slices.Equal(m.layers, want) || slices.Contains(want, nil) {
		t.Fatal("3 layers in 2 groups of 2 are not applied as groups 0, 0, 1")
	}
	if _, err := New(cfg, Options{Task: NER, NumLabels: 2, Freeze: Freeze{Layers: 1}}); err == nil || !strings.Contains(err.Error(), "shares its layers") {
		t.Fatalf("freezing one shared layer: %v", err)
	}
}

// With sinusoidal_pos_embds DistilBERT's position embeddings are sin/cos of the
// position over 10000^(2i/dim), never train and are saved like any weight; without, they
// are learned.
func TestDistilbertSinusoidalPositions(t *testing.T) {
	lockThread(t)
	cfg := familyConfig(t, "distilbert", 0.1)
	cfg.SinusoidalPosEmbds = true
	m := newModel(t, cfg, Options{Task: Classify, NumLabels: 2}, 1)
	p := m.Params.Get(distilbertPositions)
	if p.Trainable || p.Offset < m.Params.TrainEnd {
		t.Fatal("sinusoidal positions are trainable")
	}
	flat := m.Params.FlatSlice()
	dim := cfg.HiddenSize
	for pos := range cfg.MaxPositionEmbeddings {
		for i := range dim / 2 { // the pair (2i, 2i+1) shares one frequency
			angle := float64(pos) * math.Exp(-float64(2*i)/float64(dim)*math.Log(10000))
			for k, want := range []float64{math.Sin(angle), math.Cos(angle)} {
				got := float64(flat[p.Offset+int64(pos*dim+2*i+k)])
				if math.Abs(got-want) > 1e-6 {
					t.Fatalf("position %d, column %d: %v, want %v", pos, 2*i+k, got, want)
				}
			}
		}
	}
	before := slices.Clone(flat[p.Offset : p.Offset+p.Numel])
	opt := NewAdamW(m.Params, 0.01)
	r := rand.New(rand.NewPCG(5, 6))
	for range 3 {
		trainStep(t, m, opt, randomBatch(r, m, 16, []int{16, 9}), 1e-2)
	}
	if firstDiff(m.Params.FlatSlice()[p.Offset:p.Offset+p.Numel], before) >= 0 {
		t.Fatal("sinusoidal positions moved in training")
	}
	dir := t.TempDir()
	if err := m.Save(dir, nil, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	back, _, err := Pretrained(dir, hf.Options{Offline: true}, Options{Task: Classify, NumLabels: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !back.Config.SinusoidalPosEmbds || back.Params.Get(distilbertPositions).Trainable {
		t.Fatal("the saved model lost its sinusoidal positions")
	}
	sameWeights(t, back, flatCopy(m), "reloaded")

	cfg.SinusoidalPosEmbds = false
	if !newModel(t, cfg, Options{Task: Classify, NumLabels: 2}, 1).Params.Get(distilbertPositions).Trainable {
		t.Fatal("learned positions do not train")
	}
}

// DistilBERT has no token type embeddings: type ids, which a BERT tokenizer gives for
// pairs, change nothing.
func TestDistilbertIgnoresTokenTypes(t *testing.T) {
	lockThread(t)
	m := newModel(t, familyConfig(t, "distilbert", 0), Options{Task: NER, NumLabels: 3}, 1)
	r := rand.New(rand.NewPCG(7, 8))
	b := randomBatch(r, m, 10, []int{10, 7})
	with, _, err := m.Infer(b)
	if err != nil {
		t.Fatal(err)
	}
	b.TokenTypeIDs = nil
	without, _, _ := m.Infer(b)
	if i := firstDiff(with, without); i >= 0 {
		t.Fatalf("token types changed logit %d", i)
	}
}

// Freezing the base freezes each family's whole base model (pooler included) and
// nothing of its head; freezing the embeddings includes ALBERT's and ELECTRA's
// projection to the hidden size; freezing a layer freezes it under the family's names.
func TestFamilyFreeze(t *testing.T) {
	lockThread(t)
	for _, mt := range modelTypes {
		cfg := familyConfig(t, mt, 0.1)
		m := newModel(t, cfg, Options{Task: Classify, NumLabels: 2, Freeze: Freeze{Base: true}}, 1)
		for _, p := range m.Params.List() {
			if p.Trainable == strings.HasPrefix(p.Name, m.fam.base) {
				t.Errorf("%s: %s trainable %v with the base frozen", mt, p.Name, p.Trainable)
			}
		}
		m = newModel(t, cfg, Options{Task: Classify, NumLabels: 2, Freeze: Freeze{Embeddings: true}}, 1)
		for _, p := range m.Params.List() {
			emb := strings.Contains(p.Name, "embeddings") || strings.Contains(p.Name, "embedding_hidden_mapping_in") ||
				strings.Contains(p.Name, "deberta.encoder.LayerNorm") || // the relative embeddings' norm
				strings.Contains(p.Name, "relative_attention_bias") || // MPNet's table of the relative positions' bias
				strings.Contains(p.Name, "emb_ln") // NomicBERT's embeddings' LayerNorm
			if p.Trainable == emb {
				t.Errorf("%s: %s trainable %v with the embeddings frozen", mt, p.Name, p.Trainable)
			}
		}
		if mt == "albert" {
			continue // one shared layer: refused (TestAlbertSharedLayer)
		}
		m = newModel(t, cfg, Options{Task: Classify, NumLabels: 2, Freeze: Freeze{Layers: 1}}, 1)
		layer0 := map[string]string{"bert": "bert.encoder.layer.0.", "roberta": "roberta.encoder.layer.0.",
			"electra": "electra.encoder.layer.0.", "distilbert": "distilbert.transformer.layer.0.", "modernbert": "model.layers.0.",
			"deberta-v2": "deberta.encoder.layer.0.", "mpnet": "mpnet.encoder.layer.0.", "nomic_bert": "bert.encoder.layers.0."}[mt]
		frozen := 0
		for _, p := range m.Params.List() {
			if p.Trainable == strings.HasPrefix(p.Name, layer0) {
				t.Errorf("%s: %s trainable %v with layer 0 frozen", mt, p.Name, p.Trainable)
			}
			if !p.Trainable {
				frozen++
			}
		}
		want := 16 // 4 projections, 2 feed-forward layers, 2 LayerNorms: weights and biases
		switch mt {
		case "modernbert":
			want = 5 // Wqkv, Wo, mlp_norm, Wi, Wo: weights alone
		case "nomic_bert":
			want = 9 // Wqkv, out_proj, fc11, fc12, fc2 without biases; norm1, norm2
		}
		if frozen != want {
			t.Errorf("%s: %d parameters frozen with layer 0", mt, frozen)
		}
	}
}

// Heads apply the family's dropout rates: a model in training mode with the head's
// dropout overridden to 0 computes what evaluation mode does, once the encoder's dropout
// is 0 too; the family's default rate is what transformers' class uses.
func TestFamilyHeadDropout(t *testing.T) {
	lockThread(t)
	drop := func(mt string, task Task) float64 {
		cfg := familyConfig(t, mt, 0.1)
		m := newModel(t, cfg, Options{Task: task, NumLabels: 2, HeadDropout: -1}, 1)
		if m.modern != nil {
			return m.modern.head.drop
		}
		return m.head.drop
	}
	for _, c := range []struct {
		mt   string
		task Task
		want float64
	}{
		{"distilbert", Classify, 0.2}, {"distilbert", NER, 0.1}, {"distilbert", QA, 0.1},
		{"roberta", Classify, 0.1}, {"roberta", QA, 0}, {"electra", NER, 0.1}, {"electra", QA, 0},
		{"albert", Classify, 0.1}, {"albert", QA, 0}, {"bert", QA, 0.1}, {"modernbert", Classify, 0}, {"modernbert", NER, 0},
		{"nomic_bert", Classify, 0.1}, {"nomic_bert", NER, 0.1},
	} {
		if got := drop(c.mt, c.task); got != c.want {
			t.Errorf("%s %s: head dropout %v, want %v", c.mt, c.task, got, c.want)
		}
	}
	for _, mt := range modelTypes {
		cfg := familyConfig(t, mt, 0)
		m := newModel(t, cfg, Options{Task: Classify, NumLabels: 3, HeadDropout: 0}, 1)
		b := randomBatch(rand.New(rand.NewPCG(9, 9)), m, 8, []int{8, 5})
		eval, _, err := m.Infer(b)
		if err != nil {
			t.Fatal(err)
		}
		out, err := m.Forward(b, true, false)
		if err != nil {
			t.Fatal(err)
		}
		// Inference runs the padded sequence without its padding (unpad.go): the same
		// values up to float rounding.
		train := hostFloats(out.Logits)
		for i := range train {
			if d := math.Abs(float64(train[i] - eval[i])); d > 1e-5 {
				t.Errorf("%s: training mode without dropout differs at %d by %g", mt, i, d)
			}
		}
	}
}

// A family's model saved with a custom head reloads with it.
func TestFamilyCustomHead(t *testing.T) {
	lockThread(t)
	for _, mt := range modelTypes {
		cfg := familyConfig(t, mt, 0.1)
		opts := Options{Task: Classify, NumLabels: 2, HeadHidden: 8}
		if mt == "modernbert" {
			if _, err := New(cfg, opts); err == nil || !strings.Contains(err.Error(), "ModernBERT's head already has its dense layer") {
				t.Errorf("modernbert with a custom head: %v", err)
			}
			continue
		}
		src := newModel(t, cfg, opts, 1)
		dir := t.TempDir()
		if err := src.Save(dir, nil, SaveOptions{Pytorch: true}); err != nil {
			t.Fatal(err)
		}
		for _, file := range []string{SafetensorsFile, PytorchFile} {
			dst := newModel(t, cfg, opts, 2)
			if _, err := dst.LoadWeights(filepath.Join(dir, file)); err != nil {
				t.Fatalf("%s %s: %v", mt, file, err)
			}
			sameWeights(t, dst, flatCopy(src), mt+" "+file)
		}
		b := randomBatch(rand.New(rand.NewPCG(1, 1)), src, 6, []int{6})
		if _, _, err := src.Infer(b); err != nil {
			t.Fatal(err)
		}
	}
}
