package model

import "github.com/bertnode/bertnode/hf"

// electraFamily is ELECTRA: BERT's body over factorized embeddings (embedding_size,
// mapped to the hidden size by electra.embeddings_project when they differ), no pooler,
// and RoBERTa's sequence head with GELU for tanh. Checkpoints' pretraining heads (a
// discriminator's discriminator_predictions, a generator's masked-LM head) are ignored
// but by mlm, whose head is the generator's.
var electraFamily = &family{
	base:        "electra.",
	embeddings:  []string{"electra.embeddings.", "electra.embeddings_project."},
	layer:       bertLayerPrefix("electra."),
	pretraining: []string{"discriminator_predictions.", "generator_predictions.", "generator_lm_head."},
	// ElectraForMaskedLM, the generator checkpoints' class: generator_predictions
	// (dense from the hidden size to embedding_size, GELU whatever hidden_act says,
	// LayerNorm), then generator_lm_head, tied to the word embeddings. A discriminator
	// loads as mlm without its discriminator_predictions and with a fresh head, as
	// transformers loads it into ElectraForMaskedLM.
	mlm: &mlmSpec{dense: "generator_predictions.dense", norm: "generator_predictions.LayerNorm", bias: "generator_lm_head.bias",
		act:     func(*hf.BertConfig) string { return "gelu" },
		ignored: []string{"generator_lm_head.weight", "discriminator_predictions."}},
	fixed: noneFixed,
	declare: func(m *Model) {
		m.declareEmbeddings("electra.embeddings.", true)
		if m.Config.EmbeddingSize != m.Config.HiddenSize {
			m.project("electra.embeddings_project")
		}
		m.bertLayers("electra.", bertLayer)
		if m.Opts.Task == Choice {
			// ElectraForMultipleChoice: its SequenceSummary of the first token (a dense
			// layer, GELU and summary_last_dropout, 0.1 in ElectraConfig), then classifier.
			m.declareHead(headSpec{pre: "sequence_summary.summary", preAct: "gelu", out: "classifier", drop: 0.1})
			return
		}
		m.declareHead(classificationHead(m, "gelu"))
	},
}
