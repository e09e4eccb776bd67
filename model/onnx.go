package model

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"

	"google.golang.org/protobuf/proto"

	"github.com/bertnode/bertnode/internal/atomicfile"
	"github.com/bertnode/bertnode/onnx"
)

// ONNXFile is the exported graph's file name, optimum's.
const ONNXFile = "model.onnx"

// The dynamic axes of the graph's inputs and outputs, as optimum names them.
var (
	batchDim = onnx.Dim{Param: "batch_size"}
	seqDim   = onnx.Dim{Param: "sequence_length"}
)

// SaveONNX writes the model as optimum-cli export onnx does for the same checkpoint:
// model.onnx beside config.json (and an embedding model's sentence-transformers files,
// as Save writes them), so that with the tokenizer's files the directory loads in
// optimum's ORTModel classes and transformers.js. The graph is the eval-mode forward:
//
//   - inputs input_ids, attention_mask and, where the family reads token types
//     (type_vocab_size > 1: BERT, ALBERT, ELECTRA, NomicBERT, DeBERTa-v2), token_type_ids; int64
//     [batch_size, sequence_length], multiple choice's [batch_size, num_choices,
//     sequence_length].
//   - outputs: classify, multilabel and regression logits [batch_size, labels] (no
//     softmax or sigmoid, as transformers' models); ner logits [batch_size,
//     sequence_length, labels]; qa start_logits and end_logits [batch_size,
//     sequence_length]; choice logits [batch_size, num_choices]; mlm logits
//     [batch_size, sequence_length, vocabulary]; embed token_embeddings [batch_size,
//     sequence_length, hidden] and sentence_embedding [batch_size, hidden], pooled as
//     the model pools and, with opts.Normalize, scaled to unit length: optimum's outputs
//     for a sentence-transformers model.
//
// LoRA adapters are merged into the weights. Every family and head is exported.
func (m *Model) SaveONNX(dir string, labels []string, opts SaveOptions) error {
	mp, err := m.onnxModel(opts.Normalize)
	if err != nil {
		return err
	}
	if err := m.saveConfig(dir, labels, opts); err != nil {
		return err
	}
	// The graph itself takes well under a megabyte: the weights decide whether the
	// whole fits in one protobuf message.
	external := filepath.Join(dir, onnx.ExternalDataFile)
	apart := opts.ONNXExternalData || onnx.WeightBytes(mp) >= onnx.MaxBytes-16<<20
	if apart {
		if err := atomicfile.Write(external, 0o644, func(w io.Writer) error {
			return onnx.Externalize(mp, onnx.ExternalDataFile, w)
		}); err != nil {
			return err
		}
	}
	data, err := proto.Marshal(mp)
	if err != nil {
		return fmt.Errorf("export: onnx: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, ONNXFile), data, 0o644); err != nil {
		return err
	}
	if !apart { // an earlier export's weights, which nothing reads now
		if err := os.Remove(external); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// onnxExport builds the graph of one model.
type onnxExport struct {
	m     *Model
	g     *onnx.Graph
	flat  []float32         // the weights, LoRA merged
	inits map[string]string // initializers by parameter (and layout), once each: ALBERT's layers are shared
	// choices is multiple choice's [batch_size, num_choices], the shape its scores take.
	choices string
}

// onnxModel is the model's eval-mode forward as an ONNX graph; the vectors of an
// embedding model are scaled to unit length with normalize.
func (m *Model) onnxModel(normalize bool) (*onnx.ModelProto, error) {
	if m.quantized {
		return nil, fmt.Errorf("export: onnx: the model is quantized to int8; export its float32 checkpoint")
	}
	defer runtime.KeepAlive(m) // flat is a view of the model's memory on the CPU
	e := &onnxExport{m: m, g: onnx.NewGraph(m.architecture()), flat: m.mergedFlat(), inits: map[string]string{}}
	g := e.g
	dims := []onnx.Dim{batchDim, seqDim}
	if m.Opts.Task == Choice {
		dims = []onnx.Dim{batchDim, {Param: "num_choices"}, seqDim}
	}
	ids := g.Input("input_ids", onnx.TensorProto_INT64, dims...)
	mask := g.Input("attention_mask", onnx.TensorProto_INT64, dims...)
	types := ""
	if m.emb.typ != nil && m.Config.HasTokenTypes() {
		types = g.Input("token_type_ids", onnx.TensorProto_INT64, dims...)
	}
	if m.Opts.Task == Choice { // every choice a sequence of one batch, as transformers' view(-1, L)
		e.choices = g.Op("Shape", []string{ids}, onnx.Int("start", 0), onnx.Int("end", 2))
		flat := func(x string) string {
			shape := g.Op("Concat", []string{g.Ints(-1), g.Op("Shape", []string{x}, onnx.Int("start", 2))}, onnx.Int("axis", 0))
			return g.Op("Reshape", []string{x, shape})
		}
		ids, mask = flat(ids), flat(mask)
		if types != "" {
			types = flat(types)
		}
	}
	ext := e.additiveMask(mask)
	if m.modern != nil {
		e.modernBERT(ids, mask, ext, normalize)
	} else {
		var h string
		var rel *onnxRelative
		switch {
		case m.deberta != nil:
			h, rel = e.debertaEmbeddings(ids, types, mask), e.relative(ids)
		case m.mpnet != nil: // every layer adds it to its scores, with the mask
			h, ext = e.embeddings(ids, types), e.positionBias(mask, ext)
		default:
			h = e.embeddings(ids, types)
		}
		for _, ly := range m.layers {
			h = e.layer(ly, h, ext, rel)
		}
		e.head(h, mask, normalize)
	}
	mp, err := g.Model("bertnode")
	if err != nil {
		return nil, fmt.Errorf("export: onnx: %w", err)
	}
	return mp, nil
}

// param is p's initializer, its values as the model holds them.
func (e *onnxExport) param(p *Param) string {
	if name, ok := e.inits[p.Name]; ok {
		return name
	}
	name := e.g.Float(p.Name, p.Shape, e.flat[p.Offset:p.Offset+p.Numel])
	e.inits[p.Name] = name
	return name
}

// linear is x times the layer's weight, transposed to [in, out] once here (as torch.onnx
// exports nn.Linear: a MatMul on 3-D inputs), plus its bias.
func (e *onnxExport) linear(x string, l *linear) string {
	key := l.w.Name + "#T"
	w, ok := e.inits[key]
	if !ok {
		out, in := l.w.Shape[0], l.w.Shape[1]
		src := e.flat[l.w.Offset : l.w.Offset+l.w.Numel]
		t := make([]float32, len(src))
		for i := range out {
			for j := range in {
				t[j*out+i] = src[i*in+j]
			}
		}
		w = e.g.Float(l.w.Name+".T", []int64{in, out}, t)
		e.inits[key] = w
	}
	y := e.g.Op("MatMul", []string{x, w})
	if l.b != nil {
		y = e.g.Op("Add", []string{y, e.param(l.b)})
	}
	return y
}

func (e *onnxExport) layerNorm(x string, n *layerNorm) string {
	in := []string{x, e.param(n.w)}
	if n.b != nil {
		in = append(in, e.param(n.b))
	}
	return e.g.Op("LayerNormalization", in, onnx.Int("axis", -1), onnx.Float32("epsilon", float32(n.eps)))
}

// embeddings computes the first layer's input [B, L, H] from ids (and the token types,
// where the graph has them), as embeddings.fwd does.
func (e *onnxExport) embeddings(ids, types string) string {
	h := e.layerNorm(e.embeddingSum(ids, types), &e.m.emb.norm)
	if p := e.m.emb.proj; p != nil {
		h = e.linear(h, p)
	}
	return h
}

// embeddingSum is the word, position (where the family has them) and token type
// embeddings of ids, summed; types "" is every token of type 0.
func (e *onnxExport) embeddingSum(ids, types string) string {
	g, c, emb := e.g, e.m.Config, &e.m.emb
	x := g.Op("Gather", []string{e.param(emb.word), ids})
	var pe string
	switch {
	case emb.pos == nil: // DeBERTa-v3's: none
	case c.PositionOffset() > 0:
		// offsetPositions: real tokens (by id) count up from pad+1, padding gets pad.
		pad := g.IntScalar(int64(c.PaddingIdx()))
		real := g.Op("Cast", []string{g.Op("Not", []string{g.Op("Equal", []string{ids, pad})})}, onnx.Int("to", int64(onnx.TensorProto_INT64)))
		count := g.Op("CumSum", []string{real, g.IntScalar(1)})
		pos := g.Op("Add", []string{g.Op("Mul", []string{count, real}), pad})
		pe = g.Op("Gather", []string{e.param(emb.pos), pos})
	default: // the table's first L rows, broadcast over the batch
		pe = g.Op("Slice", []string{e.param(emb.pos), g.Ints(0), e.length(ids), g.Ints(0)})
	}
	if pe != "" {
		x = g.Op("Add", []string{x, pe})
	}
	switch {
	case types != "":
		x = g.Op("Add", []string{x, g.Op("Gather", []string{e.param(emb.typ), types})})
	case emb.typ != nil: // one token type, which every token has (RoBERTa's)
		p := emb.typ
		row := p.Shape[1]
		x = g.Op("Add", []string{x, g.Float(p.Name+"[0]", []int64{row}, e.flat[p.Offset:p.Offset+row])})
	}
	return x
}

// additiveMask is additiveMask's [B, 1, 1, L]: 0 for tokens, the lowest float for
// padding.
func (e *onnxExport) additiveMask(mask string) string {
	g := e.g
	mf := g.Op("Cast", []string{mask}, onnx.Int("to", int64(onnx.TensorProto_FLOAT)))
	pad := g.Op("Sub", []string{g.Scalar(1), mf})
	return g.Op("Unsqueeze", []string{g.Op("Mul", []string{pad, g.Scalar(-math.MaxFloat32)}), g.Ints(1, 2)})
}

// positionBias is MPNet's relative attention bias (Model.positionBias), [1, heads, L,
// L], plus the mask ext: for query i and key j the bias table's row of the bucket of
// i - j, looked up in the model's table of each distance's bucket.
func (e *onnxExport) positionBias(mask, ext string) string {
	g, mp := e.g, e.m.mpnet
	buckets := mp.bucket.Int64Values(false)
	table := g.Int64("mpnet.relative_position_bucket", []int64{int64(len(buckets))}, buckets)
	idx := g.Op("Gather", []string{table, g.Op("Add", []string{e.distances(e.length(mask)), g.IntScalar(int64(mp.maxPos - 1))})})
	bias := g.Op("Transpose", []string{g.Op("Gather", []string{e.param(mp.table), idx})}, onnx.Ints("perm", 2, 0, 1))
	return g.Op("Add", []string{g.Op("Unsqueeze", []string{bias, g.Ints(0)}), ext})
}

// length is the sequence length of x [B, L], as a [1] tensor (what Slice takes).
func (e *onnxExport) length(x string) string {
	return e.g.Op("Shape", []string{x}, onnx.Int("start", 1), onnx.Int("end", 2))
}

// distances are i - j for the positions i, j < L, [L, L] (L a [1] tensor).
func (e *onnxExport) distances(L string) string {
	g := e.g
	pos := g.Op("Range", []string{g.IntScalar(0), g.Op("Squeeze", []string{L, g.Ints(0)}), g.IntScalar(1)})
	return g.Op("Sub", []string{g.Op("Unsqueeze", []string{pos, g.Ints(1)}), g.Op("Unsqueeze", []string{pos, g.Ints(0)})})
}

// layer is layer.fwd in eval mode on h [B, L, H], with DeBERTa's relative attention
// where rel is not nil.
func (e *onnxExport) layer(ly *layer, h, ext string, rel *onnxRelative) string {
	g, c := e.g, e.m.Config
	var q, k, v string
	if ly.qkv != nil { // NomicBERT's fused projection, [q | k | v]
		qkv := g.OpN("Split", []string{e.linear(h, ly.qkv)}, 3, onnx.Int("axis", -1))
		q, k, v = e.heads(qkv[0]), e.heads(qkv[1]), e.heads(qkv[2])
	} else {
		q, k, v = e.heads(e.linear(h, &ly.q)), e.heads(e.linear(h, &ly.k)), e.heads(e.linear(h, &ly.v))
	}
	if ly.rope != nil { // NomicBERT's rotary positions
		L := e.length(h)
		q, k = e.rotate(ly.rope, q, L, c.RotaryEmbBase), e.rotate(ly.rope, k, L, c.RotaryEmbBase)
	}
	var ctx string
	if ly.rel != nil {
		ctx = e.attendRelative(ly.rel, rel, q, k, v, ext)
	} else {
		ctx = e.attend(q, k, v, ext)
	}
	a := e.layerNorm(g.Op("Add", []string{e.linear(ctx, &ly.attnOut), h}), &ly.attnNorm)
	var f string
	if ly.gate != nil { // NomicBERT's gated feed-forward, inter(a) · act(gate(a))
		f = g.Op("Mul", []string{e.linear(a, &ly.inter), onnxActivation(g, c.FeedForwardAct(), e.linear(a, ly.gate))})
	} else {
		f = onnxActivation(g, c.FeedForwardAct(), e.linear(a, &ly.inter))
	}
	return e.layerNorm(g.Op("Add", []string{e.linear(f, &ly.out), a}), &ly.outNorm)
}

// heads splits x [B, L, H] into the heads' [B, heads, L, d].
func (e *onnxExport) heads(x string) string {
	g, c := e.g, e.m.Config
	x = g.Op("Reshape", []string{x, g.Ints(0, 0, int64(c.NumAttentionHeads), int64(c.HeadSize()))}) // 0 keeps the input's size
	return g.Op("Transpose", []string{x}, onnx.Ints("perm", 0, 2, 1, 3))
}

// attend is attend's softmax(q kᵀ / √d + ext) v for q, k, v [B, heads, L, d], as the
// context [B, L, H].
func (e *onnxExport) attend(q, k, v, ext string) string {
	g, c := e.g, e.m.Config
	kt := g.Op("Transpose", []string{k}, onnx.Ints("perm", 0, 1, 3, 2))
	scores := g.Op("Mul", []string{g.Op("MatMul", []string{q, kt}), g.Scalar(float32(1 / math.Sqrt(float64(c.HeadSize()))))})
	return e.context(g.Op("Add", []string{scores, ext}), v)
}

// context is softmaxContext's context [B, L, H] from the scores [B, heads, L, L] and v.
func (e *onnxExport) context(scores, v string) string {
	g, c := e.g, e.m.Config
	probs := g.Op("Softmax", []string{scores}, onnx.Int("axis", -1))
	ctx := g.Op("Transpose", []string{g.Op("MatMul", []string{probs, v})}, onnx.Ints("perm", 0, 2, 1, 3))
	return g.Op("Reshape", []string{ctx, g.Ints(0, 0, int64(c.HiddenSize))})
}

// head is head.fwd in eval mode on the last hidden states h [B, L, H], with the task's
// outputs.
func (e *onnxExport) head(h, mask string, normalize bool) {
	g, hd := e.g, &e.m.head
	if hd.pool != "" {
		e.embedOutputs(h, mask, hd.pool, normalize)
		return
	}
	if hd.mlm != nil {
		e.mlmHead(h)
		return
	}
	x := h
	if hd.first {
		x = g.Op("Gather", []string{h, g.IntScalar(0)}, onnx.Int("axis", 1))
	}
	if hd.pre != nil {
		x = onnxActivation(g, hd.preActName, e.linear(x, hd.pre))
	}
	if hd.hidden != nil {
		x = onnxActivation(g, "gelu", e.linear(x, hd.hidden))
	}
	e.logitsOutputs(e.linear(x, &hd.out), hd.first)
}

// mlmHead is mlmHead.fwd on h [B, L, H], with the logits output. A tied decoder is the
// word embeddings, transposed by the graph: stored once.
func (e *onnxExport) mlmHead(h string) {
	g, l := e.g, e.m.head.mlm
	x := e.layerNorm(onnxActivation(g, l.actName, e.linear(h, &l.dense)), &l.norm)
	y := g.Op("MatMul", []string{x, g.Op("Transpose", []string{e.param(l.decoder)}, onnx.Ints("perm", 1, 0))})
	if l.bias != nil {
		y = g.Op("Add", []string{y, e.param(l.bias)})
	}
	e.logitsOutputs(y, false)
}

// embedOutputs are an embedding model's: the last hidden states h, and their pooling
// by mode under mask, normalized with normalize.
func (e *onnxExport) embedOutputs(h, mask, mode string, normalize bool) {
	g, width := e.g, onnx.Dim{Size: int64(e.m.Config.HiddenSize)}
	g.Output("token_embeddings", h, onnx.TensorProto_FLOAT, batchDim, seqDim, width)
	v := e.pool(h, mask, mode)
	if normalize { // torch.nn.functional.normalize: v / max(‖v‖, 1e-12)
		n := g.Op("Max", []string{g.Op("ReduceL2", []string{v}, onnx.Ints("axes", -1), onnx.Int("keepdims", 1)), g.Scalar(1e-12)})
		v = g.Op("Div", []string{v, n})
	}
	g.Output("sentence_embedding", v, onnx.TensorProto_FLOAT, batchDim, width)
}

// logitsOutputs are a head's output layer's: logits per sequence (seq) or per token,
// QA's start and end logits, or multiple choice's score of each choice.
func (e *onnxExport) logitsOutputs(x string, seq bool) {
	g, float := e.g, onnx.TensorProto_FLOAT
	n := onnx.Dim{Size: int64(e.m.Opts.NumLabels)}
	switch {
	case e.choices != "":
		g.Output("logits", g.Op("Reshape", []string{x, e.choices}), float, batchDim, onnx.Dim{Param: "num_choices"})
	case seq:
		g.Output("logits", x, float, batchDim, n)
	case e.m.Opts.Task == QA:
		ends := g.OpN("Split", []string{x}, 2, onnx.Int("axis", -1))
		for i, name := range []string{"start_logits", "end_logits"} {
			g.Output(name, g.Op("Squeeze", []string{ends[i], g.Ints(-1)}), float, batchDim, seqDim)
		}
	default:
		g.Output("logits", x, float, batchDim, seqDim, n)
	}
}

// pool is pool's [B, H] from h [B, L, H] under mask [B, L].
func (e *onnxExport) pool(h, mask, mode string) string {
	g := e.g
	if mode == PoolCLS {
		return g.Op("Gather", []string{h, g.IntScalar(0)}, onnx.Int("axis", 1))
	}
	m := g.Op("Unsqueeze", []string{mask, g.Ints(-1)}) // [B, L, 1]
	if mode == PoolMax {
		pad := g.Op("Equal", []string{m, g.IntScalar(0)})
		return g.Op("ReduceMax", []string{g.Op("Where", []string{pad, g.Scalar(-1e9), h})}, onnx.Ints("axes", 1), onnx.Int("keepdims", 0))
	}
	mf := g.Op("Cast", []string{m}, onnx.Int("to", int64(onnx.TensorProto_FLOAT)))
	sum := g.Op("ReduceSum", []string{g.Op("Mul", []string{h, mf}), g.Ints(1)}, onnx.Int("keepdims", 0))
	n := g.Op("Max", []string{g.Op("ReduceSum", []string{mf, g.Ints(1)}, onnx.Int("keepdims", 0)), g.Scalar(1e-9)})
	return g.Op("Div", []string{sum, n})
}

// onnxActivation applies the activation config.json calls name to x, as activation
// does. Configs name only activations both know (hf checks them), so another name is a
// bug here.
func onnxActivation(g *onnx.Graph, name, x string) string {
	op := func(op string, in ...string) string { return g.Op(op, in) }
	switch name {
	case "gelu", "gelu_python": // the exact form, x/2 (1 + erf(x/√2))
		erf := op("Erf", op("Mul", x, g.Scalar(math.Sqrt2/2)))
		return op("Mul", op("Mul", x, g.Scalar(0.5)), op("Add", erf, g.Scalar(1)))
	case "gelu_new", "gelu_fast", "gelu_pytorch_tanh": // x/2 (1 + tanh(√(2/π) (x + 0.044715 x³)))
		cube := op("Mul", op("Mul", op("Mul", x, x), x), g.Scalar(0.044715))
		t := op("Tanh", op("Mul", op("Add", x, cube), g.Scalar(float32(math.Sqrt(2/math.Pi)))))
		return op("Mul", op("Mul", x, g.Scalar(0.5)), op("Add", t, g.Scalar(1)))
	case "quick_gelu":
		return op("Mul", x, op("Sigmoid", op("Mul", x, g.Scalar(1.702))))
	case "relu":
		return op("Relu", x)
	case "relu6":
		return op("Clip", x, g.Scalar(0), g.Scalar(6))
	case "silu", "swish":
		return op("Mul", x, op("Sigmoid", x))
	case "mish":
		return op("Mul", x, op("Tanh", op("Softplus", x)))
	case "tanh":
		return op("Tanh", x)
	case "sigmoid":
		return op("Sigmoid", x)
	case "linear":
		return x
	}
	panic(fmt.Sprintf("model: activation %q has no ONNX form", name))
}
