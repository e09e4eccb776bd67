package hf

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// FuzzParseConfig: ParseConfig on any bytes returns a config or an error, without
// panicking. Its errors on a JSON object name a field. A config it accepts is a JSON
// object's, describes a model of at most maxParams parameters, and round-trips:
// Marshal's output parses to the same config and marshals to the same bytes.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{
		bertBaseUncased, `{}`, `null`, `[]`, `{"num_labels": 3}`, `{"num_labels": 1000000000000}`,
		`{"id2label": {"0": "ham", "1": "spam", "2": "x"}, "problem_type": "single_label_classification"}`,
		`{"id2label": {"0": "x", "1": "y"}, "label2id": {"x": 1, "y": 0}}`,
		`{"vocab_size": 4000000000, "hidden_size": 768}`, `{"num_hidden_layers": 1000000, "extra": [1, {"a": "<b>"}]}`,
		`{"model_type": "albert", "num_hidden_groups": 3, "num_hidden_layers": 2, "inner_group_num": 100000000}`,
		`{"model_type": "electra", "embedding_size": 1000000000000}`,
		`{"model_type": "distilbert", "dim": 100, "seq_classif_dropout": null}`,
		`{"model_type": "roberta", "pad_token_id": 1, "max_position_embeddings": 2}`,
		"{\n  \"vocab_size\": 30522,\n  \"hidden_size\": 768,,\n}",
	} {
		f.Add([]byte(s))
	}
	for _, s := range hubConfigs {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		object := bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("{"))
		if err != nil {
			var fe *FieldError
			if object && !errors.As(err, &fe) && !bytes.Contains([]byte(err.Error()), []byte("line ")) {
				t.Fatalf("error names neither a field nor a line: %v", err)
			}
			return
		}
		if !object {
			t.Fatalf("accepted %q, which is not a JSON object", data)
		}
		if n := c.params(); n > maxParams {
			t.Fatalf("accepted a model of %.3g parameters: %+v", n, c)
		}
		out, err := c.Marshal()
		if err != nil {
			t.Fatalf("accepted config does not marshal: %v", err)
		}
		back, err := ParseConfig(out)
		if err != nil {
			t.Fatalf("marshalled config does not parse: %v\n%s", err, out)
		}
		again, err := back.Marshal()
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("marshal, parse, marshal changed the output (%v):\n%s\n%s", err, out, again)
		}
		// Unknown fields are kept as raw JSON, whose layout Marshal may change; an empty
		// architectures list is left out.
		c.extra, back.extra = nil, nil
		if len(c.Architectures) == 0 {
			c.Architectures = nil
		}
		if !reflect.DeepEqual(c, back) {
			t.Fatalf("round trip changed the config:\n%+v\n%+v", c, back)
		}
	})
}
