package train

import (
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/tokenize"
)

const sharedData = "../../shared/data"

// sharedFile returns a file of the shared real data, skipping the test without it.
func sharedFile(t *testing.T, name string) string {
	t.Helper()
	p := sharedData + "/" + name
	if _, err := os.Stat(p); err != nil {
		t.Skipf("real data not available (%v): this test needs %s", err, p)
	}
	return p
}

// A tiny random-init BERT trained briefly on WNUT-17 must find entities in the test set
// clearly better than a random tagger drawing tags from the training distribution.
func TestTinyBERTLearnsWNUT17(t *testing.T) {
	runtime.LockOSThread()
	s := Defaults()
	s.Task = "ner"
	s.Train = sharedFile(t, "wnut17/wnut17train.conll")
	s.Eval = sharedFile(t, "wnut17/emerging.test.annotated")
	s.Data = shard.Spec{Format: shard.CoNLL}
	s.Tokenizer = "../data/vocab/bert-base-uncased.vocab.txt"
	s.MaxLength = 64
	s.BatchSize = 32
	s.MaxSteps = 150
	s.LR = 1e-3
	s.Threads = 2
	s.Metric = "f1"
	s.Output = t.TempDir()
	// Nine tokens in ten are O: weighting it down keeps a briefly trained model from
	// predicting nothing but O.
	recs, _, err := ReadAll(s.Data, s.Train)
	if err != nil {
		t.Fatal(err)
	}
	tags, err := shard.CollectLabels(shard.SliceSource(recs))
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range tags.Names() {
		w := float32(1)
		if tag == "O" {
			w = 0.1
		}
		s.ClassWeights = append(s.ClassWeights, w)
	}
	start := time.Now()
	tr, res := trainSpec(t, s)
	ev := res.Final
	rnd := randomTagger(t, tr)
	t.Logf("WNUT-17 test after %d steps in %s: entity F1 %.4f (P %.4f R %.4f, token accuracy %.4f); random tagger F1 %.4f",
		res.Steps, time.Since(start).Round(time.Second), ev.Metrics["f1"], ev.Metrics["precision"], ev.Metrics["recall"], ev.Metrics["accuracy"], rnd)
	t.Logf("\n%s", ev.Report.Table(4))
	if f1 := ev.Metrics["f1"]; f1 < 0.05 || f1 < 5*rnd {
		t.Errorf("entity F1 %.4f is not clearly above the random tagger's %.4f", f1, rnd)
	}
	for _, typ := range []string{"person", "location"} {
		if _, ok := ev.Metrics["f1_"+typ]; !ok {
			t.Errorf("no f1_%s in %v", typ, ev.Names())
		}
	}
	if len(ev.Mistakes) == 0 || len(ev.Mistakes) >= len(tr.Eval) {
		t.Fatalf("%d of %d sentences reported with a wrong entity", len(ev.Mistakes), len(tr.Eval))
	}
	m := ev.Mistakes[0]
	if len(strings.Fields(m.Text)) != len(strings.Fields(m.Gold)) || len(strings.Fields(m.Gold)) != len(strings.Fields(m.Pred)) {
		t.Errorf("mistake's words and tags do not line up: %+v", m)
	}
}

// randomTagger scores tags drawn from the training tag distribution for every word of
// the eval set, through the same scorer: one-hot logits on each word's first token.
func randomTagger(t *testing.T, tr *Trainer) float64 {
	t.Helper()
	names := tr.Labels.Names()
	var draw []int // one entry per training tag occurrence
	for _, id := range tr.order(0) {
		for _, tag := range tr.Records[id].Tags {
			id, _ := tr.Labels.ID(tag)
			draw = append(draw, id)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	sc := tr.task.scorer(names)
	for i := 0; i < len(tr.Eval); i += 64 {
		exs := make([]*Example, 0, 64)
		for j := i; j < min(i+64, len(tr.Eval)); j++ {
			exs = append(exs, &tr.Eval[j])
		}
		b := &model.Batch{B: len(exs)}
		for _, e := range exs {
			b.L = max(b.L, e.Enc.Len())
		}
		logits := make([]float32, b.B*b.L*len(names))
		for r, e := range exs {
			for k := range e.Enc.Len() {
				logits[(r*b.L+k)*len(names)+draw[rng.IntN(len(draw))]] = 1
			}
		}
		if err := sc.add(exs, b, logits); err != nil {
			t.Fatal(err)
		}
	}
	res, err := sc.result()
	if err != nil {
		t.Fatal(err)
	}
	return res.Metrics["f1"]
}

func testTokenizer(t *testing.T) *tokenize.Tokenizer {
	t.Helper()
	tok, err := loadTokenizer("../data/vocab/bert-base-uncased.vocab.txt", true)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// The scorer reads each word's tag from its first sub-token only, predicts O for words
// truncated away, and reports a sentence as a mistake only when its entities differ.
func TestNERScorerReadsFirstSubTokens(t *testing.T) {
	tok := testTokenizer(t)
	recs := []shard.Record{
		{Tokens: []string{"John", "Unaffable", "lives", "in", "New", "York"}, Tags: []string{"B-person", "I-person", "O", "O", "B-location", "I-location"}, Pos: shard.Pos{File: "s.conll", Line: 1}},
		{Tokens: []string{"Paris", "rocks"}, Tags: []string{"B-location", "O"}, Pos: shard.Pos{File: "s.conll", Line: 8}},
		{Tokens: []string{"Bob"}, Tags: []string{"B-unseen"}, Pos: shard.Pos{File: "s.conll", Line: 11}},
	}
	labels, err := shard.NewLabelSet([]string{"B-location", "B-person", "I-location", "I-person", "O"})
	if err != nil {
		t.Fatal(err)
	}
	// [CLS] john una ##ffa ##ble lives in new york [SEP] is 10 tokens: 9 cuts off "york".
	exs, err := nerTask{}.encode(tok, recs, labels, 9)
	if err != nil {
		t.Fatal(err)
	}
	starts := tokenize.WordStarts(&exs[0].Enc, 6)
	if want := []int{1, 2, 5, 6, 7, -1}; !slices.Equal(starts, want) {
		t.Fatalf("setup: word starts %v, want %v", starts, want)
	}
	if got := exs[2].Enc.Labels[1]; got != tokenize.IgnoreLabel {
		t.Errorf("a tag the labels lack: token label %d, want %d", got, tokenize.IgnoreLabel)
	}
	names := labels.Names()
	b := &model.Batch{B: 3, L: exs[0].Enc.Len()}
	logits := make([]float32, b.B*b.L*len(names))
	set := func(r, tokIdx int, tag string) {
		row := logits[(r*b.L+tokIdx)*len(names):][:len(names)]
		clear(row)
		id, _ := labels.ID(tag)
		row[id] = 5
	}
	for r, e := range exs {
		for k := range e.Enc.Len() {
			set(r, k, "B-location") // what every token but a word's first says
		}
	}
	// Sentence 1: the person right, the location cut short by the truncation.
	for w, tag := range []string{"B-person", "I-person", "O", "O", "B-location"} {
		set(0, starts[w], tag)
	}
	// Sentence 2: I-location after O is the same entity as B-location to seqeval.
	set(1, 1, "I-location")
	set(1, 2, "O")
	// Sentence 3: the model cannot predict a type it was not trained on.
	set(2, 1, "O")

	sc := nerTask{}.scorer(names)
	ptrs := []*Example{&exs[0], &exs[1], &exs[2]}
	if err := sc.add(ptrs, b, logits); err != nil {
		t.Fatal(err)
	}
	res, err := sc.result()
	if err != nil {
		t.Fatal(err)
	}
	// Gold: person, location, location, unseen; predicted: person, location (short),
	// location. Right: person and Paris.
	want := map[string]float64{"precision": 2.0 / 3, "recall": 2.0 / 4, "f1": 2 * (2.0 / 3) * 0.5 / (2.0/3 + 0.5),
		"accuracy": 6.0 / 9, "f1_person": 1, "f1_location": 2 * 0.5 * 0.5 / (0.5 + 0.5), "f1_unseen": 0}
	for k, w := range want {
		if got, ok := res.Metrics[k]; !ok || math.Abs(got-w) > 1e-9 {
			t.Errorf("%s = %v, want %v", k, got, w)
		}
	}
	if len(res.Mistakes) != 2 || res.Mistakes[0].Source != "s.conll:1" || res.Mistakes[1].Source != "s.conll:11" {
		t.Fatalf("mistakes: %+v", res.Mistakes)
	}
	m := res.Mistakes[0]
	if m.Text != "John Unaffable lives in New York" || m.Gold != "B-person I-person O O B-location I-location" ||
		m.Pred != "B-person I-person O O B-location O" {
		t.Errorf("mistake: %+v", m)
	}
	if m.Confidence <= 0 || m.Confidence >= 1 {
		t.Errorf("mistake confidence %v", m.Confidence)
	}
}

func TestNEREncodeErrorsNameTheRecord(t *testing.T) {
	tok := testTokenizer(t)
	labels, _ := shard.NewLabelSet([]string{"O"})
	for name, rec := range map[string]shard.Record{
		`"X-thing"`: {Tokens: []string{"a", "b"}, Tags: []string{"O", "X-thing"}},
		"2 tags":    {Tokens: []string{"a"}, Tags: []string{"O", "O"}},
		"no tokens": {Text: "a classification record"},
	} {
		rec.Pos = shard.Pos{File: "bad.conll", Line: 7}
		_, err := nerTask{}.encode(tok, []shard.Record{rec}, labels, 16)
		if err == nil || !strings.Contains(err.Error(), "bad.conll:7: ") || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

// BenchmarkNERScorer is the scoring of one evaluation batch: 32 sentences of 20 words,
// 13 tags, random logits leaning to O as a trained model's do, so that most sentences
// are right and some are mistakes.
func BenchmarkNERScorer(b *testing.B) {
	tok, err := loadTokenizer("../data/vocab/bert-base-uncased.vocab.txt", true)
	if err != nil {
		b.Fatal(err)
	}
	names := []string{"B-corporation", "B-creative-work", "B-group", "B-location", "B-person", "B-product",
		"I-corporation", "I-creative-work", "I-group", "I-location", "I-person", "I-product", "O"}
	labels, _ := shard.NewLabelSet(names)
	rng := rand.New(rand.NewPCG(1, 2))
	recs := make([]shard.Record, 32)
	for i := range recs {
		for range 20 {
			recs[i].Tokens = append(recs[i].Tokens, "unaffable")
			recs[i].Tags = append(recs[i].Tags, "O")
		}
	}
	exs, err := nerTask{}.encode(tok, recs, labels, 128)
	if err != nil {
		b.Fatal(err)
	}
	ptrs := make([]*Example, len(exs))
	for i := range exs {
		ptrs[i] = &exs[i]
	}
	batch := &model.Batch{B: len(exs), L: exs[0].Enc.Len()}
	logits := make([]float32, batch.B*batch.L*len(names))
	for i := range logits {
		logits[i] = float32(rng.NormFloat64())
		if i%len(names) == len(names)-1 {
			logits[i] += 4.5
		}
	}
	sc := nerTask{}.scorer(names)
	b.ReportAllocs()
	for b.Loop() {
		if err := sc.add(ptrs, batch, logits); err != nil {
			b.Fatal(err)
		}
	}
}
