package model

import (
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// embeddings turn token ids into the first layer's input: word + position (+ token type)
// embeddings (NomicBERT's without positions, which it rotates in attention), LayerNorm
// and dropout, then, where the family factorizes its embeddings (ALBERT, ELECTRA), a
// linear map from their width to the hidden size.
type embeddings struct {
	word, pos *Param // pos is nil where positions are rotary (NomicBERT)
	typ       *Param // nil: no token types (DistilBERT)
	norm      layerNorm
	proj      *linear
}

// declareEmbeddings declares word_embeddings, position_embeddings, token_type_embeddings
// (withTypes) and LayerNorm under prefix, of the config's embedding_size or else hidden
// width. The padding row of the word embeddings starts at zero, as in transformers; so
// does RoBERTa's (and MPNet's) position row of the padding index.
func (m *Model) declareEmbeddings(prefix string, withTypes bool) {
	c, ps, e := m.Config, m.Params, &m.emb
	w := int64(c.HiddenSize)
	if c.EmbeddingSize > 0 {
		w = int64(c.EmbeddingSize)
	}
	e.word = ps.add(prefix+"word_embeddings.weight", []int64{int64(c.VocabSize), w}, InitNormal)
	e.word.PadRow = int64(c.PaddingIdx())
	e.pos = ps.add(prefix+"position_embeddings.weight", []int64{int64(c.MaxPositionEmbeddings), w}, InitNormal)
	if c.PositionOffset() > 0 {
		e.pos.PadRow = int64(c.PaddingIdx())
	}
	if withTypes {
		e.typ = ps.add(prefix+"token_type_embeddings.weight", []int64{int64(c.TypeVocabSize), w}, InitNormal)
	}
	e.norm = m.layerNorm(prefix+"LayerNorm", int(w), c.LayerNormEps)
}

// project declares the linear map from the embedding width to the hidden size.
func (m *Model) project(name string) {
	p := m.linear(name, m.Config.HiddenSize, m.Config.EmbeddingSize)
	m.emb.proj = &p
}

// fwd embeds ids [B, L] into [B, L, H].
func (e *embeddings) fwd(m *Model, b *Batch, ids *ts.Tensor, drop *dropper) *ts.Tensor {
	c, dev := m.Config, m.Opts.Device
	// On the CPU the word embeddings' gradient is sparse: backward adds the batch's rows
	// into the flat gradient instead of zeroing a dense vocabulary-sized gradient,
	// filling it and adding all of it.
	sparse := e.word.Trainable && !dev.IsCuda()
	x := ts.MustEmbedding(e.word.T, ids, int64(c.PaddingIdx()), false, sparse)
	if e.pos != nil {
		var pos *ts.Tensor
		if off := c.PositionOffset(); off > 0 {
			pos = ts.MustOfSlice(offsetPositions(b, int64(c.PaddingIdx()))).MustView([]int64{int64(b.B), int64(b.L)}, true).MustTo(dev, true)
		} else {
			pos = m.posIDs.MustNarrow(0, 0, int64(b.L), false)
		}
		pe := ts.MustEmbedding(e.pos.T, pos, e.pos.PadRow, false, false)
		pos.MustDrop()
		x = x.MustAdd(pe, true)
		pe.MustDrop()
	}
	if e.typ != nil {
		x = e.addTypes(m, b, x)
	}
	n := e.norm.fwd(x)
	x.MustDrop()
	h := drop.apply(n, c.HiddenDropoutProb)
	n.MustDrop()
	if e.proj != nil {
		p := e.proj.fwd(h)
		h.MustDrop()
		h = p
	}
	return h
}

// addTypes adds the token type embeddings of b to x, which it takes ownership of.
func (e *embeddings) addTypes(m *Model, b *Batch, x *ts.Tensor) *ts.Tensor {
	dev := m.Opts.Device
	var types *ts.Tensor
	if tt := m.tokenTypes(b); tt != nil {
		types = ts.MustOfSlice(tt).MustView([]int64{int64(b.B), int64(b.L)}, true).MustTo(dev, true)
	} else {
		types = ts.MustZeros([]int64{int64(b.B), int64(b.L)}, gotch.Int64, dev)
	}
	te := ts.MustEmbedding(e.typ.T, types, -1, false, false)
	types.MustDrop()
	x = x.MustAdd(te, true)
	te.MustDrop()
	return x
}

// tokenTypes are the batch's token type ids as the encoder reads them: nil (all zeros)
// when it has a single type or none.
func (m *Model) tokenTypes(b *Batch) []int64 {
	if !m.Config.HasTokenTypes() {
		return nil
	}
	return b.TokenTypeIDs
}

// offsetPositions are RoBERTa's (and MPNet's) position ids, as transformers'
// create_position_ids_from_input_ids: real tokens count up from pad+1, padding tokens
// (by id, not by the attention mask) get pad.
func offsetPositions(b *Batch, pad int64) []int64 {
	out := make([]int64, len(b.InputIDs))
	for i := range b.B {
		n := int64(0)
		for j := range b.L {
			k := i*b.L + j
			out[k] = pad
			if b.InputIDs[k] != pad {
				n++
				out[k] += n
			}
		}
	}
	return out
}
