package model

import (
	"cmp"
	"fmt"
	"strings"

	"github.com/bertnode/bertnode/hf"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// mlmSpec names a family's masked-LM head as transformers' XForMaskedLM does:
// dense -> activation -> LayerNorm -> decoder, the decoder's weight being the word
// embeddings (tied: one parameter used twice, whose gradient sums both uses) and its
// bias a parameter of the head.
type mlmSpec struct {
	dense, norm, bias string
	// act names the activation as config.json names activations; nil: the config's
	// hidden_act.
	act func(c *hf.BertConfig) string
	eps float64 // 0: the config's layer_norm_eps
	// biases says whether dense, norm and the decoder have biases, where the config
	// decides (ModernBERT's, NomicBERT's); nil: all three have.
	biases func(c *hf.BertConfig) (dense, norm, decoder bool)
	// untied names the decoder's own weight, which a config with tie_word_embeddings
	// false has (ModernBERT's); "": the family always ties it.
	untied string
	// arch is the head's class after the family's prefix where it is not ForMaskedLM
	// (NomicBERT's hub code has NomicBertForPreTraining alone).
	arch string
	// aliases are other checkpoints' prefixes of the head's names, read as the prefixes
	// they map to (DeBERTa's lm_predictions.lm_head).
	aliases map[string]string
	// ignored are checkpoint prefixes that stay ignorable for mlm: the decoder's tied
	// copies of the word embeddings and of the bias, which transformers re-ties on load,
	// and the other pretraining heads (BERT's next-sentence, ALBERT's sentence-order).
	ignored []string
}

// mlmHead is the masked-LM head: logits over the vocabulary at every position.
type mlmHead struct {
	dense   linear
	act     func(*ts.Tensor) *ts.Tensor
	actName string // act's name, for the ONNX export
	norm    layerNorm
	decoder *Param // the decoder's weight [V, E]: the word embeddings unless untied
	bias    *Param // [V], or nil (ModernBERT's decoder_bias false)
}

// declareMLM declares the family's masked-LM head on top of the declared embeddings:
// dense maps the hidden size to the word embeddings' width (ALBERT's embedding_size).
func (m *Model) declareMLM(s *mlmSpec) {
	c := m.Config
	v, e := m.emb.word.Shape[0], m.emb.word.Shape[1]
	name := c.HiddenAct
	if s.act != nil {
		name = s.act(c)
	}
	act, _ := activation(name) // New checked hidden_act; the families name known ones
	dense, norm, decoder := true, true, true
	if s.biases != nil {
		dense, norm, decoder = s.biases(c)
	}
	hd := &mlmHead{
		dense: m.dense(s.dense, int(e), c.HiddenSize, dense), act: act, actName: name,
		norm: m.norm(s.norm, int(e), cmp.Or(s.eps, c.LayerNormEps), norm), decoder: m.emb.word,
	}
	if s.untied != "" && !c.TieWordEmbeddings {
		hd.decoder = m.Params.add(s.untied, []int64{v, e}, InitNormal)
	}
	if decoder {
		hd.bias = m.Params.add(s.bias, []int64{v}, InitZeros)
	}
	m.head.mlm = hd
}

// fwd computes the logits [B, L, V] from the last hidden states h [B, L, H], taking
// ownership of h.
func (hd *mlmHead) fwd(h *ts.Tensor) *ts.Tensor {
	x := hd.act(hd.dense.fwd(h))
	h.MustDrop()
	n := hd.norm.fwd(x)
	x.MustDrop()
	out := ts.MustLinear(n, hd.decoder.T, hd.bias.tensor())
	n.MustDrop()
	return out
}

// mlmLogits is the masked-LM head on the last hidden states h [B, L, H], which it
// takes ownership of: with labels the masked rows' logits alone, [masked, V], which is
// all the loss reads; without, every position's, [B, L, V].
func (m *Model) mlmLogits(h *ts.Tensor, b *Batch) *ts.Tensor {
	if b.Labels != nil {
		h = maskedRows(h, b, m.Opts.Device)
	}
	return m.head.mlm.fwd(h)
}

// checkMLM refuses mlm for a DeBERTa-v2 config whose transformers head has the names
// bertnode reads but does not write; every family has a masked-LM head.
func checkMLM(f *family, c *hf.BertConfig) error {
	if f != debertaV2Family {
		return nil
	}
	if legacy, err := c.LegacyMLMHead(); err != nil || !legacy {
		return cmp.Or(err, fmt.Errorf("model: task mlm: deberta-v2 with legacy false: its head would be saved as cls.predictions, which transformers reads only with legacy true; drop legacy from config.json"))
	}
	return nil
}

// canonical is name with an alias's prefix replaced by the one it stands for.
func (s *mlmSpec) canonical(name string) string {
	for from, to := range s.aliases {
		if rest, ok := strings.CutPrefix(name, from); ok {
			return to + rest
		}
	}
	return name
}

// ignorable says whether an mlm model may leave a checkpoint tensor out.
func (s *mlmSpec) ignorable(name string) bool {
	for _, p := range s.ignored {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// maskedRows is the rows of h [B, L, H] whose label is not IgnoreIndex, [masked, H], in
// order, taking ownership of h: at 15% masked the decoder, a [V, E] matmul per row,
// computes a seventh of the logits a full one would.
func maskedRows(h *ts.Tensor, b *Batch, dev gotch.Device) *ts.Tensor {
	flat := h.MustView([]int64{int64(b.B * b.L), -1}, true)
	defer flat.MustDrop()
	return selectRows(flat, keptRows(b.Labels, IgnoreIndex), dev)
}

// maskedLabels is the labels of the masked tokens, in order: the targets of maskedRows.
func maskedLabels(labels []int64) []int64 {
	var out []int64
	for _, l := range labels {
		if l != IgnoreIndex {
			out = append(out, l)
		}
	}
	return out
}
