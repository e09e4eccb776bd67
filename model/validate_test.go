package model

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/hf"
)

// A malformed batch is refused with an error naming the problem and where it is, before
// libtorch sees it (libtorch's own index errors abort the process through gotch).
func TestBatchValidation(t *testing.T) {
	lockThread(t)
	models := map[Task]*Model{}
	for _, tc := range taskCases {
		if models[tc.opts.Task] == nil {
			models[tc.opts.Task] = newModel(t, smallConfig(0.1), tc.opts, 1)
		}
	}
	for _, c := range []struct {
		name  string
		task  Task
		spoil func(b *Batch)
		want  string
	}{
		{"empty", Classify, func(b *Batch) { b.B = 0 }, "empty batch [0, 8]"},
		{"too long", Classify, func(b *Batch) { b.L = 65 }, "sequence length 65 over max_position_embeddings 64"},
		{"ids short", Classify, func(b *Batch) { b.InputIDs = b.InputIDs[1:] }, "needs 16 ids, mask and type ids; got 15, 16, 16"},
		{"mask short", Classify, func(b *Batch) { b.AttentionMask = b.AttentionMask[1:] }, "got 16, 15, 16"},
		{"types short", Classify, func(b *Batch) { b.TokenTypeIDs = b.TokenTypeIDs[1:] }, "got 16, 16, 15"},
		{"negative id", Classify, func(b *Batch) { b.InputIDs[3] = -1 }, "token id -1 at 3 outside the vocabulary (100)"},
		{"id past vocab", Classify, func(b *Batch) { b.InputIDs[9] = 100 }, "token id 100 at 9 outside the vocabulary (100)"},
		{"type id", Classify, func(b *Batch) { b.TokenTypeIDs[5] = 2 }, "token type id 2 at 5 outside [0, 2)"},
		{"mask value", Classify, func(b *Batch) { b.AttentionMask[4] = 2 }, "attention mask 2 at 4: want 0 or 1"},
		{"label count", Classify, func(b *Batch) { b.Labels = b.Labels[:1] }, "classify labels: 1 values, want 2"},
		{"label range", Classify, func(b *Batch) { b.Labels[1] = 3 }, "label 3 at 1 outside [0, 3)"},
		{"ignore outside ner", Classify, func(b *Batch) { b.Labels[0] = IgnoreIndex }, "label -100 at 0 outside [0, 3)"},
		{"ner label count", NER, func(b *Batch) { b.Labels = b.Labels[:15] }, "ner labels: 15 values, want 16"},
		{"ner label range", NER, func(b *Batch) { b.Labels[6] = -5 }, "label -5 at 6 outside [0, 5)"},
		{"qa label count", QA, func(b *Batch) { b.Labels = b.Labels[:2] }, "qa labels: 2 values, want 4"},
		{"multilabel count", MultiLabel, func(b *Batch) { b.Targets = b.Targets[:7] }, "multilabel targets: 7 values for 2 x 4"},
		{"multilabel labels", MultiLabel, func(b *Batch) { b.Labels = []int64{0, 1} }, "multilabel takes Targets, not Labels"},
		{"regression count", Regression, func(b *Batch) { b.Targets = b.Targets[:1] }, "regression targets: 1 values for 2 x 1"},
		{"regression labels", Regression, func(b *Batch) { b.Labels = []int64{0, 1} }, "regression takes Targets, not Labels"},
	} {
		t.Run(c.name, func(t *testing.T) {
			lockThread(t)
			m := models[c.task]
			b := randomBatch(rand.New(rand.NewPCG(1, 1)), m, 8, []int{8, 5})
			c.spoil(b)
			_, err := m.Forward(b, true, false)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
	// The length's limit is named as the family's config.json names it.
	nomic := newModel(t, familyConfig(t, "nomic_bert", 0.1), Options{Task: Classify, NumLabels: 3}, 1)
	b := randomBatch(rand.New(rand.NewPCG(1, 1)), nomic, 65, []int{65, 5})
	if _, err := nomic.Forward(b, true, false); err == nil || !strings.Contains(err.Error(), "sequence length 65 over n_positions 64") {
		t.Fatalf("NomicBERT: got %v, want an error naming n_positions", err)
	}
}

// New refuses options that cannot make a model.
func TestNewValidation(t *testing.T) {
	lockThread(t)
	bad := smallConfig(0.1)
	bad.NumAttentionHeads = 5
	for _, c := range []struct {
		name string
		cfg  *hf.BertConfig
		opts Options
		want string
	}{
		{"config", bad, Options{Task: Classify, NumLabels: 2}, "num_attention_heads"},
		{"no labels", smallConfig(0), Options{Task: NER}, "ner needs at least one label"},
		{"class weights", smallConfig(0), Options{Task: Classify, NumLabels: 3, ClassWeights: []float32{1, 2}}, "2 class weights for 3 labels"},
		{"regression weights", smallConfig(0), Options{Task: Regression, NumLabels: 1, ClassWeights: []float32{2}}, "class weights: regression has scores"},
		{"freeze", smallConfig(0), Options{Task: Classify, NumLabels: 2, Freeze: Freeze{Layers: 3}}, "cannot freeze 3 layers of 2"},
		{"autocast name", smallConfig(0), Options{Task: Classify, NumLabels: 2, Autocast: "fp8"}, `autocast "fp8"`},
		{"autocast on cpu", smallConfig(0), Options{Task: Classify, NumLabels: 2, Autocast: "bf16"}, "needs a CUDA device"},
	} {
		if _, err := New(c.cfg, c.opts); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.want)
		}
	}
}
