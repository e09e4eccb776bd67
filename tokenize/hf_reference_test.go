package tokenize

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// refCase is one encoding by Hugging Face tokenizers (the Rust library, v0.23, via
// its npm binding), made by testdata/make_testdata.py.
type refCase struct {
	Tokenizer string     `json:"tokenizer"`
	Kind      string     `json:"kind"` // single, pair, words
	Text      string     `json:"text"`
	Pair      string     `json:"pair"`
	Words     []string   `json:"words"`
	MaxLength int        `json:"max_length"`
	IDs       []int32    `json:"ids"`
	Tokens    []string   `json:"tokens"`
	Offsets   [][2]int32 `json:"offsets"`
	TypeIDs   []int32    `json:"type_ids"`
	WordIDs   []int32    `json:"word_ids"`
}

func referenceCases(t *testing.T) map[string][]refCase {
	t.Helper()
	f, err := os.Open("testdata/reference.jsonl.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]refCase{}
	sc := bufio.NewScanner(zr)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var c refCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatal(err)
		}
		out[c.Tokenizer] = append(out[c.Tokenizer], c)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func (c *refCase) encode(tk *Tokenizer) (Encoding, error) {
	switch c.Kind {
	case "pair":
		return tk.EncodePair(c.Text, c.Pair, c.MaxLength)
	case "words":
		return tk.EncodeWords(c.Words, nil, c.MaxLength)
	}
	return tk.Encode(c.Text, c.MaxLength)
}

// check compares our encoding with HF's: ids, offsets, token types, word ids.
func (c *refCase) check(tk *Tokenizer) error {
	e, err := c.encode(tk)
	if err != nil {
		return err
	}
	offsets := make([][2]int32, e.Len())
	tokens := make([]string, e.Len())
	for i, o := range e.Offsets {
		offsets[i] = [2]int32{o.Start, o.End}
		tokens[i] = tk.Vocab().Token(int(e.InputIDs[i]))
	}
	if c.Kind == "pair" && c.MaxLength > 0 && oddBudgetSwap(e, c) {
		return nil
	}
	switch {
	case !slices.Equal(e.InputIDs, c.IDs):
		return fmt.Errorf("ids\n ours %v %q\n   hf %v %q", e.InputIDs, tokens, c.IDs, c.Tokens)
	case !slices.Equal(offsets, c.Offsets):
		return fmt.Errorf("offsets of %q\n ours %v\n   hf %v", c.Tokens, offsets, c.Offsets)
	case !slices.Equal(e.TokenTypeIDs, c.TypeIDs):
		return fmt.Errorf("type ids\n ours %v\n   hf %v", e.TokenTypeIDs, c.TypeIDs)
	case !slices.Equal(e.WordIDs, c.WordIDs):
		return fmt.Errorf("word ids of %q\n ours %v\n   hf %v", c.Tokens, e.WordIDs, c.WordIDs)
	}
	return nil
}

// oddBudgetSwap accepts the one truncation where HF 0.23 departs from its own
// LongestFirst arithmetic: when both texts are longer than half an odd budget, the
// longer text keeps the odd token (HF <= 0.22, transformers' Python tokenizers and
// longestFirst); HF 0.23, whose encoder stops early on long input (#1990), gives it
// to the shorter one. Everything else must be equal.
func oddBudgetSwap(e Encoding, c *refCase) bool {
	ours, hf := slices.Index(e.TokenTypeIDs, 1), slices.Index(c.TypeIDs, 1) // where B starts
	if len(e.InputIDs) != len(c.IDs) || ours < 0 || hf < 0 || ours-hf != 1 && hf-ours != 1 {
		return false
	}
	a, b := min(ours, hf)-1, len(e.InputIDs)-max(ours, hf)-1 // tokens of A and B both keep, [SEP] included
	return slices.Equal(e.InputIDs[:a], c.IDs[:a]) && slices.Equal(e.InputIDs[ours:ours+b], c.IDs[hf:hf+b])
}

func copyFiles(t *testing.T, from string, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(from, n))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, dir, n, string(data))
	}
	return dir
}

// saveLoad loads dir, saves the tokenizer and loads back only the saved files named.
func saveLoad(t *testing.T, dir string, keep ...string) (*Tokenizer, error) {
	tk, err := Load(dir)
	if err != nil {
		return nil, err
	}
	saved := t.TempDir()
	if err := tk.Save(saved); err != nil {
		return nil, err
	}
	return Load(copyFiles(t, saved, keep...))
}

// TestMatchesHuggingFace is the licence for the BPE and Unigram tokenizers: on
// held-out real text (SST-2, WNUT-17 tweets, SQuAD paragraphs with accents and CJK,
// TREC) and edge cases (emoji, whitespace runs, special tokens in text, control
// characters) ids, offsets, token types and word ids equal HF tokenizers' — single
// texts, pairs, truncation to a max length and pre-split words — whichever files
// the tokenizer is loaded from.
func TestMatchesHuggingFace(t *testing.T) {
	cases := referenceCases(t)
	load := func(name string, f func() (*Tokenizer, error)) *Tokenizer {
		tk, err := f()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return tk
	}
	roberta := "testdata/roberta-tiny"
	albert := "testdata/albert-tiny"
	mpnet := "testdata/mpnet"
	apsDir := copyFiles(t, roberta, "tokenizer.json")
	writeFile(t, apsDir, "tokenizer_config.json", `{"add_prefix_space": true}`)
	apsLegacy := copyFiles(t, roberta, "vocab.json", "merges.txt")
	writeFile(t, apsLegacy, "tokenizer_config.json", `{"add_prefix_space": true}`)
	for _, c := range []struct {
		ref, name string
		tk        *Tokenizer
	}{
		{"roberta", "roberta tokenizer.json", load("roberta", func() (*Tokenizer, error) { return Load(roberta) })},
		{"roberta", "roberta vocab.json+merges.txt", load("roberta legacy", func() (*Tokenizer, error) {
			return Load(copyFiles(t, roberta, "vocab.json", "merges.txt"))
		})},
		{"roberta-aps", "roberta add_prefix_space tokenizer.json", load("aps", func() (*Tokenizer, error) { return Load(apsDir) })},
		{"roberta-aps", "roberta add_prefix_space vocab.json+merges.txt", load("aps legacy", func() (*Tokenizer, error) { return Load(apsLegacy) })},
		{"albert", "albert tokenizer.json", load("albert", func() (*Tokenizer, error) { return FromTokenizerJSON(albert + "/tokenizer.json") })},
		{"albert", "albert spiece.model", load("albert legacy", func() (*Tokenizer, error) {
			return Load(copyFiles(t, albert, "spiece.model"))
		})},
		{"mpnet", "mpnet tokenizer.json", load("mpnet", func() (*Tokenizer, error) { return FromTokenizerJSON(mpnet + "/tokenizer.json") })},
		{"mpnet", "mpnet vocab.txt+tokenizer_config.json", load("mpnet legacy", func() (*Tokenizer, error) {
			return Load(copyFiles(t, mpnet, "vocab.txt", "tokenizer_config.json"))
		})},
		{"mpnet", "mpnet tokenizer.json as Save writes it", load("mpnet saved", func() (*Tokenizer, error) {
			return saveLoad(t, mpnet, "tokenizer.json")
		})},
		{"mpnet", "mpnet vocab.txt+tokenizer_config.json as Save writes them", load("mpnet saved legacy", func() (*Tokenizer, error) {
			return saveLoad(t, mpnet, "vocab.txt", "tokenizer_config.json")
		})},
	} {
		refs := cases[c.ref]
		if len(refs) < 300 {
			t.Fatalf("%s: only %d reference cases", c.ref, len(refs))
		}
		failed := 0
		for i := range refs {
			if err := refs[i].check(c.tk); err != nil {
				failed++
				if failed <= 5 {
					t.Errorf("%s: %s %q %q %q: %v", c.name, refs[i].Kind, refs[i].Text, refs[i].Pair, refs[i].Words, err)
				}
			}
		}
		if failed > 0 {
			t.Errorf("%s: %d of %d cases differ", c.name, failed, len(refs))
		} else {
			t.Logf("%s: %d cases equal HF's", c.name, len(refs))
		}
	}
}

// TestMatchesRealModels compares with the real roberta-base and albert-base-v2
// tokenizers on the same cases, when testdata/make_reference.py has written them
// into testdata/real (it needs transformers and the hub).
func TestMatchesRealModels(t *testing.T) {
	for _, model := range []string{"roberta-base", "albert-base-v2"} {
		dir := filepath.Join("testdata", "real", model)
		f, err := os.Open(filepath.Join(dir, "reference.jsonl.gz"))
		if err != nil {
			t.Skipf("%s: no reference from the real tokenizer (run testdata/make_reference.py): %v", model, err)
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		tk, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(zr)
		sc.Buffer(nil, 1<<24)
		n, failed := 0, 0
		for sc.Scan() {
			var c refCase
			if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
				t.Fatal(err)
			}
			n++
			if err := c.check(tk); err != nil {
				if failed++; failed <= 5 {
					t.Errorf("%s: %s %q %q %q: %v", model, c.Kind, c.Text, c.Pair, c.Words, err)
				}
			}
		}
		f.Close()
		if failed > 0 {
			t.Errorf("%s: %d of %d cases differ", model, failed, n)
		}
	}
}
