package model

import (
	"bytes"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/hf"
	"github.com/bertnode/bertnode/safetensors"
)

// The masked-LM heads' gradient matches central differences, the word embeddings'
// included: they are the decoder's weight too, so a row of a token absent from the
// inputs gets its gradient from the decoder alone, and a row of an input token from both
// uses, which the differences see as one sum.
func TestMLMGradientMatchesFiniteDifferences(t *testing.T) {
	for _, mt := range mlmFamilies {
		t.Run(mt, func(t *testing.T) {
			lockThread(t)
			cfg := familyConfig(t, mt, 0)
			cfg.MLPFc1Bias = true // NomicBERT's decoder bias
			m := newModel(t, cfg, Options{Task: MLM}, 5)
			r := rand.New(rand.NewPCG(5, 6))
			randomize(m, r, m.head.mlm.bias)
			b := randomBatch(r, m, 12, []int{12, 5, 9})
			for i, id := range b.InputIDs { // keep ids 0..49 out of the inputs
				b.InputIDs[i] = 50 + id%50
			}
			b.Labels[1], b.Labels[14] = 7, 7 // the decoder's row 7 gets a gradient well above noise
			checkGradient(t, m, b, []string{"word_embeddings", "tok_embeddings", "query.weight", "q_lin.weight", "Wqkv.weight", "predictions", "lm_head", "vocab_", "head.", "decoder."}, 6)

			m.Params.ZeroGrad()
			if _, err := m.Backward(b, 1); err != nil {
				t.Fatal(err)
			}
			grad, w := m.Params.GradSlice(), m.Params.FlatSlice()
			word := m.emb.word
			e := int(word.Shape[1])
			absent := int(word.Offset) + 7*e + 3                   // token 7: the decoder's use alone
			present := int(word.Offset) + int(b.InputIDs[0])*e + 3 // also looked up as an input
			for _, i := range []int{absent, present} {
				orig := w[i]
				w[i] = orig + gradEps
				up := evalLoss(t, m, b)
				w[i] = orig - gradEps
				down := evalLoss(t, m, b)
				w[i] = orig
				fd := (up - down) / (2 * gradEps)
				// float32 losses near 4 differ by a rounding of about 5e-7: 3e-5 over 2*gradEps
				if g := float64(grad[i]); math.Abs(fd) < 1e-3 || math.Abs(g-fd) > 0.02*math.Abs(fd)+5e-5 {
					t.Errorf("word embedding [%d]: grad %g, central difference %g", i-int(word.Offset), g, fd)
				}
			}
		})
	}
}

// mlmFamilies are the families with a masked-LM head.
var mlmFamilies = []string{"bert", "roberta", "distilbert", "albert", "electra", "mpnet", "modernbert", "deberta-v2", "nomic_bert"}

// The masked-LM head saves under transformers' names (no tied copy: transformers
// re-ties), loads back as mlm, and a pretraining checkpoint's tied copies and other
// pretraining heads are ignored while any other stray tensor is unexpected. Other tasks
// still ignore the masked-LM head. ModernBERT's and NomicBERT's biases follow their
// configs, and ModernBERT's decoder has its own weight where tie_word_embeddings is false.
func TestMLMCheckpointNames(t *testing.T) {
	lockThread(t)
	for _, tc := range []struct {
		mt, arch, name string
		tweak          func(c *hf.BertConfig)
		head           []string // sorted; nil: dense (2), LayerNorm (2) and the bias, the decoder's weight tied
	}{
		{"bert", "BertForMaskedLM", "", nil, nil}, {"roberta", "RobertaForMaskedLM", "", nil, nil},
		{"distilbert", "DistilBertForMaskedLM", "", nil, nil}, {"albert", "AlbertForMaskedLM", "", nil, nil},
		{"electra", "ElectraForMaskedLM", "", nil, nil},
		{"mpnet", "MPNetForMaskedLM", "", nil, nil}, {"deberta-v2", "DebertaV2ForMaskedLM", "", nil, nil},
		{"modernbert", "ModernBertForMaskedLM", "hub", nil, []string{"decoder.bias", "head.dense.weight", "head.norm.weight"}},
		{"modernbert", "ModernBertForMaskedLM", "untied", func(c *hf.BertConfig) {
			c.TieWordEmbeddings, c.DecoderBias, c.ClassifierBias, c.NormBias = false, false, true, true
		}, []string{"decoder.weight", "head.dense.bias", "head.dense.weight", "head.norm.bias", "head.norm.weight"}},
		{"nomic_bert", "NomicBertForPreTraining", "no biases", nil, []string{
			"cls.predictions.transform.dense.weight", "cls.predictions.transform.layer_norm.bias", "cls.predictions.transform.layer_norm.weight"}},
		{"nomic_bert", "NomicBertForPreTraining", "biases", func(c *hf.BertConfig) { c.MLPFc1Bias = true }, []string{
			"cls.predictions.decoder.bias", "cls.predictions.transform.dense.bias", "cls.predictions.transform.dense.weight",
			"cls.predictions.transform.layer_norm.bias", "cls.predictions.transform.layer_norm.weight"}},
	} {
		cfg := familyConfig(t, tc.mt, 0)
		if tc.tweak != nil {
			tc.tweak(cfg)
		}
		m := newModel(t, cfg, Options{Task: MLM}, 1)
		if got := m.architecture(); got != tc.arch {
			t.Errorf("%s: architecture %s, want %s", tc.mt, got, tc.arch)
		}
		var head []string
		for _, p := range m.Params.List() {
			if !strings.HasPrefix(p.Name, m.fam.base) {
				head = append(head, p.Name)
			}
		}
		slices.Sort(head)
		if tc.head == nil && len(head) != 5 || tc.head != nil && !slices.Equal(head, tc.head) {
			t.Errorf("%s %s: head parameters %v, want %v", tc.mt, tc.name, head, tc.head)
		}
		for _, name := range m.fam.mlm.ignored {
			if !m.fam.ignorable(name+"weight", MLM) {
				t.Errorf("%s: %s not ignorable", tc.mt, name)
			}
		}
		for _, name := range head {
			// An untied decoder.weight is a parameter, which loading finds before it asks
			// whether the name is ignorable, as a tied one's copy is.
			if m.fam.ignorable(name, MLM) && !(tc.name == "untied" && name == "decoder.weight") {
				t.Errorf("%s: mlm ignores its own %s", tc.mt, name)
			}
			// ModernBERT's classifiers have the same head (ModernBertPredictionHead): they load it.
			if !m.fam.ignorable(name, Classify) && !(tc.mt == "modernbert" && strings.HasPrefix(name, "head.")) {
				t.Errorf("%s: classify does not ignore the masked-LM head's %s", tc.mt, name)
			}
		}
	}
}

// An ELECTRA discriminator checkpoint (ElectraForPreTraining: the base model and
// discriminator_predictions) loads as mlm as transformers loads it into
// ElectraForMaskedLM: its base model, discriminator_predictions ignored, the generator's
// head fresh.
func TestMLMLoadsAnELECTRADiscriminator(t *testing.T) {
	lockThread(t)
	cfg := familyConfig(t, "electra", 0)
	src := newModel(t, cfg, Options{Task: NER, NumLabels: 2}, 1)
	tensors := f32Tensors(src, func(n string) string {
		if strings.HasPrefix(n, "electra.") {
			return n
		}
		return ""
	})
	disc := []string{"discriminator_predictions.dense.weight", "discriminator_predictions.dense_prediction.bias"}
	for _, n := range disc {
		tensors = append(tensors, safetensors.Tensor{Info: safetensors.Info{Name: n, DType: safetensors.F32, Shape: []int64{1}}, Data: make([]byte, 4)})
	}
	dst := newModel(t, cfg, Options{Task: MLM}, 2)
	rep, err := dst.LoadWeights(writeSafetensors(t, tensors))
	if err != nil {
		t.Fatal(err)
	}
	head := []string{"generator_lm_head.bias", "generator_predictions.LayerNorm.bias", "generator_predictions.LayerNorm.weight",
		"generator_predictions.dense.bias", "generator_predictions.dense.weight"}
	if !slices.Equal(rep.Ignored, disc) || !slices.Equal(rep.Initialized, head) || rep.Loaded != len(tensors)-len(disc) {
		t.Errorf("loaded %d, ignored %v, initialized %v: want %d, %v, %v", rep.Loaded, rep.Ignored, rep.Initialized, len(tensors)-len(disc), disc, head)
	}
}

// With labels the decoder computes only the masked tokens' rows: the loss equals the
// mean cross-entropy read from the full logits inference gives at those positions, and a
// batch with nothing masked has loss 0.
func TestMLMLossReadsTheMaskedRows(t *testing.T) {
	for _, mt := range []string{"bert", "modernbert"} { // ModernBERT has a forward of its own
		t.Run(mt, func(t *testing.T) { checkMLMLoss(t, mt) })
	}
}

func checkMLMLoss(t *testing.T, modelType string) {
	lockThread(t)
	m := newModel(t, familyConfig(t, modelType, 0), Options{Task: MLM}, 9)
	r := rand.New(rand.NewPCG(9, 10))
	b := randomBatch(r, m, 12, []int{12, 5, 9})
	labels := b.Labels
	b.Labels = nil
	full, _, err := m.Infer(b)
	if err != nil {
		t.Fatal(err)
	}
	v := m.Config.VocabSize
	var want float64
	n := 0
	for i, l := range labels {
		if l == IgnoreIndex {
			continue
		}
		row := full[i*v : (i+1)*v]
		mx := slices.Max(row)
		var z float64
		for _, x := range row {
			z += math.Exp(float64(x - mx))
		}
		want += float64(mx) + math.Log(z) - float64(row[l])
		n++
	}
	if n < 3 {
		t.Fatalf("setup: %d masked tokens", n)
	}
	b.Labels = labels
	if got := evalLoss(t, m, b); math.Abs(got-want/float64(n)) > 1e-4 {
		t.Fatalf("loss %v, from the full logits %v", got, want/float64(n))
	}
	for i := range b.Labels {
		b.Labels[i] = IgnoreIndex
	}
	if got := evalLoss(t, m, b); got != 0 {
		t.Errorf("nothing masked: loss %v, want 0", got)
	}
}

// DeBERTa-v2's masked-LM head loads from Microsoft's names (deberta-v3-base's
// lm_predictions.lm_head, beside its replaced-token head and unused positions) into the
// parameters transformers names cls.predictions; a config with legacy false, whose head
// transformers names lm_predictions, is refused rather than saved under the other names.
func TestDebertaMLMReadsMicrosoftNames(t *testing.T) {
	lockThread(t)
	cfg := familyConfig(t, "deberta-v2", 0)
	src := newModel(t, cfg, Options{Task: MLM}, 1)
	randomize(src, rand.New(rand.NewPCG(1, 2)), src.head.mlm.bias)
	microsoft := strings.NewReplacer("cls.predictions.transform.dense.", "lm_predictions.lm_head.dense.",
		"cls.predictions.transform.LayerNorm.", "lm_predictions.lm_head.LayerNorm.", "cls.predictions.bias", "lm_predictions.lm_head.bias")
	tensors := f32Tensors(src, microsoft.Replace)
	unused := []string{"deberta.embeddings.position_embeddings.weight", "mask_predictions.classifier.weight"}
	for _, n := range unused {
		tensors = append(tensors, safetensors.Tensor{Info: safetensors.Info{Name: n, DType: safetensors.F32, Shape: []int64{1}}, Data: make([]byte, 4)})
	}
	dst := newModel(t, cfg, Options{Task: MLM}, 2)
	rep, err := dst.LoadWeights(writeSafetensors(t, tensors))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Loaded != len(dst.Params.List()) || len(rep.Initialized) > 0 || !slices.Equal(rep.Ignored, unused) {
		t.Fatalf("loaded %d of %d, fresh %v, ignored %v", rep.Loaded, len(dst.Params.List()), rep.Initialized, rep.Ignored)
	}
	if !slices.Equal(src.Params.FlatSlice(), dst.Params.FlatSlice()) {
		t.Error("the loaded parameters differ from the saved ones")
	}

	js, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	legacyFalse, err := hf.ParseConfig(bytes.Replace(js, []byte("{"), []byte(`{"legacy": false,`), 1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(legacyFalse, Options{Task: MLM}); err == nil || !strings.Contains(err.Error(), "legacy") {
		t.Errorf("mlm with legacy false: %v, want a refusal naming legacy", err)
	}
}
