package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/bertnode/bertnode/hf"
	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/onnx"
)

// graphIO reads an exported model.onnx's input and output names.
func graphIO(t *testing.T, dir string) (ins, outs []string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, model.ONNXFile))
	if err != nil {
		t.Fatal(err)
	}
	mp := &onnx.ModelProto{}
	if err := proto.Unmarshal(data, mp); err != nil {
		t.Fatal(err)
	}
	for _, v := range mp.GetGraph().GetInput() {
		ins = append(ins, v.GetName())
	}
	for _, v := range mp.GetGraph().GetOutput() {
		outs = append(outs, v.GetName())
	}
	return ins, outs
}

// export writes the trained SMS classifier as optimum's directory: model.onnx with
// BERT's three inputs and logits, config.json with its labels, the tokenizer's files,
// and no safetensors; with --pooling the same checkpoint exports as a sentence
// embedding model. Its flags' mistakes are named.
func TestExportONNX(t *testing.T) {
	m := trainedSMS(t)
	out := filepath.Join(t.TempDir(), "onnx")
	if got := mustRun(t, "export", "--model", m.dir, "--format", "onnx", "--output", out); !strings.Contains(got, filepath.Join(out, model.ONNXFile)) {
		t.Errorf("output %q does not name the file written", got)
	}
	var names []string
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		names = append(names, e.Name())
	}
	for _, want := range []string{model.ONNXFile, model.ConfigFile, "tokenizer.json", "tokenizer_config.json", "vocab.txt"} {
		if !slices.Contains(names, want) {
			t.Errorf("%s: %v lacks %s", out, names, want)
		}
	}
	if slices.Contains(names, model.SafetensorsFile) {
		t.Errorf("%s: %v: the weights are in model.onnx, not beside it", out, names)
	}
	cfg, err := hf.ReadConfig(filepath.Join(out, model.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Labels(); !slices.Equal(got, []string{"ham", "spam"}) || cfg.Architectures[0] != "BertForSequenceClassification" {
		t.Errorf("config.json: labels %v, architectures %v", got, cfg.Architectures)
	}
	ins, outs := graphIO(t, out)
	if !slices.Equal(ins, []string{"input_ids", "attention_mask", "token_type_ids"}) || !slices.Equal(outs, []string{"logits"}) {
		t.Errorf("inputs %v, outputs %v", ins, outs)
	}

	emb := filepath.Join(t.TempDir(), "embed")
	mustRun(t, "export", "--model", m.dir, "--output", emb, "--pooling", "cls", "--normalize")
	if _, outs := graphIO(t, emb); !slices.Equal(outs, []string{"token_embeddings", "sentence_embedding"}) {
		t.Errorf("--pooling: outputs %v", outs)
	}
	if pooling, normalize, err := model.ReadPooling(emb); err != nil || pooling != model.PoolCLS || !normalize {
		t.Errorf("--pooling cls --normalize: the directory's sentence-transformers files say %q, normalize %v (%v)", pooling, normalize, err)
	}

	wantErr(t, "", []string{"--model"}, "export", "--output", out)
	wantErr(t, "", []string{"--format", `"torchscript"`, "onnx"}, "export", "--model", m.dir, "--format", "torchscript", "--output", out)
	wantErr(t, "", []string{"--output", "required"}, "export", "--model", m.dir)
	wantErr(t, "", []string{"--output", "the checkpoint itself"}, "export", "--model", m.dir, "--output", m.dir)
	wantErr(t, "", []string{"--normalize", "--pooling"}, "export", "--model", m.dir, "--output", out, "--normalize")
}
