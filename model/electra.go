package model

// electraFamily is ELECTRA's discriminator: BERT's body over factorized embeddings
// (embedding_size, mapped to the hidden size by electra.embeddings_project when they
// differ), no pooler, and RoBERTa's sequence head with GELU for tanh. Checkpoints'
// pretraining heads (discriminator_predictions, and a generator's) are ignored.
var electraFamily = &family{
	base:        "electra.",
	embeddings:  []string{"electra.embeddings.", "electra.embeddings_project."},
	layer:       bertLayerPrefix("electra."),
	pretraining: []string{"discriminator_predictions.", "generator_predictions.", "generator_lm_head."},
	fixed:       noneFixed,
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
