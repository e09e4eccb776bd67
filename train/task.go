package train

import (
	"fmt"

	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/tokenize"
)

// task is what differs between classify, multilabel, regression, ner and qa: how records become
// examples, how examples label a batch, and how predictions are scored. The training
// loop and the evaluation loop are the same for all.
type task interface {
	// encode turns records into examples; labels come from the training data.
	encode(tok *tokenize.Tokenizer, recs []shard.Record, labels *shard.LabelSet, maxLen int) ([]Example, error)
	// label puts the examples' gold labels into b (b.Labels or b.Targets).
	label(b *model.Batch, exs []*Example)
	// scorer accumulates one evaluation.
	scorer(labels []string) scorer
}

// scorer accumulates predictions over an evaluation. logits are Infer's, row-major in
// the model's output shape for the batch b was built from.
type scorer interface {
	add(exs []*Example, b *model.Batch, logits []float32) error
	result() (EvalResult, error)
}

func newTask(spec Spec) (task, error) {
	name := spec.Task
	switch model.Task(name) {
	case model.Classify:
		return classifyTask{}, nil
	case model.MultiLabel:
		return multiLabelTask{}, nil
	case model.NER:
		return nerTask{}, nil
	case model.QA:
		return &qaTask{stride: spec.DocStride}, nil
	case model.Regression:
		return regressionTask{}, nil
	case model.Embed:
		return embedTask{dims: spec.MatryoshkaDims}, nil
	case model.Choice:
		return choiceTask{}, nil
	case model.MLM:
		return mlmTask{prob: spec.MLMProbability}, nil
	}
	return nil, fmt.Errorf("task %q: want classify, multilabel, regression, ner, qa, embed, choice or mlm", name)
}
