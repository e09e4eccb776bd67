package model

import "github.com/bertnode/bertnode/hf"

// robertaFamily is RoBERTa: BERT's body, position ids counted from pad_token_id + 1 over
// the real tokens (embeddings.go), usually one token type; its sequence head is
// classifier.dense (tanh) and classifier.out_proj on <s>, with no pooler.
var robertaFamily = &family{
	base:        "roberta.",
	embeddings:  []string{"roberta.embeddings."},
	layer:       bertLayerPrefix("roberta."),
	pretraining: []string{"lm_head."},
	mlm:         robertaLMHead,
	fixed:       noneFixed,
	declare: func(m *Model) {
		m.declareEmbeddings("roberta.embeddings.", true)
		m.bertLayers("roberta.", bertLayer)
		robertaHead(m, "roberta.")
	},
}

// robertaLMHead is RobertaLMHead, which MPNetLMHead copies; its activation is gelu
// whatever hidden_act says.
var robertaLMHead = &mlmSpec{
	dense: "lm_head.dense", act: func(*hf.BertConfig) string { return "gelu" }, norm: "lm_head.layer_norm", bias: "lm_head.bias",
	ignored: []string{"lm_head.decoder."},
}

// robertaHead declares RoBERTa's heads, which MPNet's copy: for multiple choice the base
// model's pooler (base+"pooler.dense", tanh), dropout and classifier; else
// classificationHead.
func robertaHead(m *Model, base string) {
	if m.Opts.Task == Choice {
		m.declareHead(headSpec{pre: base + "pooler.dense", preAct: "tanh", out: "classifier", drop: m.Config.HiddenDropoutProb})
		return
	}
	m.declareHead(classificationHead(m, "tanh"))
}

// classificationHead is RoBERTa's and ELECTRA's: dropout, classifier.dense, act,
// dropout, classifier.out_proj for sequences (classifier_dropout, else
// hidden_dropout_prob); dropout and classifier for tokens; qa_outputs without dropout.
func classificationHead(m *Model, act string) headSpec {
	c := m.Config
	drop := orDefault(c.ClassifierDropout, c.HiddenDropoutProb)
	switch m.Opts.Task {
	case NER:
		return headSpec{out: "classifier", drop: drop}
	case QA:
		return headSpec{out: "qa_outputs"}
	}
	return headSpec{pre: "classifier.dense", preAct: act, preDrop: true, out: "classifier.out_proj", drop: drop}
}
