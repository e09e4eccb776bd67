package model

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/bertnode/bertnode/internal/atomicfile"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// The embed task's poolings, as sentence-transformers' Pooling module names its modes:
// how the last hidden states [B, L, H] become one vector per sequence.
const (
	PoolCLS  = "cls"  // the first token's
	PoolMean = "mean" // the mean over the real tokens
	PoolMax  = "max"  // each dimension's maximum over the real tokens
)

// ParsePooling checks a pooling name; "" is mean, sentence-transformers' default.
func ParsePooling(s string) (string, error) {
	switch s {
	case "":
		return PoolMean, nil
	case PoolCLS, PoolMean, PoolMax:
		return s, nil
	}
	return "", fmt.Errorf("pooling %q: want cls, mean or max", s)
}

// pool reduces the last hidden states h [B, L, H] (or [B, 1, H] when the last layer
// computed the first token alone) to [B, H] under mask [B, L], as sentence-transformers'
// Pooling does, taking ownership of h.
func pool(h, mask *ts.Tensor, mode string) *ts.Tensor {
	if mode == PoolCLS {
		return h.MustSelect(1, 0, true)
	}
	m := mask.MustUnsqueeze(-1, false)
	defer m.MustDrop()
	if mode == PoolMax {
		pad := m.MustLogicalNot(false)
		defer pad.MustDrop()
		return h.MustMaskedFill(pad, ts.FloatScalar(-1e9), true).MustAmax([]int64{1}, false, true)
	}
	dt := h.DType()
	mf := m.MustTotype(dt, false)
	defer mf.MustDrop()
	sum := h.MustMul(mf, true).MustSumDimIntlist([]int64{1}, false, dt, true)
	n := mf.MustSumDimIntlist([]int64{1}, false, dt, false).MustClampMin(ts.FloatScalar(1e-9), true)
	defer n.MustDrop()
	return sum.MustDiv(n, true)
}

// Normalize scales v to unit Euclidean length, as torch.nn.functional.normalize does
// (sentence-transformers' Normalize module): a zero vector stays zero.
func Normalize(v []float32) {
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	n := max(math.Sqrt(ss), 1e-12)
	for i := range v {
		v[i] = float32(float64(v[i]) / n)
	}
}

// rankingScale multiplies the cosine similarities before the softmax:
// sentence-transformers' MultipleNegativesRankingLoss default (a temperature of 0.05).
const rankingScale = 20

// rankingLoss is sentence-transformers' MultipleNegativesRankingLoss over emb [B, H]:
// the first n = len(b.Labels) rows are anchors, the rest candidates (the positives,
// then any hard negatives), and each anchor's label is its positive among the
// candidates; the others are its negatives. The loss is the cross-entropy of the
// anchors' scaled cosine similarities to every candidate.
func rankingLoss(emb *ts.Tensor, b *Batch, dev gotch.Device) *ts.Tensor {
	n, m := int64(len(b.Labels)), int64(b.B-len(b.Labels))
	unit := func(x *ts.Tensor) *ts.Tensor { // torch.nn.functional.normalize
		norm := x.MustMul(x, false).MustSumDimIntlist([]int64{1}, true, x.DType(), true).MustSqrt(true).MustClampMin(ts.FloatScalar(1e-12), true)
		defer norm.MustDrop()
		return x.MustDiv(norm, true)
	}
	a := unit(emb.MustNarrow(0, 0, n, false))
	defer a.MustDrop()
	p := unit(emb.MustNarrow(0, n, m, false))
	pt := p.MustTranspose(0, 1, true)
	scores := a.MustMatmul(pt, false).MustMulScalar(ts.FloatScalar(rankingScale), true)
	pt.MustDrop()
	defer scores.MustDrop()
	t := ts.MustOfSlice(b.Labels).MustTo(dev, true)
	defer t.MustDrop()
	return scores.MustCrossEntropyLoss(t, undefined, 1, IgnoreIndex, 0, false)
}

// embedIgnorable says whether a checkpoint tensor is outside the base model, so that an
// embedding model loads a task model's or a pretraining checkpoint's encoder and leaves
// its heads: a name of the base model (with or without the family's prefix) must match.
func (m *Model) embedIgnorable(name string) bool {
	if m.Opts.Task != Embed || strings.HasPrefix(name, m.fam.base) {
		return false
	}
	top, _, _ := strings.Cut(name, ".")
	for _, p := range m.Params.List() {
		if strings.HasPrefix(p.Name, m.fam.base+top+".") {
			return false
		}
	}
	return true
}

// savedName is a parameter's name in a saved checkpoint: an embedding model is the bare
// base model (transformers' BertModel, ModernBertModel...), whose names have no prefix.
func (m *Model) savedName(name string) string {
	if m.Opts.Task == Embed {
		return strings.TrimPrefix(name, m.fam.base)
	}
	return name
}

// Sentence-transformers' files beside a checkpoint: the modules in order, the pooling's
// configuration, and the maximum sequence length.
const (
	STModulesFile = "modules.json"
	STPoolingFile = "1_Pooling/config.json"
	stConfigFile  = "sentence_bert_config.json"
)

// stPooling is sentence-transformers' 1_Pooling/config.json.
type stPooling struct {
	Dim      int  `json:"word_embedding_dimension"`
	CLS      bool `json:"pooling_mode_cls_token"`
	Mean     bool `json:"pooling_mode_mean_tokens"`
	Max      bool `json:"pooling_mode_max_tokens"`
	MeanSqrt bool `json:"pooling_mode_mean_sqrt_len_tokens"`
	Weighted bool `json:"pooling_mode_weightedmean_tokens"`
	Last     bool `json:"pooling_mode_lasttoken"`
}

type stModule struct {
	Idx  int    `json:"idx"`
	Name string `json:"name"`
	Path string `json:"path"`
	Type string `json:"type"`
}

// ReadPooling is the pooling of a sentence-transformers checkpoint in dir ("" when it
// has no 1_Pooling/config.json), and whether its modules end by normalizing the vectors.
// Modules bertnode does not run (Dense layers, several poolings at once) are refused by
// name, rather than served as vectors the model was not trained to give.
func ReadPooling(dir string) (mode string, normalize bool, err error) {
	path := filepath.Join(dir, STPoolingFile)
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return "", false, nil
	} else if err != nil {
		return "", false, err
	}
	var p stPooling
	if err := json.Unmarshal(data, &p); err != nil {
		return "", false, fmt.Errorf("%s: %w", path, err)
	}
	var modes []string
	for _, c := range []struct {
		on   bool
		name string
	}{{p.CLS, PoolCLS}, {p.Mean, PoolMean}, {p.Max, PoolMax}, {p.MeanSqrt, "mean_sqrt_len_tokens"}, {p.Weighted, "weightedmean_tokens"}, {p.Last, "lasttoken"}} {
		if c.on {
			modes = append(modes, c.name)
		}
	}
	if len(modes) != 1 {
		return "", false, fmt.Errorf("%s: pooling modes %v: want exactly one", path, modes)
	}
	if mode, err = ParsePooling(modes[0]); err != nil {
		return "", false, fmt.Errorf("%s: %w (bertnode pools by cls, mean or max)", path, err)
	}
	mpath := filepath.Join(dir, STModulesFile)
	data, err = os.ReadFile(mpath)
	if os.IsNotExist(err) {
		return mode, false, nil
	} else if err != nil {
		return "", false, err
	}
	var mods []stModule
	if err := json.Unmarshal(data, &mods); err != nil {
		return "", false, fmt.Errorf("%s: %w", mpath, err)
	}
	for _, md := range mods {
		switch kind := md.Type[strings.LastIndex(md.Type, ".")+1:]; kind {
		case "Transformer", "Pooling":
		case "Normalize":
			normalize = true
		default:
			return "", false, fmt.Errorf("%s: module %d (%s) is %s, which bertnode does not run (it runs Transformer, Pooling and Normalize)", mpath, md.Idx, md.Path, md.Type)
		}
	}
	return mode, normalize, nil
}

// ReadMaxSeqLength is the max_seq_length of a sentence-transformers checkpoint in dir:
// the length its texts are cut to; 0 when it has no sentence_bert_config.json.
func ReadMaxSeqLength(dir string) (int, error) {
	path := filepath.Join(dir, stConfigFile)
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	var c struct {
		MaxSeqLength int `json:"max_seq_length"`
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return c.MaxSeqLength, nil
}

// saveSentenceTransformers writes the files that make an embedding model's checkpoint a
// sentence-transformers model (Transformer, Pooling, Normalize when normalize), so that
// SentenceTransformer(dir) and text-embeddings-inference pool as bertnode does.
func (m *Model) saveSentenceTransformers(dir string, maxLen int, normalize bool) error {
	mods := []stModule{
		{0, "0", "", "sentence_transformers.models.Transformer"},
		{1, "1", "1_Pooling", "sentence_transformers.models.Pooling"},
	}
	if normalize {
		mods = append(mods, stModule{2, "2", "2_Normalize", "sentence_transformers.models.Normalize"})
		if err := os.MkdirAll(filepath.Join(dir, "2_Normalize"), 0o755); err != nil {
			return err
		}
	}
	if maxLen == 0 {
		maxLen = m.Config.MaxLength()
	}
	mode := m.Opts.Pooling
	p := stPooling{Dim: m.Config.HiddenSize, CLS: mode == PoolCLS, Mean: mode == PoolMean, Max: mode == PoolMax}
	if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(STPoolingFile)), 0o755); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		v    any
	}{
		{STModulesFile, mods},
		{STPoolingFile, p},
		{stConfigFile, map[string]any{"max_seq_length": maxLen, "do_lower_case": false}},
	} {
		data, err := json.MarshalIndent(f.v, "", "  ")
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, f.name), append(data, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}
