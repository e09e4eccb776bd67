package main

import (
	"errors"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/bertnode/bertnode/hf"
	"github.com/bertnode/bertnode/internal/ortrun"
	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/onnx"
	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/tokenize"
	"github.com/bertnode/bertnode/train"
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
// embedding model, and an embedding checkpoint keeps its sentence-transformers
// settings. Its flags' mistakes are named.
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
	if n, err := model.ReadMaxSeqLength(emb); err != nil || n != 128 {
		t.Errorf("--pooling: max_seq_length %d (%v), want the default 128", n, err)
	}
	// An embedding checkpoint's export keeps its pooling, normalization and length.
	data := writeLines(t, t.TempDir(), "pairs.jsonl", `{"text": "how old are you?", "text_pair": "what is your age?"}`,
		`{"text": "where do you live?", "text_pair": "what is your address?"}`)
	s := train.Defaults()
	s.Task, s.Train, s.Eval, s.Data, s.Model, s.Tokenizer = "embed", data, data, shard.Spec{Format: shard.JSONL}, "tiny", vocabFile
	s.Pooling, s.MaxLength, s.Threads = "cls", 40, 2
	tr, err := train.Prepare(s, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ckpt, again := filepath.Join(t.TempDir(), "embed"), filepath.Join(t.TempDir(), "onnx")
	if err := tr.Save(ckpt); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "export", "--model", ckpt, "--output", again)
	if pooling, normalize, err := model.ReadPooling(again); err != nil || pooling != model.PoolCLS || !normalize {
		t.Errorf("an embedding checkpoint: exported with pooling %q, normalize %v (%v)", pooling, normalize, err)
	}
	if n, err := model.ReadMaxSeqLength(again); err != nil || n != 40 {
		t.Errorf("an embedding checkpoint of max_seq_length 40: exported with %d (%v)", n, err)
	}

	wantErr(t, "", []string{"--model"}, "export", "--output", out)
	wantErr(t, "", []string{"--format", `"torchscript"`, "onnx"}, "export", "--model", m.dir, "--format", "torchscript", "--output", out)
	wantErr(t, "", []string{"--output", "required"}, "export", "--model", m.dir)
	wantErr(t, "", []string{"--output", "the checkpoint itself"}, "export", "--model", m.dir, "--output", m.dir)
	wantErr(t, "", []string{"--normalize", "--pooling"}, "export", "--model", m.dir, "--output", out, "--normalize")
}

// The exported directory is all a deployment needs: texts encoded by the tokenizer
// files it holds and run by ONNX Runtime on its model.onnx, padded together, get the
// probabilities bertnode predict gives from the checkpoint, within 1e-4.
func TestExportONNXPredictsAsPredict(t *testing.T) {
	run := ortrun.Runner(t)
	m := trainedSMS(t)
	out := filepath.Join(t.TempDir(), "onnx")
	mustRun(t, "export", "--model", m.dir, "--output", out)
	texts := []string{"ok", "Hey, are we still on for lunch today?", "URGENT! You have won a 1 week FREE membership in our £100,000 Prize Jackpot! Txt CLAIM to 81010"}
	preds := jsonLines[train.Prediction](t, mustRun(t, append([]string{"predict", "--model", m.dir, "--max-length", "64", "--threads", "2"}, texts...)...))

	tok, err := tokenize.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	var encs []*tokenize.Encoding
	for _, text := range texts {
		e, err := tok.Encode(text, 64)
		if err != nil {
			t.Fatal(err)
		}
		encs = append(encs, &e)
	}
	coll, err := tokenize.NewCollator(tokenize.PadLongest, 64, tok.PadID())
	if err != nil {
		t.Fatal(err)
	}
	b, err := coll.Collate(encs)
	if err != nil {
		t.Fatal(err)
	}
	res := run([]ortrun.Job{{Model: filepath.Join(out, model.ONNXFile), Inputs: ortrun.Inputs([]int64{int64(b.Size), int64(b.Len)}, b.InputIDs, b.AttentionMask, b.TokenTypeIDs)}})
	logits := res[0]["logits"].Data
	if len(logits) != 2*len(texts) || len(preds) != len(texts) {
		t.Fatalf("%d logits, %d predictions for %d texts", len(logits), len(preds), len(texts))
	}
	d := 0.0
	for i, p := range preds {
		l := logits[2*i : 2*i+2]
		spam := 1 / (1 + math.Exp(l[0]-l[1])) // softmax over ham, spam
		d = max(d, math.Abs(spam-p.Probs["spam"]), math.Abs(1-spam-p.Probs["ham"]))
	}
	if d > 1e-4 {
		t.Errorf("ONNX Runtime's probabilities differ from predict's by %.3g", d)
	}
	t.Logf("max abs difference in probability: %.2g", d)

	// Exported again over it with the weights apart, the graph reads them from
	// model.onnx_data and gives the same logits; exported again without, the stale data
	// file goes.
	mustRun(t, "export", "--model", m.dir, "--output", out, "--external-data")
	fi, err := os.Stat(filepath.Join(out, model.ONNXFile))
	if err != nil {
		t.Fatal(err)
	}
	di, err := os.Stat(filepath.Join(out, "model.onnx_data"))
	if err != nil || fi.Size() > 1<<20 || di.Size() < 4<<20 {
		t.Fatalf("with --external-data: model.onnx %d bytes, model.onnx_data %v (%v): want the weights in the data file", fi.Size(), di, err)
	}
	apart := run([]ortrun.Job{{Model: filepath.Join(out, model.ONNXFile), Inputs: ortrun.Inputs([]int64{int64(b.Size), int64(b.Len)}, b.InputIDs, b.AttentionMask, b.TokenTypeIDs)}})
	if !slices.Equal(apart[0]["logits"].Data, logits) {
		t.Errorf("logits with the weights apart %v, inside %v", apart[0]["logits"].Data, logits)
	}
	mustRun(t, "export", "--model", m.dir, "--output", out)
	if _, err := os.Stat(filepath.Join(out, "model.onnx_data")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("model.onnx_data after an export without --external-data: %v", err)
	}
}
