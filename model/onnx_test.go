package model

import (
	"errors"
	"io/fs"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/bertnode/bertnode/hf"
	"github.com/bertnode/bertnode/internal/ortrun"
	"github.com/bertnode/bertnode/onnx"
	"github.com/sugarme/gotch/ts"
)

// onnxCase is one exported model: a family's head, built by familyConfig's weights.
type onnxCase struct {
	name, modelType string
	opts            Options
	normalize       bool
	lora            bool                 // random adapters, which the export must merge
	tweak           func(*hf.BertConfig) // changes familyConfig's config, if set
}

// onnxFamilies are the families the export supports.
var onnxFamilies = []string{"bert", "distilbert", "roberta", "albert", "electra", "mpnet", "modernbert", "deberta-v2", "nomic_bert"}

// withTypes says whether the graph has token_type_ids, as optimum's configs declare it
// for BERT, ALBERT and ELECTRA, and for DeBERTa with token types (v2; v3 has none);
// RoBERTa's, DistilBERT's, MPNet's and ModernBERT's have none.
func withTypes(modelType string, cfg *hf.BertConfig) bool {
	return modelType == "bert" || modelType == "albert" || modelType == "electra" || modelType == "nomic_bert" || modelType == "deberta-v2" && cfg.TypeVocabSize > 1
}

func onnxCases() []onnxCase {
	heads := []struct {
		name      string
		opts      Options
		normalize bool
	}{
		{"classify", Options{Task: Classify, NumLabels: 3}, false},
		{"multilabel", Options{Task: MultiLabel, NumLabels: 4}, false},
		{"regression", Options{Task: Regression, NumLabels: 1}, false},
		{"ner", Options{Task: NER, NumLabels: 5}, false},
		{"qa", Options{Task: QA}, false},
		{"embed-mean-normalize", Options{Task: Embed, Pooling: PoolMean}, true},
		{"embed-cls", Options{Task: Embed, Pooling: PoolCLS}, false},
		{"embed-max", Options{Task: Embed, Pooling: PoolMax}, false},
		{"choice", Options{Task: Choice}, false},
		{"mlm", Options{Task: MLM}, false},
	}
	var out []onnxCase
	for _, mt := range onnxFamilies {
		for _, h := range heads {
			out = append(out, onnxCase{name: mt + "/" + h.name, modelType: mt, opts: h.opts, normalize: h.normalize})
		}
	}
	return append(out,
		onnxCase{name: "bert/custom-head", modelType: "bert", opts: Options{Task: Classify, NumLabels: 2, HeadHidden: 16}},
		onnxCase{name: "roberta/lora", modelType: "roberta", opts: Options{Task: Classify, NumLabels: 2, LoRA: testLoRA}, lora: true},
		onnxCase{name: "modernbert/classify-mean", modelType: "modernbert", opts: Options{Task: Classify, NumLabels: 2},
			tweak: func(c *hf.BertConfig) { c.ClassifierPooling = "mean" }},
		onnxCase{name: "modernbert/mlm-untied", modelType: "modernbert", opts: Options{Task: MLM},
			tweak: func(c *hf.BertConfig) {
				c.TieWordEmbeddings, c.DecoderBias, c.ClassifierBias, c.NormBias, c.ClassifierActivation = false, false, true, true, "silu"
			}},
		// DeBERTa-v2's kind: absolute positions, token types, its own position
		// projections, content-to-position only, no LayerNorm of the relative embeddings.
		onnxCase{name: "deberta-v2/v2-kind", modelType: "deberta-v2", opts: Options{Task: Classify, NumLabels: 2},
			tweak: func(c *hf.BertConfig) {
				c.PositionBiasedInput, c.TypeVocabSize, c.ShareAttKey, c.PosAttType, c.NormRelEbd = true, 2, false, hf.PosAttType{"c2p"}, "none"
			}},
	)
}

// build makes the case's model and exports it into a directory of its own.
func (c onnxCase) build(t *testing.T, seed int64) (*Model, string) {
	t.Helper()
	opts := c.opts
	opts.HeadDropout = -1
	cfg := familyConfig(t, c.modelType, 0.1)
	if c.modelType != "distilbert" { // whose 1e-12 transformers fixes
		// An epsilon that shows: under weights of this scale the families' own (1e-12,
		// 1e-5) move LayerNorm's outputs by less than float32 rounds.
		cfg.LayerNormEps = 0.1
	}
	if c.tweak != nil {
		c.tweak(cfg)
	}
	m := newModel(t, cfg, opts, seed)
	// Biases start at zero and LayerNorm weights at one: drawn around those instead, so
	// that a bias the graph leaves out shows.
	r := rand.New(rand.NewPCG(uint64(seed), 5))
	flat := m.Params.FlatSlice()
	for _, p := range m.Params.List() {
		if p.Init == InitZeros || p.Init == InitOnes {
			for i := p.Offset; i < p.Offset+p.Numel; i++ {
				flat[i] += float32(r.NormFloat64() * 0.2)
			}
		}
	}
	if c.lora {
		setAdapters(m, uint64(seed))
	}
	dir := t.TempDir()
	if err := m.SaveONNX(dir, nil, SaveOptions{Normalize: c.normalize}); err != nil {
		t.Fatal(err)
	}
	return m, filepath.Join(dir, ONNXFile)
}

// onnxBatch is sequences of the given lengths padded to the longest with the padding
// id, as a tokenizer pads them, two segments where the family has token types.
func onnxBatch(r *rand.Rand, m *Model, lens []int) *Batch {
	L := 0
	for _, n := range lens {
		L = max(L, n)
	}
	b := &Batch{B: len(lens), L: L, InputIDs: make([]int64, len(lens)*L), AttentionMask: make([]int64, len(lens)*L)}
	if m.Config.HasTokenTypes() {
		b.TokenTypeIDs = make([]int64, len(b.InputIDs))
	}
	for i, n := range lens {
		for j := range L {
			k := i*L + j
			b.InputIDs[k] = int64(m.Config.PaddingIdx())
			if j < n {
				b.InputIDs[k] = 3 + r.Int64N(int64(m.Config.VocabSize-3)) // above the padding ids
				b.AttentionMask[k] = 1
				if b.TokenTypeIDs != nil && j >= n/2 {
					b.TokenTypeIDs[k] = 1
				}
			}
		}
	}
	return b
}

// readONNX decodes a written model.onnx.
func readONNX(t *testing.T, path string) *onnx.ModelProto {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	mp := &onnx.ModelProto{}
	if err := proto.Unmarshal(data, mp); err != nil {
		t.Fatal(err)
	}
	return mp
}

// dims spells a value's shape: dynamic dimensions by name, fixed ones by size.
func dims(v *onnx.ValueInfoProto) string {
	var s []string
	for _, d := range v.GetType().GetTensorType().GetShape().GetDim() {
		if p := d.GetDimParam(); p != "" {
			s = append(s, p)
		} else {
			s = append(s, strconv.FormatInt(d.GetDimValue(), 10))
		}
	}
	return strings.Join(s, ",")
}

// The written file decodes to a well-formed graph (every node reads values produced
// before it, initializers fill their shapes, opset 17), with optimum's inputs and
// outputs, their dynamic axes, and every parameter once as an initializer: ALBERT's
// shared layer once though it runs three times, LoRA's adapters merged away.
func TestONNXGraphWellFormed(t *testing.T) {
	for _, c := range onnxCases() {
		t.Run(c.name, func(t *testing.T) {
			lockThread(t)
			m, path := c.build(t, 1)
			mp := readONNX(t, path)
			if err := onnx.Check(mp); err != nil {
				t.Fatal(err)
			}
			if v := mp.GetOpsetImport()[0].GetVersion(); v != 17 || mp.GetIrVersion() != 8 {
				t.Fatalf("opset %d, IR version %d; want 17 and 8", v, mp.GetIrVersion())
			}
			g := mp.GetGraph()
			var ins []string
			for _, in := range g.GetInput() {
				wantDims := "batch_size,sequence_length"
				if c.opts.Task == Choice {
					wantDims = "batch_size,num_choices,sequence_length"
				}
				if in.GetType().GetTensorType().GetElemType() != int32(onnx.TensorProto_INT64) || dims(in) != wantDims {
					t.Errorf("input %s: type %d, dims %s; want int64 [%s]", in.GetName(), in.GetType().GetTensorType().GetElemType(), dims(in), wantDims)
				}
				ins = append(ins, in.GetName())
			}
			want := "input_ids,attention_mask"
			if withTypes(c.modelType, m.Config) {
				want += ",token_type_ids"
			}
			if got := strings.Join(ins, ","); got != want {
				t.Errorf("inputs %s, want %s", got, want)
			}
			var outs []string
			for _, o := range g.GetOutput() {
				outs = append(outs, o.GetName()+"["+dims(o)+"]")
			}
			wantOuts := map[Task]string{
				Classify: "logits[batch_size,3]", MultiLabel: "logits[batch_size,4]", Regression: "logits[batch_size,1]",
				NER: "logits[batch_size,sequence_length,5]", QA: "start_logits[batch_size,sequence_length] end_logits[batch_size,sequence_length]",
				Embed:  "token_embeddings[batch_size,sequence_length,32] sentence_embedding[batch_size,32]",
				Choice: "logits[batch_size,num_choices]", MLM: "logits[batch_size,sequence_length,100]",
			}[c.opts.Task]
			if c.opts.NumLabels == 2 { // the cases past the families' heads
				wantOuts = "logits[batch_size,2]"
			}
			if got := strings.Join(outs, " "); got != wantOuts {
				t.Errorf("outputs %s, want %s", got, wantOuts)
			}
			inits := map[string][]int64{}
			for _, in := range g.GetInitializer() {
				inits[in.GetName()] = in.GetDims()
			}
			for _, p := range m.savedParams() {
				shape, ok := inits[p.Name]
				if tr, isT := inits[p.Name+".T"]; isT { // a dense layer's weight, as [in, out]
					if ok {
						t.Errorf("%s is an initializer twice, as it is and transposed", p.Name)
					}
					shape, ok = []int64{tr[1], tr[0]}, true
				}
				if row, folded := inits[p.Name+"[0]"]; folded && c.modelType == "roberta" { // the one token type's row
					shape, ok = []int64{1, row[0]}, true
				}
				if !ok {
					t.Errorf("%s %v: no initializer", p.Name, p.Shape)
				} else if !equalShape(shape, p.Shape) {
					t.Errorf("%s: initializer of shape %v, want %v", p.Name, shape, p.Shape)
				}
			}
			for name := range inits {
				if strings.Contains(name, "lora_") {
					t.Errorf("initializer %s: the adapters should be merged", name)
				}
			}
		})
	}
}

// An int8-quantized model, whose float weights are gone from its layers, is refused,
// and nothing is written.
func TestONNXRefusesInt8(t *testing.T) {
	lockThread(t)
	m := newModel(t, familyConfig(t, "bert", 0), Options{Task: Classify, NumLabels: 2}, 1)
	if err := m.Quantize(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := m.SaveONNX(dir, nil, SaveOptions{}); err == nil || !strings.Contains(err.Error(), "int8") {
		t.Errorf("an int8 model: %v, want a refusal naming int8", err)
	}
	if _, err := os.Stat(filepath.Join(dir, ConfigFile)); err == nil {
		t.Error("config.json written for a refused export")
	}
}

// onnxRun is one run of an exported model on a batch, with the outputs expected.
type onnxRun struct {
	name, family string
	m            *Model
	b            *Batch
	normalize    bool
	want         map[string][]float64 // by output name
	positions    [][2]int             // an mlm fixture's: want holds these rows alone
}

// newRun expects the outputs the graph computes from logits in Infer's layout:
// QA's [B, L, 2] as start and end, an embedding model's vectors (scaled to unit length
// with normalize) as sentence_embedding.
func newRun(name, family string, m *Model, b *Batch, logits []float64, normalize bool) onnxRun {
	r := onnxRun{name: name, family: family, m: m, b: b, normalize: normalize, want: map[string][]float64{}}
	switch m.Opts.Task {
	case QA:
		start, end := make([]float64, len(logits)/2), make([]float64, len(logits)/2)
		for k := range start {
			start[k], end[k] = logits[2*k], logits[2*k+1]
		}
		r.want["start_logits"], r.want["end_logits"] = start, end
	case Embed:
		if normalize {
			H, v := m.Config.HiddenSize, make([]float32, len(logits))
			for k, x := range logits {
				v[k] = float32(x)
			}
			for k := 0; k < len(v); k += H {
				Normalize(v[k : k+H])
			}
			logits = floats64(v)
		}
		r.want["sentence_embedding"] = logits
	default:
		r.want["logits"] = logits
	}
	return r
}

func floats64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// job is the run for ONNX Runtime: the batch as the graph takes it, token types only
// where the graph has them.
func (r onnxRun) job(path string, types bool) ortrun.Job {
	b := r.b
	shape := []int64{int64(b.B), int64(b.L)}
	if r.m.Opts.Task == Choice { // questions of two choices
		shape = []int64{int64(b.B / 2), 2, int64(b.L)}
	}
	tt := b.TokenTypeIDs
	if !types {
		tt = nil
	}
	return ortrun.Job{Model: path, Inputs: ortrun.Inputs(shape, b.InputIDs, b.AttentionMask, tt)}
}

// checkRuns compares ONNX Runtime's outputs res with the runs' expectations, within
// 1e-4 outside the padding (whose outputs nothing reads), and returns the largest
// difference per family. An embedding model's token_embeddings are compared where it
// pools by cls without normalizing: their first rows are the vectors.
func checkRuns(t *testing.T, runs []onnxRun, res []map[string]ortrun.Output, of string) map[string]float64 {
	t.Helper()
	worst := map[string]float64{}
	for i, r := range runs {
		b, want := r.b, r.want
		if r.m.Opts.Task == Embed {
			if _, ok := res[i]["token_embeddings"]; !ok || len(res[i]) != 2 {
				t.Fatalf("%s: outputs %v, want token_embeddings and sentence_embedding", r.name, res[i])
			}
		} else if len(res[i]) != len(want) {
			t.Fatalf("%s: %d outputs, want %d", r.name, len(res[i]), len(want))
		}
		if r.m.Opts.Pooling == PoolCLS && !r.normalize {
			tok, H := res[i]["token_embeddings"].Data, r.m.Config.HiddenSize
			var first []float64
			for row := range b.B {
				first = append(first, tok[row*b.L*H:row*b.L*H+H]...)
			}
			res[i]["token_embeddings[:, 0]"] = ortrun.Output{Data: first}
			want = map[string][]float64{"sentence_embedding": want["sentence_embedding"], "token_embeddings[:, 0]": want["sentence_embedding"]}
		}
		for name, w := range want {
			got, ok := res[i][name]
			if !ok {
				t.Fatalf("%s: no output %s", r.name, name)
			}
			if r.positions != nil {
				got.Data = rowsAt(got.Data, b, r.positions)
			}
			if len(got.Data) != len(w) {
				t.Fatalf("%s %s: %d values (dims %v), want %d", r.name, name, len(got.Data), got.Dims, len(w))
			}
			d := 0.0
			for k, x := range w {
				if r.positions != nil || !underPadding(r.m, b, len(w), k) {
					d = max(d, math.Abs(got.Data[k]-x))
				}
			}
			if d > 1e-4 {
				t.Errorf("%s %s, batch of %d x %d: ONNX Runtime's differs from %s by %.3g", r.name, name, b.B, b.L, of, d)
			}
			worst[r.family] = max(worst[r.family], d)
		}
	}
	return worst
}

// Each family's every exported head, run by ONNX Runtime, gives bertnode's own eval
// forward's outputs within 1e-4, on a batch of three sequences of different lengths
// padded to the longest (token heads compared on the real tokens, whose outputs are
// all a tokenizer's offsets read) and on a batch of one shorter sequence: the dynamic
// axes; multiple choice on two questions of two choices, then one. The weights are ten
// times BERT's initial scale (familyConfig), so a wrong activation, position or mask
// shows far above 1e-4.
func TestONNXRuntimeMatchesLibtorch(t *testing.T) {
	run := ortrun.Runner(t)
	var runs []onnxRun
	var jobs []ortrun.Job
	for i, c := range onnxCases() {
		func() {
			lockThread(t)
			m, path := c.build(t, int64(i+1))
			r := rand.New(rand.NewPCG(uint64(i), 7))
			batches := [][]int{{5, 11, 8}, {4}}
			if c.opts.Task == Choice {
				batches = [][]int{{5, 11, 8, 4}, {4, 3}}
			}
			for _, lens := range batches {
				b := onnxBatch(r, m, lens)
				logits, _, err := m.Infer(b)
				if err != nil {
					t.Fatal(err)
				}
				run := newRun(c.name, c.modelType, m, b, floats64(logits), c.normalize)
				runs, jobs = append(runs, run), append(jobs, run.job(path, withTypes(c.modelType, m.Config)))
			}
		}()
	}
	worst := checkRuns(t, runs, run(jobs), "libtorch's")
	for _, mt := range onnxFamilies {
		t.Logf("%s: max abs difference %.2g", mt, worst[mt])
	}
}

// The checkpoints transformers made (testdata/families: every family with the
// classify, multilabel, ner and qa heads, ModernBERT's masked-LM head too, XLM-RoBERTa
// and CamemBERT as RoBERTa's kin),
// exported and run by ONNX Runtime on transformers' own batch of real texts, give
// transformers' logits within 1e-4: the graph is transformers' model, not only
// bertnode's.
func TestONNXMatchesTransformersFixtures(t *testing.T) {
	run := ortrun.Runner(t)
	entries, err := os.ReadDir(fixtureDir)
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("no transformers fixtures in model/%s", fixtureDir)
	} else if err != nil {
		t.Fatal(err)
	}
	var runs []onnxRun
	var jobs []ortrun.Job
	for _, e := range entries {
		dir := filepath.Join(fixtureDir, e.Name())
		dirs := map[string]string{e.Name(): dir}
		if task, ok := strings.CutPrefix(e.Name(), "roberta-"); ok {
			dirs["xlm-roberta-"+task] = asKin(t, dir, "xlm-roberta", "XLMRoberta")
			dirs["camembert-"+task] = asKin(t, dir, "camembert", "Camembert")
		}
		for name, dir := range dirs {
			func() {
				lockThread(t)
				exp, cfg, m, _, b := loadFixture(t, dir)
				out := t.TempDir()
				if err := m.SaveONNX(out, cfg.Labels(), SaveOptions{}); err != nil {
					t.Fatal(err)
				}
				run := newRun(name, cfg.ModelType, m, b, exp.Logits, false)
				run.positions = exp.Positions
				runs, jobs = append(runs, run), append(jobs, run.job(filepath.Join(out, ONNXFile), withTypes(cfg.ModelType, cfg)))
			}()
		}
	}
	worst := checkRuns(t, runs, run(jobs), "transformers'")
	for _, family := range slices.Sorted(maps.Keys(worst)) {
		t.Logf("%s: max abs difference %.2g", family, worst[family])
	}
}

// ONNX's own checker (Debian's python3-onnx, 1.12), with its shape inference, accepts
// every exported graph; skipped where it is not installed.
func TestONNXChecker(t *testing.T) {
	python := ""
	for _, p := range []string{"python3", "/usr/bin/python3"} { // Debian's module is the system Python's
		if exec.Command(p, "-c", "import onnx").Run() == nil {
			python = p
			break
		}
	}
	if python == "" {
		t.Skip("no python3 with the onnx module: this test runs ONNX's checker (apt-get install python3-onnx)")
	}
	var paths []string
	for i, c := range onnxCases() {
		func() {
			lockThread(t)
			_, path := c.build(t, int64(i+1))
			paths = append(paths, path)
		}()
	}
	const check = "import onnx, sys\nfor p in sys.argv[1:]:\n    onnx.checker.check_model(onnx.load(p), full_check=True)"
	if out, err := exec.Command(python, append([]string{"-c", check}, paths...)...).CombinedOutput(); err != nil {
		t.Fatalf("onnx.checker: %v\n%s", err, out)
	}
}

// Every activation a config may name (hf's list) computes in ONNX Runtime what
// activation computes with libtorch, over [-6, 6].
func TestONNXActivationsMatchLibtorch(t *testing.T) {
	run := ortrun.Runner(t)
	lockThread(t)
	names := []string{"gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh", "gelu_python", "quick_gelu", "relu", "relu6", "silu", "swish", "tanh", "sigmoid", "mish", "linear"}
	xs := make([]float32, 49)
	for i := range xs {
		xs[i] = -6 + 0.25*float32(i)
	}
	g := onnx.NewGraph("activations")
	x := g.Float("x", []int64{int64(len(xs))}, xs)
	for _, name := range names {
		g.Output(name, onnxActivation(g, name, x), onnx.TensorProto_FLOAT, onnx.Dim{Size: int64(len(xs))})
	}
	mp, err := g.Model("test")
	if err != nil {
		t.Fatal(err)
	}
	data, err := proto.Marshal(mp)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), ONNXFile)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	res := run([]ortrun.Job{{Model: path, Inputs: map[string]ortrun.Input{}}})[0]
	for _, name := range names {
		act, err := activation(name)
		if err != nil {
			t.Fatal(err)
		}
		want := hostFloats(act(ts.MustOfSlice(xs)))
		d := 0.0
		for i, w := range want {
			d = max(d, math.Abs(res[name].Data[i]-float64(w)))
		}
		if d > 1e-6 {
			t.Errorf("%s: ONNX Runtime's differs from libtorch's by %.3g", name, d)
		}
	}
}
