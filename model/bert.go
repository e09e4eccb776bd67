package model

// bertFamily is BERT: word, position and token type embeddings; pooler (dense, tanh) on
// [CLS] under the sequence heads.
var bertFamily = &family{
	base:        "bert.",
	embeddings:  []string{"bert.embeddings."},
	layer:       bertLayerPrefix("bert."),
	pretraining: []string{"cls."},
	mlm: &mlmSpec{dense: "cls.predictions.transform.dense", norm: "cls.predictions.transform.LayerNorm", bias: "cls.predictions.bias",
		ignored: []string{"cls.predictions.decoder.", "cls.seq_relationship."}},
	fixed: noneFixed,
	declare: func(m *Model) {
		c := m.Config
		m.declareEmbeddings("bert.embeddings.", true)
		m.bertLayers("bert.", bertLayer)
		// transformers' BERT heads take classifier_dropout, else hidden_dropout_prob.
		// (BertForQuestionAnswering has no dropout; bertnode's QA head always had it.)
		s := headSpec{out: "classifier", drop: orDefault(c.ClassifierDropout, c.HiddenDropoutProb)}
		switch m.Opts.Task {
		case Classify, MultiLabel, Regression, Choice:
			s.pre, s.preAct = "bert.pooler.dense", "tanh"
		case QA:
			s.out = "qa_outputs"
		}
		m.declareHead(s)
	},
}
