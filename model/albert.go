package model

import "fmt"

// albertFamily is ALBERT: factorized embeddings (embedding_size) mapped to the hidden
// size by albert.encoder.embedding_hidden_mapping_in, and num_hidden_groups groups of
// inner_group_num layers shared among num_hidden_layers: layer i applies every layer of
// group int(i / (num_hidden_layers / num_hidden_groups)), as transformers computes it.
// A shared layer is one set of parameters used at several depths, so autograd sums its
// gradients from all of them. Sequence heads read albert.pooler (dense, tanh).
var albertFamily = &family{
	base:        "albert.",
	embeddings:  []string{"albert.embeddings.", "albert.encoder.embedding_hidden_mapping_in."},
	pretraining: []string{"predictions.", "sop_classifier."},
	mlm: &mlmSpec{dense: "predictions.dense", norm: "predictions.LayerNorm", bias: "predictions.bias",
		ignored: []string{"predictions.decoder.", "sop_classifier."}},
	fixed: noneFixed,
	declare: func(m *Model) {
		c := m.Config
		m.declareEmbeddings("albert.embeddings.", true)
		m.project("albert.encoder.embedding_hidden_mapping_in")
		groups := make([][]*layer, c.NumHiddenGroups)
		for g := range groups {
			for j := range c.InnerGroupNum {
				groups[g] = append(groups[g], m.declareLayer(fmt.Sprintf("albert.encoder.albert_layer_groups.%d.albert_layers.%d.", g, j), albertLayer))
			}
		}
		perGroup := float64(c.NumHiddenLayers) / float64(c.NumHiddenGroups)
		for i := range c.NumHiddenLayers {
			m.layers = append(m.layers, groups[int(float64(i)/perGroup)]...)
		}
		s := headSpec{out: "classifier", drop: orDefault(c.ClassifierDropout, c.HiddenDropoutProb)}
		switch m.Opts.Task {
		case Classify, MultiLabel, Regression, Choice:
			s.pre, s.preAct = "albert.pooler", "tanh"
		case QA:
			s = headSpec{out: "qa_outputs"}
		}
		m.declareHead(s)
	},
}

// albertLayer names a layer's parts as ALBERT does; it has no dropout after ffn_output.
var albertLayer = layerNames{
	q: "attention.query", k: "attention.key", v: "attention.value",
	attnOut: "attention.dense", attnNorm: "attention.LayerNorm",
	inter: "ffn", out: "ffn_output", outNorm: "full_layer_layer_norm",
	noOutDrop: true,
}
