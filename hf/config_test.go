package hf

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// bert-base-uncased's config.json as published on the hub.
const bertBaseUncased = `{
  "architectures": [
    "BertForMaskedLM"
  ],
  "attention_probs_dropout_prob": 0.1,
  "gradient_checkpointing": false,
  "hidden_act": "gelu",
  "hidden_dropout_prob": 0.1,
  "hidden_size": 768,
  "initializer_range": 0.02,
  "intermediate_size": 3072,
  "layer_norm_eps": 1e-12,
  "max_position_embeddings": 512,
  "model_type": "bert",
  "num_attention_heads": 12,
  "num_hidden_layers": 12,
  "pad_token_id": 0,
  "position_embedding_type": "absolute",
  "transformers_version": "4.6.0.dev0",
  "type_vocab_size": 2,
  "use_cache": true,
  "vocab_size": 30522
}
`

func TestParseBertBaseUncased(t *testing.T) {
	c, err := ParseConfig([]byte(bertBaseUncased))
	if err != nil {
		t.Fatal(err)
	}
	if c.HiddenSize != 768 || c.NumHiddenLayers != 12 || c.HeadSize() != 64 || c.LayerNormEps != 1e-12 ||
		!reflect.DeepEqual(c.Architectures, []string{"BertForMaskedLM"}) || c.ClassifierDropout != nil {
		t.Fatalf("parsed %+v", c)
	}
	if !reflect.DeepEqual(c.Labels(), []string{"LABEL_0", "LABEL_1"}) {
		t.Fatalf("labels %v, want transformers' default two", c.Labels())
	}
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// Unknown fields survive, in transformers' sorted, indented layout.
	for _, want := range []string{"  \"gradient_checkpointing\": false,\n", "  \"transformers_version\": \"4.6.0.dev0\",\n",
		"  \"use_cache\": true,\n", "  \"layer_norm_eps\": 1e-12,\n", "  \"id2label\": {\n    \"0\": \"LABEL_0\",\n    \"1\": \"LABEL_1\"\n  },\n",
		"  \"classifier_dropout\": null,\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	var keys []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, `  "`) {
			keys = append(keys, strings.SplitN(line, `"`, 3)[1])
		}
	}
	if !reflect.DeepEqual(keys, sortedCopy(keys)) {
		t.Errorf("keys not sorted: %v", keys)
	}
	again, err := ParseConfig(out)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again, c) {
		t.Fatalf("round trip changed the config:\n%+v\n%+v", again, c)
	}
}

func sortedCopy(s []string) []string {
	c := append([]string(nil), s...)
	for i := range c {
		for j := i + 1; j < len(c); j++ {
			if c[j] < c[i] {
				c[i], c[j] = c[j], c[i]
			}
		}
	}
	return c
}

func TestLabels(t *testing.T) {
	c, err := ParseConfig([]byte(`{"num_labels": 3}`))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Labels(), []string{"LABEL_0", "LABEL_1", "LABEL_2"}) || c.Label2ID["LABEL_2"] != 2 {
		t.Fatalf("num_labels 3 gave %v %v", c.ID2Label, c.Label2ID)
	}
	c, err = ParseConfig([]byte(`{"id2label": {"0": "ham", "1": "spam", "2": "x"}, "problem_type": "single_label_classification"}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.NumLabels() != 3 || c.Label2ID["spam"] != 1 {
		t.Fatalf("id2label alone gave %v %v", c.ID2Label, c.Label2ID)
	}
	c.SetLabels([]string{"neg", "pos"})
	out, _ := c.Marshal()
	back, err := ParseConfig(out)
	if err != nil || !reflect.DeepEqual(back.Labels(), []string{"neg", "pos"}) || back.ProblemType != "single_label_classification" {
		t.Fatalf("labels after round trip %v (%v)", back.Labels(), err)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	cases := []struct{ json, want string }{
		{`{"hidden_size": 100, "num_attention_heads": 12}`, `field "num_attention_heads": hidden_size 100 is not divisible by 12 heads`},
		{`{"hidden_size": "big"}`, `field "hidden_size": cannot use "big"`},
		{`{"num_hidden_layers": 0}`, `field "num_hidden_layers": must be positive`},
		{`{"hidden_act": "gelu2"}`, `field "hidden_act": unknown activation "gelu2"`},
		{`{"hidden_dropout_prob": 1.5}`, `field "hidden_dropout_prob": must be in [0, 1)`},
		{`{"classifier_dropout": -0.1}`, `field "classifier_dropout"`},
		{`{"pad_token_id": 40000}`, `field "pad_token_id": 40000 is outside the vocabulary`},
		{`{"model_type": "gpt2"}`, `field "model_type": "gpt2" is not a family this version reads (known: albert, bert, camembert, deberta-v2, distilbert, electra, modernbert, mpnet, nomic_bert, roberta, xlm-roberta)`},
		{`{"model_type": "distilbert", "dim": 100}`, `field "n_heads": dim 100 is not divisible by 12 heads`},
		{`{"model_type": "distilbert", "activation": "gelu2"}`, `field "activation": unknown activation`},
		{`{"model_type": "distilbert", "seq_classif_dropout": 1}`, `field "seq_classif_dropout": must be in [0, 1)`},
		{`{"model_type": "distilbert", "seq_classif_dropout": null}`, `field "seq_classif_dropout": must be a number`},
		{`{"model_type": "distilbert", "qa_dropout": -1}`, `field "qa_dropout"`},
		{`{"model_type": "albert", "num_hidden_groups": 3, "num_hidden_layers": 2}`, `field "num_hidden_groups": must be in [1, num_hidden_layers 2], got 3`},
		{`{"model_type": "albert", "inner_group_num": 0}`, `field "inner_group_num"`},
		{`{"model_type": "albert", "embedding_size": 0}`, `field "embedding_size"`},
		{`{"model_type": "albert", "classifier_dropout_prob": 2}`, `field "classifier_dropout_prob": must be in [0, 1)`},
		{`{"model_type": "electra", "embedding_size": -1}`, `field "embedding_size"`},
		{`{"model_type": "roberta", "type_vocab_size": 0}`, `field "type_vocab_size"`},
		{`{"model_type": "roberta", "pad_token_id": 1, "max_position_embeddings": 2}`, `field "max_position_embeddings": 2 leaves no position`},
		{`{"model_type": 3}`, `field "model_type": cannot use 3`},
		{`{"problem_type": "ranking"}`, `field "problem_type"`},
		{`{"id2label": {"a": "x"}}`, `field "id2label"`},
		{`{"id2label": {"0": "x", "2": "y"}}`, `field "id2label": ids must be 0..1, 1 is missing`},
		{`{"id2label": {"0": "x", "1": "y"}, "label2id": {"x": 1, "y": 0}}`, `field "label2id"`},
		{`{"num_labels": 3, "id2label": {"0": "x"}}`, `field "num_labels": is 3 but id2label has 1`},
		{`{"num_labels": -1}`, `field "num_labels"`},
		{`{"num_labels": 1000000000000}`, `field "num_labels": want a positive integer up to 65536`},
		{`{"vocab_size": 4000000000}`, `field "vocab_size": 4000000000 is more than 2097152`},
		{`{"model_type": "distilbert", "n_layers": 5000}`, `field "n_layers": 5000 is more than 1024`},
		{`{"num_hidden_layers": 1000, "hidden_size": 16384, "num_attention_heads": 16}`, `field "hidden_size": 30522 words and 1000 layers of width 16384 (intermediate 3072) make 1.17e+12 parameters`},
		{`null`, "want a JSON object of config fields, got null"},
		{`{"position_embedding_type": "relative_key"}`, `field "position_embedding_type"`},
		{"{\n  \"vocab_size\": 30522,\n  \"hidden_size\": 768,,\n}", "line 3, column 22"},
		{`[]`, "cannot unmarshal array"},
	}
	dir := t.TempDir()
	for _, c := range cases {
		path := filepath.Join(dir, "config.json")
		os.WriteFile(path, []byte(c.json), 0o644)
		_, err := ReadConfig(path)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error %v, want %q and the path", c.json, err, c.want)
		}
	}
}

func TestPresets(t *testing.T) {
	want := map[string][4]int{"tiny": {2, 128, 2, 512}, "mini": {4, 256, 4, 1024}, "small": {4, 512, 8, 2048}, "base": {12, 768, 12, 3072}}
	for name, w := range want {
		c, err := Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := [4]int{c.NumHiddenLayers, c.HiddenSize, c.NumAttentionHeads, c.IntermediateSize}; got != w ||
			c.VocabSize != 30522 || c.MaxPositionEmbeddings != 512 {
			t.Errorf("%s = %v vocab %d positions %d", name, got, c.VocabSize, c.MaxPositionEmbeddings)
		}
	}
	for _, name := range []string{"huge", "roberta-base", "bert-tiny", "albert-", "gpt2-tiny"} {
		if _, err := Preset(name); err == nil || !strings.Contains(err.Error(), "albert-mini, albert-small, albert-tiny, base, deberta-v2-mini") {
			t.Fatalf("unknown preset %s: %v", name, err)
		}
	}
}

func TestWriteConfigRefusesInvalid(t *testing.T) {
	c, _ := Preset("tiny")
	c.NumAttentionHeads = 3
	path := filepath.Join(t.TempDir(), "config.json")
	if err := WriteConfig(path, c); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("error %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("invalid config was written")
	}
}
