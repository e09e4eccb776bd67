package tokenize

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// sharedDataPath is the path of a file of the real data next to the repository
// (../shared/data from its root).
func sharedDataPath(rel string) string {
	return filepath.Join("..", "..", "shared", "data", rel)
}

// sharedData is sharedDataPath for tests that need the file: they skip when it is absent.
func sharedData(tb testing.TB, rel string) string {
	tb.Helper()
	p := sharedDataPath(rel)
	if _, err := os.Stat(p); err != nil {
		tb.Skipf("real data not available: %v", err)
	}
	return p
}

var loaded sync.Map // vocab path -> *Tokenizer

// bert returns the tokenizer of bert-base-uncased (lowercase) or bert-base-cased.
func bert(tb testing.TB, lowercase bool) *Tokenizer {
	tb.Helper()
	path := sharedData(tb, "vocab/bert-base-cased.vocab.txt")
	if lowercase {
		path = sharedData(tb, "vocab/bert-base-uncased.vocab.txt")
	}
	if t, ok := loaded.Load(path); ok {
		return t.(*Tokenizer)
	}
	t, err := FromVocabFile(path, lowercase)
	if err != nil {
		tb.Fatal(err)
	}
	loaded.Store(path, t)
	return t
}

// sst2Sentences reads the sentence column of an SST-2 TSV file.
func sst2Sentences(tb testing.TB, name string) []string {
	tb.Helper()
	f, err := os.Open(sharedData(tb, "sst2/"+name))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		if line == 1 {
			continue // header
		}
		sentence, _, ok := strings.Cut(sc.Text(), "\t")
		if !ok {
			tb.Fatalf("%s:%d: no tab", name, line)
		}
		out = append(out, sentence)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

type squadFile struct {
	Data []struct {
		Paragraphs []struct {
			Context string `json:"context"`
			QAs     []struct {
				ID       string `json:"id"`
				Question string `json:"question"`
				Answers  []struct {
					Text  string `json:"text"`
					Start int    `json:"answer_start"`
				} `json:"answers"`
			} `json:"qas"`
		} `json:"paragraphs"`
	} `json:"data"`
}

var squadOnce = sync.OnceValues(func() (squadFile, error) {
	var sq squadFile
	data, err := os.ReadFile(sharedDataPath("squad_v1.1/dev-v1.1.json"))
	if err == nil {
		err = json.Unmarshal(data, &sq)
	}
	return sq, err
})

// squadDev parses SQuAD v1.1 dev into QA examples.
func squadDev(tb testing.TB) []QAExample {
	tb.Helper()
	sharedData(tb, "squad_v1.1/dev-v1.1.json")
	sq, err := squadOnce()
	if err != nil {
		tb.Fatal(err)
	}
	var out []QAExample
	for _, art := range sq.Data {
		for _, p := range art.Paragraphs {
			for _, q := range p.QAs {
				ex := QAExample{ID: q.ID, Question: q.Question, Context: p.Context}
				for _, a := range q.Answers {
					ex.Answers = append(ex.Answers, Answer{Text: a.Text, Start: a.Start})
				}
				out = append(out, ex)
			}
		}
	}
	return out
}

// squadContexts returns each distinct SQuAD dev paragraph once.
func squadContexts(tb testing.TB) []string {
	var out []string
	for i, ex := range squadDev(tb) {
		if i == 0 || ex.Context != out[len(out)-1] {
			out = append(out, ex.Context)
		}
	}
	return out
}

// tiny is a tokenizer over a hand-made vocabulary, for tests that need exact control.
func tiny(tb testing.TB) *Tokenizer {
	tb.Helper()
	v, err := NewVocab([]string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
		"a", "b", "c", "d", "e", "f", "##a", "##b", "##c", "un", "##aff", "##able", ",", "."})
	if err != nil {
		tb.Fatal(err)
	}
	t, err := New(v, BertConfig(true))
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

func ids32(xs ...int32) []int32 { return xs }
