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
		bertHead(m, orDefault(c.ClassifierDropout, c.HiddenDropoutProb))
	},
}

// bertHead declares BERT's heads, which NomicBERT's copy: the pooler (bert.pooler.dense,
// tanh) on the first token for the sequence heads and multiple choice, then dropout at
// rate drop and classifier; qa_outputs for QA.
func bertHead(m *Model, drop float64) {
	s := headSpec{out: "classifier", drop: drop}
	switch m.Opts.Task {
	case Classify, MultiLabel, Regression, Choice:
		s.pre, s.preAct = "bert.pooler.dense", "tanh"
	case QA:
		s.out = "qa_outputs"
	}
	m.declareHead(s)
}
