package train

import (
	"fmt"
	"io"
	"slices"

	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/tokenize"
)

// loadTeacher loads spec.Distill.Teacher as evaluation does a checkpoint, on the
// student's device, and checks it can teach a student of spec's task with labels and
// tokenizer tok: the same task, label names in the same order and vocabulary ids.
func loadTeacher(spec Spec, tok *tokenize.Tokenizer, labels *shard.LabelSet) (*model.Model, error) {
	dir := spec.Distill.Teacher
	bad := func(format string, args ...any) error {
		return fmt.Errorf("job spec: distill.teacher: %s: %s", dir, fmt.Sprintf(format, args...))
	}
	ts := spec
	ts.Model, ts.Tokenizer, ts.Eval, ts.Quantize, ts.Pooling = dir, "", "", "", ""
	tt, err := ForEval(ts, io.Discard)
	if err != nil {
		return nil, fmt.Errorf("job spec: distill.teacher: %w", err)
	}
	if tt.Spec.Task != spec.Task {
		return nil, bad("a %s model; the job's task is %s", tt.Spec.Task, spec.Task)
	}
	switch model.Task(spec.Task) {
	case model.Classify, model.MultiLabel, model.NER: // their logits are one per label
		if !slices.Equal(tt.Labels.Names(), labels.Names()) {
			return nil, bad("labels %v (id2label in config.json), the job's %v: a teacher's logits must be for the same labels in the same order",
				tt.Labels.Names(), labels.Names())
		}
	}
	if diff := vocabDiff(tt.Tok.Vocab(), tok.Vocab()); diff != "" {
		return nil, bad("its tokenizer differs from the job's (%s): the two models must read the same token ids", diff)
	}
	return tt.Model, nil
}

// vocabDiff says where the vocabulary a differs from b ("" where it does not): in size,
// or at the first id whose token differs.
func vocabDiff(a, b *tokenize.Vocab) string {
	if a.Len() != b.Len() {
		return fmt.Sprintf("%d tokens, the job's %d", a.Len(), b.Len())
	}
	for id := range a.Len() {
		if a.Token(id) != b.Token(id) {
			return fmt.Sprintf("id %d is %q, the job's %q", id, a.Token(id), b.Token(id))
		}
	}
	return ""
}
