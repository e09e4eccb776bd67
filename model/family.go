package model

import (
	"cmp"
	"fmt"
	"strings"

	"github.com/bertnode/bertnode/hf"
)

// family is one encoder architecture of the BERT family: it declares the parameters
// under the names transformers gives them, so checkpoints map one to one both ways, and
// says which names loading and freezing treat how. The BERT-like families share one
// Forward and differ in what they declare (see bert.go, distilbert.go, roberta.go,
// albert.go, electra.go); DeBERTa adds relative attention to those layers
// (debertav2.go), MPNet a bias of the relative positions (mpnet.go), NomicBERT a fused
// projection, rotary positions and a gated feed-forward (nomicbert.go); ModernBERT has
// layers and a head of its own (modernbert.go).
type family struct {
	base       string   // the base model's parameter prefix: "bert."
	embeddings []string // prefixes Freeze.Embeddings covers
	// layer is the prefix of the i-th layer, for Freeze.Layers; nil where the layers are
	// shared (ALBERT), which cannot be frozen one by one.
	layer func(i int) string
	// pretraining prefixes the pretraining heads of published checkpoints (cls.,
	// lm_head., ...), which loading ignores unless the task is mlm: then the masked-LM
	// head is the model's, and only mlm.ignored is ignored.
	pretraining []string
	mlm         *mlmSpec // the masked-LM head
	// declare declares the embeddings, the layers in the order Forward applies them, and
	// the head for m's task.
	declare func(m *Model)
	// fixed lists parameters that never train (DistilBERT's sinusoidal positions).
	fixed func(c *hf.BertConfig) []string
	// init, if set, gives parameters their values after the flat buffer is built.
	init func(m *Model)
}

var families = map[string]*family{
	"bert": bertFamily, "distilbert": distilbertFamily, "roberta": robertaFamily,
	"albert": albertFamily, "electra": electraFamily, "modernbert": modernbertFamily,
	"deberta-v2": debertaV2Family, "mpnet": mpnetFamily, "nomic_bert": nomicFamily,
	// RoBERTa's architecture, parameters included: transformers' classes for these are
	// copies of RoBERTa's, under the same base prefix.
	"xlm-roberta": robertaFamily, "camembert": robertaFamily,
}

func familyOf(c *hf.BertConfig) (*family, error) {
	f, ok := families[c.ModelType]
	if !ok {
		return nil, fmt.Errorf("model: no encoder for model_type %q", c.ModelType)
	}
	return f, nil
}

func noneFixed(*hf.BertConfig) []string { return nil }

// ignorable says whether a checkpoint tensor with no parameter of this name may be left
// out: pretraining heads, buffers (position_ids, token_type_ids) and the base model's
// pooler, which token-level heads (and RoBERTa's, ELECTRA's, DistilBERT's) do not use.
func (f *family) ignorable(name string, task Task) bool {
	if strings.HasSuffix(name, "position_ids") || strings.HasSuffix(name, "embeddings.token_type_ids") ||
		strings.HasPrefix(name, f.base+"pooler") {
		return true
	}
	if task == MLM {
		return f.mlm.ignorable(name)
	}
	for _, p := range f.pretraining {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// freshOK says whether a parameter a checkpoint lacks may start freshly initialised: the
// task head, and the pooler, as when fine-tuning from a pretraining checkpoint; and
// LoRA's adapters, which a base model has not.
func (f *family) freshOK(name string) bool {
	return !strings.HasPrefix(name, f.base) || strings.HasPrefix(name, f.base+"pooler") || isLoRAParam(name)
}

// architecture is transformers' class name for the family and task.
func (m *Model) architecture() string {
	suffix := "ForSequenceClassification"
	switch m.Opts.Task {
	case NER:
		suffix = "ForTokenClassification"
	case QA:
		suffix = "ForQuestionAnswering"
	case Embed:
		suffix = "Model"
	case Choice:
		suffix = "ForMultipleChoice"
	case MLM:
		return MLMArchitecture(m.Config)
	}
	return m.Config.ArchitecturePrefix() + suffix
}

// MLMArchitecture is the class name of cfg's family's masked-LM model: <Family>ForMaskedLM
// but for NomicBERT's NomicBertForPreTraining; "" for a model_type bertnode has no family of.
func MLMArchitecture(cfg *hf.BertConfig) string {
	f, err := familyOf(cfg)
	if err != nil {
		return ""
	}
	return cfg.ArchitecturePrefix() + cmp.Or(f.mlm.arch, "ForMaskedLM")
}

// bertLayer names a layer's parts as BERT does, and RoBERTa and ELECTRA after it.
var bertLayer = layerNames{
	q: "attention.self.query", k: "attention.self.key", v: "attention.self.value",
	attnOut: "attention.output.dense", attnNorm: "attention.output.LayerNorm",
	inter: "intermediate.dense", out: "output.dense", outNorm: "output.LayerNorm",
}

// bertLayers declares num_hidden_layers layers under base+"encoder.layer.N.", their
// parts named as n says (BERT's bertLayer, MPNet's mpnetLayer).
func (m *Model) bertLayers(base string, n layerNames) {
	for i := range m.Config.NumHiddenLayers {
		m.layers = append(m.layers, m.declareLayer(fmt.Sprintf("%sencoder.layer.%d.", base, i), n))
	}
}

func bertLayerPrefix(base string) func(int) string {
	return func(i int) string { return fmt.Sprintf("%sencoder.layer.%d.", base, i) }
}
