package main

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/bertnode/bertnode/safetensors"
	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/tokenize"
	"github.com/bertnode/bertnode/train"
)

// jsonLines decodes predict's output, one JSON object per line.
func jsonLines[T any](t *testing.T, out string) []T {
	t.Helper()
	var vs []T
	for i, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var v T
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("output line %d %q: %v", i+1, line, err)
		}
		vs = append(vs, v)
	}
	return vs
}

// Texts from arguments, a file and stdin give the same JSON lines: the most probable
// class and a softmax over the classes. A text that eval lists as a mistake gets the
// same prediction and confidence from predict.
func TestPredictPrintsProbabilities(t *testing.T) {
	m := trainedSMS(t)
	mistake := m.want.Mistakes[0]
	texts := []string{mistake.Text, "Hey, are we still on for lunch today?", "URGENT! You have won a 1 week FREE membership in our £100,000 Prize Jackpot! Txt CLAIM to 81010"}
	base := []string{"predict", "--model", m.dir, "--max-length", "64", "--threads", "2"}
	out := mustRun(t, append(base, texts...)...)
	preds := jsonLines[train.Prediction](t, out)
	if len(preds) != len(texts) {
		t.Fatalf("%d predictions for %d texts:\n%s", len(preds), len(texts), out)
	}
	for i, p := range preds {
		var sum float64
		for _, v := range p.Probs {
			sum += v
		}
		best := slices.MaxFunc([]string{"ham", "spam"}, func(a, b string) int { return cmp.Compare(p.Probs[a], p.Probs[b]) })
		if p.Text != texts[i] || len(p.Probs) != 2 || math.Abs(sum-1) > 1e-9 || p.Label != best || !slices.Equal(p.Labels, []string{best}) {
			t.Errorf("text %d: %+v (probabilities sum to %v)", i, p, sum)
		}
	}
	if p := preds[0]; p.Label != mistake.Pred || math.Abs(p.Probs[p.Label]-mistake.Confidence) > 1e-6 {
		t.Errorf("predict says %s with %v; eval's mistake %s with %v", p.Label, p.Probs[p.Label], mistake.Pred, mistake.Confidence)
	}

	in := strings.Join(texts[:1], "\n") + "\n\n" + strings.Join(texts[1:], "\r\n") // blank lines and CRLF
	file := writeLines(t, t.TempDir(), "texts.txt", in)
	for name, got := range map[string]func() (string, string, error){
		"stdin": func() (string, string, error) { return bertnode(t, in, base...) },
		"file":  func() (string, string, error) { return bertnode(t, "", append(base, "--file", file)...) },
	} {
		o, _, err := got()
		if err != nil || o != out {
			t.Errorf("%s: %v\n%s\nwant\n%s", name, err, o, out)
		}
	}
}

// --attention writes the head view of the first text over its word pieces.
func TestPredictAttentionHeadView(t *testing.T) {
	m := trainedSMS(t)
	html := filepath.Join(t.TempDir(), "attn.html")
	text := "Claim your FREE ringtone now!"
	_, stderr, err := bertnode(t, "", "predict", "--model", m.dir, "--attention", html, text, "second text")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenize.Load(m.dir)
	if err != nil {
		t.Fatal(err)
	}
	tokens := append(append([]string{"[CLS]"}, tok.Tokens(text)...), "[SEP]")
	if !slices.Contains(tokens, "##tone") {
		t.Fatalf("tokens %q: want a word piece", tokens)
	}
	want, _ := json.Marshal(tokens)
	b, err := os.ReadFile(html)
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	if !strings.Contains(page, `{"tokens":`+string(want)+`,"attn":[[[[`) || !strings.Contains(page, "</html>") {
		t.Errorf("head view lacks the tokens %s:\n%.300s", want, page)
	}
	if !strings.Contains(stderr, fmt.Sprintf("2 layers x 2 heads over %d tokens", len(tokens))) {
		t.Errorf("stderr %q", stderr)
	}
}

// A multilabel checkpoint predicts every class whose sigmoid reaches --threshold.
func TestPredictMultiLabelThreshold(t *testing.T) {
	runtime.LockOSThread()
	dir := t.TempDir()
	data := writeLines(t, dir, "tags.jsonl",
		`{"text": "cheap flights to paris", "label": ["travel", "deals"]}`,
		`{"text": "the match ended in a draw", "label": ["sport"]}`)
	s := train.Defaults()
	s.Task, s.Train, s.Eval, s.Data, s.Model, s.Tokenizer = "multilabel", data, data, shard.Spec{}, "tiny", vocabFile
	tr, err := train.Prepare(s, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(dir, "ckpt")
	if err := tr.Save(ckpt); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		threshold string
		n         int
	}{{"0", 3}, {"1", 0}} {
		out := mustRun(t, "predict", "--model", ckpt, "--threshold", c.threshold, "cheap hotels", "a draw")
		for _, p := range jsonLines[train.Prediction](t, out) {
			if len(p.Labels) != c.n || p.Label != "" || len(p.Probs) != 3 {
				t.Errorf("threshold %s: %+v", c.threshold, p)
			}
		}
		if c.n == 0 && !strings.Contains(out, `"labels":[]`) {
			t.Errorf("threshold 1: no labels should print as an empty list:\n%s", out)
		}
	}
	wantErr(t, "", []string{"--threshold", "1.5"}, "predict", "--model", ckpt, "--threshold", "1.5", "x")
}

func TestPredictErrorsNameThePlace(t *testing.T) {
	m := trainedSMS(t)
	dir := t.TempDir()
	latin1 := filepath.Join(dir, "latin1.txt")
	os.WriteFile(latin1, []byte("fine\ncaf\xe9\n"), 0o644)
	wantErr(t, "", []string{"standard input", "no input"}, "predict", "--model", m.dir)
	wantErr(t, " \n\n", []string{"standard input", "no input"}, "predict", "--model", m.dir)
	wantErr(t, "", []string{"latin1.txt:2", "UTF-8"}, "predict", "--model", m.dir, "--file", latin1)
	wantErr(t, "", []string{"missing.txt"}, "predict", "--model", m.dir, "--file", filepath.Join(dir, "missing.txt"))
	wantErr(t, "", []string{"--file", "not both"}, "predict", "--model", m.dir, "--file", latin1, "text")
	wantErr(t, "", []string{"--threshold", "multilabel", "classify"}, "predict", "--model", m.dir, "--threshold", "0.3", "text")
	wantErr(t, "", []string{"model directory", "nope"}, "predict", "--model", filepath.Join(dir, "nope"), "text")
	wantErr(t, "", []string{"--model"}, "predict", "text")
}

// tinyCheckpoint saves a random-init tiny BERT for task, its labels read from data,
// and returns the checkpoint directory.
func tinyCheckpoint(t *testing.T, task string, data string, format shard.Format) string {
	t.Helper()
	s := train.Defaults()
	s.Task, s.Train, s.Eval, s.Data, s.Model, s.Tokenizer = task, data, data, shard.Spec{Format: format}, "tiny", vocabFile
	s.MaxLength, s.Threads = 64, 2
	tr, err := train.Prepare(s, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), task)
	if err := tr.Save(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// steerHead rewrites the checkpoint's output layer (classifier or qa_outputs) to give
// every token the logits bias, whatever the encoder computes.
func steerHead(t *testing.T, dir, head string, bias []float32) {
	t.Helper()
	path := filepath.Join(dir, "model.safetensors")
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	tensors := make([]safetensors.Tensor, len(f.Tensors))
	for i, x := range f.Tensors {
		tensors[i] = safetensors.Tensor{Info: x.Info, Data: slices.Clone(x.Data)}
		switch x.Name {
		case head + ".weight":
			clear(tensors[i].Data)
		case head + ".bias":
			if x.DType != safetensors.F32 || len(x.Data) != 4*len(bias) {
				t.Fatalf("%s: %v %v, want %d float32", x.Name, x.DType, x.Shape, len(bias))
			}
			for k, v := range bias {
				binary.LittleEndian.PutUint32(tensors[i].Data[4*k:], math.Float32bits(v))
			}
		}
	}
	meta := f.Metadata
	f.Close()
	if err := safetensors.Save(path, tensors, meta); err != nil {
		t.Fatal(err)
	}
}

const nerData = "Peter B-person\nBlackburn I-person\nvisited O\nBrussels B-location\n. O\n\n" +
	"EU B-corporation\nrejects O\nGerman O\ncall O\n\nZoë B-person\nlives O\nin O\nZürich B-location\n"

// A ner checkpoint tags the words the pre-tokenizer makes of a text, and each entity
// names the runes of the text it covers. The output layer is steered so that every
// word gets a chosen tag: B-location makes each word an entity, I-person one entity of
// all words, O none.
func TestPredictNEREntitiesPointAtTheText(t *testing.T) {
	runtime.LockOSThread()
	ckpt := tinyCheckpoint(t, "ner", writeLines(t, t.TempDir(), "ner.conll", nerData), shard.CoNLL)
	cfg, err := os.ReadFile(filepath.Join(ckpt, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct{ ID2Label map[string]string }
	if err := json.Unmarshal(cfg, &c); err != nil {
		t.Fatal(err)
	}
	tags := make([]string, len(c.ID2Label))
	for id, tag := range c.ID2Label {
		n, _ := strconv.Atoi(id)
		tags[n] = tag
	}
	text := "Zoë  visited Zürich, 北京\t☃ (again)!"
	words := []string{"Zoë", "visited", "Zürich", ",", "北", "京", "☃", "(", "again", ")", "!"}
	runes := []rune(text)
	for _, c := range []struct {
		tag      string
		entities [][2]int // words of each entity
	}{
		{"B-location", [][2]int{{0, 1}, {1, 2}, {2, 3}, {3, 4}, {4, 5}, {5, 6}, {6, 7}, {7, 8}, {8, 9}, {9, 10}, {10, 11}}},
		{"I-person", [][2]int{{0, 11}}},
		{"O", nil},
	} {
		bias := make([]float32, len(tags))
		k := slices.Index(tags, c.tag)
		bias[k] = 3
		steerHead(t, ckpt, "classifier", bias)
		out := mustRun(t, "predict", "--model", ckpt, text, "Peter")
		p := jsonLines[train.Tagged](t, out)
		if c.tag == "O" && !strings.Contains(out, `"entities":[]`) {
			t.Errorf("no entities should print as an empty list:\n%s", out)
		}
		if len(p) != 2 || p[0].Text != text || !slices.Equal(p[0].Words, words) || p[1].Text != "Peter" || !slices.Equal(p[1].Words, []string{"Peter"}) {
			t.Fatalf("%s: %+v", c.tag, p)
		}
		word := math.Exp(3) / (math.Exp(3) + float64(len(tags)-1)) // each word's tag probability
		if math.Abs(p[0].Confidence-math.Pow(word, float64(len(words)))) > 1e-6 || math.Abs(p[1].Confidence-word) > 1e-6 {
			t.Errorf("%s: confidences %v, %v; want %v^words", c.tag, p[0].Confidence, p[1].Confidence, word)
		}
		var ents []string
		for _, e := range p[0].Entities {
			ents = append(ents, fmt.Sprint(e.Words))
			if e.Text != string(runes[e.Start:e.End]) || e.Text != strings.TrimSpace(e.Text) || e.Type != c.tag[2:] {
				t.Errorf("%s: entity %+v: the text's runes %d..%d are %q", c.tag, e, e.Start, e.End, string(runes[e.Start:e.End]))
			}
			if first, last := words[e.Words[0]], words[e.Words[1]-1]; !strings.HasPrefix(e.Text, first) || !strings.HasSuffix(e.Text, last) {
				t.Errorf("%s: entity %+v does not run from %q to %q", c.tag, e, first, last)
			}
		}
		var want []string
		for _, w := range c.entities {
			want = append(want, fmt.Sprint(w))
		}
		if !slices.Equal(ents, want) {
			t.Errorf("%s: entities over words %v, want %v", c.tag, ents, want)
		}
		if c.tag == "I-person" && p[0].Entities[0].Text != text {
			t.Errorf("one entity of all words: %q, want the whole text", p[0].Entities[0].Text)
		}
		for _, got := range p[0].Tags {
			if got != c.tag {
				t.Fatalf("%s: tags %q", c.tag, p[0].Tags)
			}
		}
	}

	// Words past max_length are tagged O, counted and warned of.
	bias := make([]float32, len(tags))
	bias[slices.Index(tags, "B-location")] = 3
	steerHead(t, ckpt, "classifier", bias)
	out, stderr, err := bertnode(t, "", "predict", "--model", ckpt, "--max-length", "8", text, "Peter")
	if err != nil {
		t.Fatal(err)
	}
	p := jsonLines[train.Tagged](t, out)
	fit := len(words) - p[0].Truncated
	if p[0].Truncated == 0 || p[1].Truncated != 0 || len(p[0].Entities) != fit || !slices.Equal(p[0].Tags[fit:], slices.Repeat([]string{"O"}, p[0].Truncated)) {
		t.Errorf("max length 8: %+v", p[0])
	}
	if want := fmt.Sprintf("text 1: its last %d of %d words do not fit in --max-length 8", p[0].Truncated, len(words)); !strings.Contains(stderr, want) || strings.Contains(stderr, "text 2") {
		t.Errorf("stderr %q, want %q", stderr, want)
	}
}

// Predicting a sentence's text tags its words as eval does (the same tags, with the
// same confidence, as eval's mistakes report) when the data's words are the ones the
// pre-tokenizer makes.
func TestPredictNERAgreesWithEval(t *testing.T) {
	runtime.LockOSThread()
	data := writeLines(t, t.TempDir(), "ner.conll", nerData)
	ckpt := tinyCheckpoint(t, "ner", data, shard.CoNLL)
	s := train.Defaults()
	s.Model, s.Eval, s.Data, s.Threads = ckpt, data, shard.Spec{Format: shard.CoNLL}, 2
	ev, err := train.ForEval(s, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	res, err := ev.Evaluate()
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Mistakes) < 2 {
		t.Fatalf("the random model gets %d of 3 sentences wrong: too few to compare", len(res.Mistakes))
	}
	var texts []string
	for _, m := range res.Mistakes {
		texts = append(texts, m.Text)
	}
	for i, p := range jsonLines[train.Tagged](t, mustRun(t, append([]string{"predict", "--model", ckpt, "--threads", "2"}, texts...)...)) {
		m := res.Mistakes[i]
		if strings.Join(p.Words, " ") != m.Text || strings.Join(p.Tags, " ") != m.Pred || math.Abs(p.Confidence-m.Confidence) > 1e-6 {
			t.Errorf("predict: %q %q %v; eval: %q %q %v", p.Words, p.Tags, p.Confidence, m.Text, m.Pred, m.Confidence)
		}
	}
}

// squadContext is long enough for several windows at max length 48.
const squadContext = "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. " +
	"It is named after the engineer Gustave Eiffel, whose company designed and built the tower from 1887 to 1889. " +
	"Locally nicknamed La dame de fer, it was constructed as the centrepiece of the 1889 World's Fair, and to crown " +
	"the centennial anniversary of the French Revolution. Although initially criticised by some of France's leading " +
	"artists and intellectuals for its design, it has since become a global cultural icon of France and one of the " +
	"most recognisable structures in the world. Café owners nearby say 12 000 000 people visit it every year."

var squadQuestions = [][2]string{
	{"q1", "Who is the tower named after?"},
	{"q2", "When was the tower built?"},
	{"q3", "How many people visit it every year?"},
}

// writeSQuAD writes the questions about squadContext as a SQuAD file; with impossible,
// as SQuAD v2.0 questions without answers.
func writeSQuAD(t *testing.T, dir string, impossible bool) string {
	t.Helper()
	type qa struct {
		ID         string `json:"id"`
		Question   string `json:"question"`
		Answers    []any  `json:"answers"`
		Impossible bool   `json:"is_impossible"`
	}
	var qas []qa
	for _, q := range squadQuestions {
		a := []any{map[string]any{"text": "Paris", "answer_start": strings.Index(squadContext, "Paris")}}
		if impossible {
			a = []any{}
		}
		qas = append(qas, qa{q[0], q[1], a, impossible})
	}
	b, err := json.Marshal(map[string]any{"version": "v2.0", "data": []any{map[string]any{"title": "t",
		"paragraphs": []any{map[string]any{"context": squadContext, "qas": qas}}}}})
	if err != nil {
		t.Fatal(err)
	}
	return writeLines(t, dir, "squad.json", string(b))
}

// questionLines writes the questions as predict's JSON lines, the last without an id.
func questionLines(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	for i, q := range squadQuestions {
		m := map[string]string{"id": q[0], "question": q[1], "context": squadContext}
		if i == len(squadQuestions)-1 {
			delete(m, "id")
		}
		b, _ := json.Marshal(m)
		lines = append(lines, string(b))
	}
	return writeLines(t, dir, "questions.jsonl", lines...)
}

// answers decodes predict's qa output, checking that each answer is the context's text

// A qa checkpoint answers each question with a span of its context, searched over the
// same sliding windows as eval: the answers are eval's predictions, from JSON lines or
// from --question and --context alike.
func TestPredictQAAnswersAsEval(t *testing.T) {
	runtime.LockOSThread()
	dir := t.TempDir()
	squad := writeSQuAD(t, dir, false)
	ckpt := tinyCheckpoint(t, "qa", squad, shard.SQuAD)
	questions := questionLines(t, dir)
	base := []string{"predict", "--model", ckpt, "--max-length", "48", "--threads", "2"}
	windows := map[int]bool{}
	for _, stride := range []int{0, 4} { // 0: the default, 16 at max length 48
		s := train.Defaults()
		s.Model, s.Eval, s.Data, s.MaxLength, s.DocStride, s.Threads = ckpt, squad, shard.Spec{Format: shard.SQuAD}, 48, stride, 2
		ev, err := train.ForEval(s, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		res, err := ev.Evaluate()
		if err != nil {
			t.Fatal(err)
		}
		windows[len(ev.Eval)] = true
		got := answers(t, mustRun(t, append(base, "--doc-stride", strconv.Itoa(stride), "--file", questions)...))
		if len(got) != len(squadQuestions) {
			t.Fatalf("%d answers to %d questions", len(got), len(squadQuestions))
		}
		for i, a := range got {
			id := squadQuestions[i][0]
			wantID := id
			if i == len(got)-1 {
				wantID = strconv.Itoa(i + 1) // the line number
			}
			if a.ID != wantID || a.Answer == "" || a.Answer != res.Predictions[id] {
				t.Errorf("stride %d: question %s: %+v; eval's answer %q", stride, id, a, res.Predictions[id])
			}
		}
		if stride > 0 {
			continue
		}
		flags := answers(t, mustRun(t, append(base, "--question", squadQuestions[0][1], "--context", squadContext)...))
		if len(flags) != 1 || flags[0].Answer != got[0].Answer || flags[0].Start != got[0].Start || math.Abs(flags[0].Score-got[0].Score) > 1e-6 {
			t.Errorf("--question and --context: %+v; from JSON: %+v", flags, got[0])
		}
	}
	if len(windows) != 2 || windows[len(squadQuestions)] {
		t.Errorf("windows per stride %v: want several per question, more at the smaller stride", windows)
	}
}

// --allow-empty lets a model trained on unanswerable questions answer nothing; without
// it the best span is the answer.
func TestPredictQAAllowEmpty(t *testing.T) {
	runtime.LockOSThread()
	dir := t.TempDir()
	s := train.Defaults()
	s.Task, s.Train, s.Eval, s.Data, s.Model, s.Tokenizer = "qa", writeSQuAD(t, dir, true), "", shard.Spec{Format: shard.SQuAD}, "tiny", vocabFile
	s.EvalSplit, s.MaxLength, s.BatchSize, s.LR, s.MaxSteps, s.Threads, s.SaveEvery = 0, 48, 8, 2e-3, 20, 2, -1
	s.Output = filepath.Join(dir, "run")
	tr, err := train.Prepare(s, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	base := []string{"predict", "--model", filepath.Join(s.Output, "final"), "--max-length", "48", "--file", questionLines(t, dir)}
	for _, a := range answers(t, mustRun(t, append(base, "--allow-empty")...)) {
		if a.Answer != "" {
			t.Errorf("--allow-empty: %+v, want no answer", a)
		}
	}
	for _, a := range answers(t, mustRun(t, base...)) {
		if a.Answer == "" {
			t.Errorf("without --allow-empty: %+v, want a span", a)
		}
	}
}

// Input for the wrong task, and flags for another task, are clear errors.
func TestPredictNERAndQAErrors(t *testing.T) {
	runtime.LockOSThread()
	dir := t.TempDir()
	ner := tinyCheckpoint(t, "ner", writeLines(t, dir, "ner.conll", nerData), shard.CoNLL)
	qa := tinyCheckpoint(t, "qa", writeSQuAD(t, dir, false), shard.SQuAD)
	question := `{"id": "q1", "question": "Where?", "context": "In Paris."}`
	texts := writeLines(t, dir, "texts.txt", `{"id": "q1", "question": "Where?", "context": "In Paris."}`, "plain text")
	noContext := writeLines(t, dir, "nocontext.jsonl", question, `{"id": "q2", "question": "Where?"}`)
	blank := writeLines(t, dir, "blank.jsonl", `{"question": "Where?", "context": " \t"}`)
	numeric := writeLines(t, dir, "numeric.jsonl", `{"id": 7, "question": "Where?", "context": "In Paris."}`)
	for _, c := range []struct {
		stdin string
		want  []string
		args  []string
	}{
		{"\n" + question + "\n", []string{"standard input:2", "qa question", "ner checkpoint"}, []string{"--model", ner}},
		{"", []string{"argument 2", "qa question", "ner checkpoint"}, []string{"--model", ner, "text", question}},
		{"", []string{"--question", "--context", "both"}, []string{"--model", qa, "--question", "Where?"}},
		{"", []string{"--question", "not both"}, []string{"--model", qa, "--question", "Where?", "--context", "Paris", "--file", noContext}},
		{"", []string{"--question", "--context", "not empty"}, []string{"--model", qa, "--question", " ", "--context", "Paris"}},
		{"", []string{"--allow-empty", "only for qa", "ner"}, []string{"--model", ner, "--allow-empty", "text"}},
		{"", []string{"--doc-stride", "only for qa", "ner"}, []string{"--model", ner, "--doc-stride", "8", "text"}},
		{"", []string{"--question", "only for qa", "ner"}, []string{"--model", ner, "--question", "Where?", "--context", "Paris"}},
		{"", []string{"--threshold", "only for multilabel", "ner"}, []string{"--model", ner, "--threshold", "0.2", "text"}},
		{"", []string{"--attention", "only for", "qa"}, []string{"--model", qa, "--attention", filepath.Join(dir, "a.html"), "--question", "Where?", "--context", "Paris"}},
		{"", []string{"no TEXT arguments"}, []string{"--model", qa, "some text"}},
		{"", []string{"texts.txt:2", "JSON object", "invalid character"}, []string{"--model", qa, "--file", texts}},
		{"", []string{"nocontext.jsonl:2", `"q2"`, "no context"}, []string{"--model", qa, "--file", noContext}},
		{"", []string{"blank.jsonl:1", "no context"}, []string{"--model", qa, "--file", blank}},
		{"", []string{"numeric.jsonl:1", "id", "string"}, []string{"--model", qa, "--file", numeric}},
		{"", []string{"standard input", "no input"}, []string{"--model", qa}},
		{question + "\n", []string{"doc stride 45", "max length 48"}, []string{"--model", qa, "--max-length", "48", "--doc-stride", "45"}},
	} {
		wantErr(t, c.stdin, c.want, append([]string{"predict"}, c.args...)...)
	}
}

// answers decodes predict's qa output, checking that each answer is the context's text
// at its start.
func answers(t *testing.T, out string) []train.Answer {
	t.Helper()
	runes := []rune(squadContext)
	as := jsonLines[train.Answer](t, out)
	for i, a := range as {
		n := utf8.RuneCountInString(a.Answer)
		if a.Answer != "" && (a.Start < 0 || a.Start+n > len(runes) || string(runes[a.Start:a.Start+n]) != a.Answer) ||
			a.Answer == "" && a.Start != -1 || !(a.Score > 0 && a.Score <= 1) {
			t.Errorf("output line %d: %+v is not the context's text at its start", i+1, a)
		}
	}
	return as
}

// predict on an embedding model prints each text's vector: any checkpoint read with
// --pooling, unit length with --normalize; the flags are refused where they mean nothing.
func TestPredictEmbeddings(t *testing.T) {
	m := trainedSMS(t)
	base := []string{"predict", "--model", m.dir, "--max-length", "64", "--threads", "2", "--pooling", "mean"}
	texts := []string{"Hey, are we still on for lunch today?", "WINNER!! Claim your free prize now"}
	raw := jsonLines[train.Embedding](t, mustRun(t, append(base, texts...)...))
	unit := jsonLines[train.Embedding](t, mustRun(t, append(base, append([]string{"--normalize"}, texts...)...)...))
	if len(raw) != 2 || len(unit) != 2 {
		t.Fatalf("%d and %d vectors for 2 texts", len(raw), len(unit))
	}
	for i := range raw {
		var n float64
		for _, x := range raw[i].Embedding {
			n += float64(x) * float64(x)
		}
		n = math.Sqrt(n)
		if raw[i].Text != texts[i] || len(raw[i].Embedding) != len(unit[i].Embedding) || len(raw[i].Embedding) == 0 || math.Abs(n-1) < 1e-3 {
			t.Fatalf("text %d: %q, %d dimensions, norm %v", i, raw[i].Text, len(raw[i].Embedding), n)
		}
		for k, x := range raw[i].Embedding {
			if math.Abs(float64(x)/n-float64(unit[i].Embedding[k])) > 1e-6 {
				t.Fatalf("text %d: --normalize [%d] = %v, want %v", i, k, unit[i].Embedding[k], float64(x)/n)
			}
		}
	}
	// --truncate-dim keeps the first dimensions, unit length again with --normalize.
	for _, normalize := range []bool{false, true} {
		args := append(slices.Clone(base), "--truncate-dim", "5")
		if normalize {
			args = append(args, "--normalize")
		}
		cut := jsonLines[train.Embedding](t, mustRun(t, append(args, texts...)...))
		for i := range cut {
			want := slices.Clone(raw[i].Embedding[:5])
			if normalize {
				train.Normalize(want)
			}
			if len(cut[i].Embedding) != 5 {
				t.Fatalf("--truncate-dim 5: %d dimensions", len(cut[i].Embedding))
			}
			for k, x := range want {
				if math.Abs(float64(x-cut[i].Embedding[k])) > 1e-6 {
					t.Fatalf("--truncate-dim 5, normalize %v: text %d [%d] = %v, want %v", normalize, i, k, cut[i].Embedding[k], x)
				}
			}
		}
	}
	wantErr(t, "", []string{"--truncate-dim: 100000 is not in [1, "}, append(base, "--truncate-dim", "100000", "text")...)
	wantErr(t, "", []string{"--truncate-dim: -3 is not in [1, "}, append(base, "--truncate-dim", "-3", "text")...)
	wantErr(t, "", []string{"--truncate-dim", "only for embed", "classify"}, "predict", "--model", m.dir, "--max-length", "64", "--truncate-dim", "8", "text")
	// A data file's texts embed as the same texts given as arguments: a text corpus, or
	// a csv file's text column (its other columns unread).
	dir := t.TempDir()
	args := mustRun(t, append(base, texts...)...)
	for _, file := range [][]string{
		{writeLines(t, dir, "corpus.txt", texts...), "text"},
		{writeLines(t, dir, "corpus.csv", "id,text,label", `1,"`+texts[0]+`",ham`, "2,"+texts[1]+",spam"), "csv"},
	} {
		if out := mustRun(t, append(base, "--file", file[0], "--format", file[1])...); out != args {
			t.Errorf("--format %s: %s\nwant\n%s", file[1], out, args)
		}
	}
	wantErr(t, "", []string{"format: labeltext: texts without labels are read from text, csv, tsv, jsonl or parquet"},
		append(base, "--file", smsHead(t, dir, 3), "--format", "labeltext")...)
	wantErr(t, "", []string{"--normalize", "only for embed", "classify"}, "predict", "--model", m.dir, "--max-length", "64", "--normalize", "text")
	wantErr(t, "", []string{"pooling", `"sum"`}, "predict", "--model", m.dir, "--max-length", "64", "--pooling", "sum", "text")
}

// predict on a multiple-choice checkpoint reads JSON lines of a text and its choices
// and prints the pick and each choice's probability; text arguments are refused.
func TestPredictChoices(t *testing.T) {
	dir := t.TempDir()
	data := writeLines(t, dir, "choices.jsonl", `{"text": "She opened the umbrella because", "choices": ["it was sunny", "it was raining"], "label": 1}`,
		`{"text": "He drank water because", "choices": ["he was thirsty", "it was late"], "label": 0}`)
	ckpt := tinyCheckpoint(t, "choice", data, shard.JSONL)
	in := `{"text": "The dog barked at", "choices": ["the mail carrier", "nothing", "the moon"]}` + "\n"
	out, _, err := bertnode(t, in, "predict", "--model", ckpt, "--max-length", "32", "--threads", "2")
	if err != nil {
		t.Fatal(err)
	}
	answers := jsonLines[train.ChoiceAnswer](t, out)
	if len(answers) != 1 || len(answers[0].Probs) != 3 || answers[0].Choice != []string{"the mail carrier", "nothing", "the moon"}[answers[0].Index] {
		t.Fatalf("answers %+v", answers)
	}
	wantErr(t, "", []string{"choice checkpoint", "no TEXT arguments"}, "predict", "--model", ckpt, "--max-length", "32", "a text")
	wantErr(t, `{"text": "a", "choices": ["x"]}`+"\n", []string{"standard input:1", "two or more"}, "predict", "--model", ckpt, "--max-length", "32")
	fromData := mustRun(t, "predict", "--model", ckpt, "--max-length", "32", "--file", data, "--format", "jsonl")
	if got := jsonLines[train.ChoiceAnswer](t, fromData); len(got) != 2 || got[1].Text != "He drank water because" {
		t.Errorf("from the data file: %+v", got)
	}
}

// predict fills the masks of the masked-LM checkpoints in model/testdata's fixtures, as
// transformers saves them: ModernBertForMaskedLM (its decoder tied) through ModernBERT's
// byte-level BPE tokenizer, whose [MASK] takes the space before it;
// NomicBertForPreTraining and ElectraForMaskedLM through their WordPiece vocab.txt, the
// tied decoder's copy in their model.safetensors ignored; DebertaV2ForMaskedLM through
// its spm.model, each stretch between [MASK]s its own pieces. At each [MASK] of each text, in
// order, the most probable token and its probability are those of the reference
// implementation's logits there, and the sequence is the text with that mask filled.
func TestPredictFillsFixtureMasks(t *testing.T) {
	for _, name := range []string{"modernbert-mlm", "nomic_bert-mlm", "electra-mlm", "deberta-v2-mlm"} {
		t.Run(name, func(t *testing.T) { predictFillsFixtureMasks(t, "../../model/testdata/families/fixtures/"+name) })
	}
}

func predictFillsFixtureMasks(t *testing.T, dir string) {
	var exp struct {
		Texts     []string  `json:"texts"`
		InputIDs  [][]int32 `json:"input_ids"`
		Positions [][2]int  `json:"positions"`
		Shape     []int     `json:"shape"`
		Logits    []float64 `json:"logits"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &exp); err != nil {
		t.Fatal(err)
	}
	tok, err := tokenize.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := jsonLines[train.Filled](t, mustRun(t, "predict", "--model", dir, "--file", writeLines(t, t.TempDir(), "masked.txt", exp.Texts...),
		"--format", "text", "--max-length", "64", "--top-k", "2", "--threads", "1"))
	v := exp.Shape[1]
	seen := make([]int, len(exp.Texts)) // masks per text so far
	for i, p := range exp.Positions {
		r, l := p[0], p[1]
		if exp.InputIDs[r][l] != tok.MaskID() {
			continue
		}
		row := exp.Logits[i*v : (i+1)*v]
		best := 0
		var z float64
		for j, x := range row {
			z += math.Exp(x - row[0])
			if x > row[best] {
				best = j
			}
		}
		want := math.Exp(row[best]-row[0]) / z
		k := seen[r]
		seen[r]++
		if k >= len(out[r].Masks) {
			t.Fatalf("text %d: %d masks filled, want more: %+v", r, len(out[r].Masks), out[r])
		}
		got := out[r].Masks[k][0]
		parts := strings.SplitN(exp.Texts[r], "[MASK]", k+2)
		seq := strings.Join(parts[:k+1], "[MASK]") + got.TokenStr + parts[k+1]
		if got.Token != best || math.Abs(got.Score-want) > 1e-5 || got.Sequence != seq {
			t.Errorf("text %d, mask %d: %+v, want token %d (p %.6f) in %q", r, k, got, best, want, seq)
		}
	}
	for r, f := range out {
		if len(f.Masks) != seen[r] || seen[r] != strings.Count(exp.Texts[r], "[MASK]") {
			t.Errorf("text %d: %d masks filled, %d in the reference, %d in the text", r, len(f.Masks), seen[r], strings.Count(exp.Texts[r], "[MASK]"))
		}
	}
}
