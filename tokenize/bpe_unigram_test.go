package tokenize

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func tinyRoberta(t testing.TB) *Tokenizer {
	t.Helper()
	tk, err := Load("testdata/roberta-tiny")
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func tinyAlbert(t testing.TB) *Tokenizer {
	t.Helper()
	tk, err := Load("testdata/albert-tiny")
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func tinyDeberta(t testing.TB) *Tokenizer {
	t.Helper()
	tk, err := Load("testdata/deberta-tiny")
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func TestFamilies(t *testing.T) {
	for _, c := range []struct {
		tk                  *Tokenizer
		algo                string
		cls, sep, pad, mask string
		single, pair        string
	}{
		{tinyRoberta(t), BPE, "<s>", "</s>", "<pad>", "<mask>", "<s>:0 $A:0 </s>:0", "<s>:0 $A:0 </s>:0 </s>:0 $B:0 </s>:0"},
		{tinyAlbert(t), Unigram, "[CLS]", "[SEP]", "<pad>", "[MASK]", "[CLS]:0 $A:0 [SEP]:0", "[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1"},
		{bert(t, true), WordPiece, "[CLS]", "[SEP]", "[PAD]", "[MASK]", "[CLS]:0 $A:0 [SEP]:0", "[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1"},
	} {
		v := c.tk.Vocab()
		got := []string{c.tk.Algorithm(), v.Token(int(c.tk.ClsID())), v.Token(int(c.tk.SepID())), v.Token(int(c.tk.PadID())), v.Token(int(c.tk.MaskID()))}
		if want := []string{c.algo, c.cls, c.sep, c.pad, c.mask}; !slices.Equal(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
		if got, want := c.tk.post.String(v), c.single+" | "+c.pair; got != want {
			t.Errorf("%s template %q, want %q", c.algo, got, want)
		}
	}
}

// Save writes what Load and HF read back: the same encodings from tokenizer.json,
// and from the slow tokenizers' files alone (vocab.json and merges.txt; spiece.model).
func TestSaveRoundTripBPEUnigram(t *testing.T) {
	texts := append(sst2Sentences(t, "test.tsv")[:200], EDGE...)
	apsDir := copyFiles(t, "testdata/roberta-tiny", "tokenizer.json")
	writeFile(t, apsDir, "tokenizer_config.json", `{"add_prefix_space": true}`)
	aps, err := Load(apsDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		tk     *Tokenizer
		files  []string
		legacy []string
	}{
		{"roberta", tinyRoberta(t), []string{"merges.txt", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.json"}, []string{"vocab.json", "merges.txt", "tokenizer_config.json"}},
		{"roberta add_prefix_space", aps, []string{"merges.txt", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.json"}, []string{"vocab.json", "merges.txt", "tokenizer_config.json"}},
		{"albert", tinyAlbert(t), []string{"special_tokens_map.json", "spiece.model", "tokenizer.json", "tokenizer_config.json"}, []string{"spiece.model", "tokenizer_config.json"}},
		{"deberta", tinyDeberta(t), []string{"special_tokens_map.json", "spm.model", "tokenizer.json", "tokenizer_config.json"}, []string{"spm.model", "tokenizer_config.json"}},
	} {
		dir := filepath.Join(t.TempDir(), "saved")
		if err := c.tk.Save(dir); err != nil {
			t.Fatal(err)
		}
		entries, _ := os.ReadDir(dir)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if !slices.Equal(names, c.files) {
			t.Errorf("%s: saved %v, want %v", c.name, names, c.files)
		}
		for _, from := range []string{"tokenizer.json", "slow files"} {
			src := dir
			if from != "tokenizer.json" {
				src = copyFiles(t, dir, c.legacy...)
			}
			back, err := Load(src)
			if err != nil {
				t.Fatalf("%s from %s: %v", c.name, from, err)
			}
			if back.Algorithm() != c.tk.Algorithm() || back.Config() != c.tk.Config() {
				t.Errorf("%s from %s: %s %+v, want %s %+v", c.name, from, back.Algorithm(), back.Config(), c.tk.Algorithm(), c.tk.Config())
			}
			sameEncodings(t, back, c.tk, texts)
		}
	}
}

// EDGE are texts that stress normalization and offsets.
var EDGE = []string{"", "  Héllo  naïve\tcafé\n", "I ❤️ NY 😀 👨‍👩‍👧", "我爱北京 한국어", "``quoted''  text", "The <mask> sat. [MASK] here", "1,000,000 and 3,5"}

// spm_encode (Google's SentencePiece) and our Unigram agree on the raw model: its
// pieces, scores and precompiled nmt_nfkc rules, Viterbi and unknown handling,
// built as transformers' generic SpmConverter builds it (no ALBERT extras).
func TestUnigramMatchesSentencePiece(t *testing.T) {
	data, err := os.ReadFile("testdata/albert-tiny/spiece.model")
	if err != nil {
		t.Fatal(err)
	}
	sp, err := parseSPModel(data)
	if err != nil {
		t.Fatal(err)
	}
	pieces := make([]string, len(sp.pieces))
	scores := make([]float64, len(sp.pieces))
	for i, p := range sp.pieces {
		pieces[i], scores[i] = p.piece, float64(p.score)
	}
	model, err := newUnigram(pieces, scores, int32(sp.unkID), false)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := newPrecompiled(sp.charsmap)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := newVocabLenient(pieces)
	tk := &Tokenizer{vocab: v, kind: Unigram, post: template{single: []tmplItem{sequence(0, 0)}}, algo: &pipeline{
		added: newAddedVocab(nil, nil),
		norm:  seqNormalizer{pc, strip{false, true}, &replaceNormalizer{spaceRuns: true, content: "▁"}},
		pre:   &metaspace{replacement: "▁", prepend: prependAlways, splitWords: true},
		model: model,
	}}
	tk.scratch.New = func() any { return new(scratch) }
	raw, err := os.ReadFile("testdata/spm_encode.tsv")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	for i, line := range lines {
		text, idsText, _ := strings.Cut(line, "\t")
		var want []int32
		for _, f := range strings.Fields(idsText) {
			id, _ := strconv.Atoi(f)
			want = append(want, int32(id))
		}
		e, _ := tk.Encode(text, 0)
		if !slices.Equal(e.InputIDs, want) {
			t.Fatalf("line %d %q:\n ours %v %q\n  spm %v", i+1, text, e.InputIDs, tk.Tokens(text), want)
		}
	}
	t.Logf("%d SST-2 sentences encode as spm_encode does", len(lines))
}

// QA windows work on BPE and Unigram offsets: at most max length tokens, the
// question whole, consecutive windows sharing stride context tokens, and the gold
// answers mapped to tokens and back to text.
func TestQAWindowsBPEUnigram(t *testing.T) {
	const maxLen, stride = 192, 64
	examples := squadDev(t)[:2000]
	for _, tk := range []*Tokenizer{tinyRoberta(t), tinyAlbert(t)} {
		feats, err := tk.EncodeQA(examples, maxLen, stride)
		if err != nil {
			t.Fatal(err)
		}
		pairs, exact, multi := 0, 0, 0
		for fi := range feats {
			f := &feats[fi]
			ex := &examples[f.Example]
			if f.Len() > maxLen || f.InputIDs[0] != tk.ClsID() || f.InputIDs[f.Len()-1] != tk.SepID() || f.ContextEnd != f.Len()-1 {
				t.Fatalf("%s feature %d: malformed", tk.Algorithm(), fi)
			}
			if fi > 0 && feats[fi-1].Example == f.Example {
				multi++
				prev := &feats[fi-1]
				if !slices.Equal(prev.Offsets[prev.ContextEnd-stride:prev.ContextEnd], f.Offsets[f.ContextStart:f.ContextStart+stride]) {
					t.Fatalf("%s: windows %d and %d do not share %d tokens", tk.Algorithm(), fi-1, fi, stride)
				}
			}
			for _, a := range ex.Answers {
				s, e, ok := f.TokenSpan(a.Start, a.Start+len([]rune(a.Text)))
				if !ok {
					continue
				}
				got, _ := f.AnswerText(ex.Context, s, e)
				pairs++
				if squadNormalize(got) == squadNormalize(a.Text) {
					exact++
				}
			}
		}
		em := 100 * float64(exact) / float64(pairs)
		t.Logf("%s: %d features (%d beyond a first window), %d answer-window pairs, exact match %.2f%%", tk.Algorithm(), len(feats), multi, pairs, em)
		if multi == 0 || em < 99 {
			t.Errorf("%s: %d later windows, exact match %.2f%% < 99%%", tk.Algorithm(), multi, em)
		}
	}
}

// NER labels go on the first token of each word with BPE and Unigram too.
func TestEncodeWordsLabelsBPEUnigram(t *testing.T) {
	words := []string{"Héllo", "naïve", "😀", "New", "York", ",", "don't"}
	labels := []int32{1, 2, 3, 4, 5, 6, 7}
	for _, tk := range []*Tokenizer{tinyRoberta(t), tinyAlbert(t)} {
		e, err := tk.EncodeWords(words, labels, 0)
		if err != nil {
			t.Fatal(err)
		}
		starts := WordStarts(&e, len(words))
		for w, at := range starts {
			if at < 0 || e.Labels[at] != labels[w] || e.Offsets[at].Start != 0 {
				t.Fatalf("%s: word %d starts at token %d: label %d, offsets %v", tk.Algorithm(), w, at, e.Labels[at], e.Offsets[at])
			}
		}
		n := 0
		for _, l := range e.Labels {
			if l != IgnoreLabel {
				n++
			}
		}
		if n != len(words) {
			t.Errorf("%s: %d labelled tokens for %d words: %v", tk.Algorithm(), n, len(words), e.Labels)
		}
	}
}

func TestConcurrentEncodeBPEUnigram(t *testing.T) {
	texts := sst2Sentences(t, "test.tsv")
	for _, tk := range []*Tokenizer{tinyRoberta(t), tinyAlbert(t)} {
		want := make([][]int32, len(texts))
		for i, s := range texts {
			e, _ := tk.Encode(s, 0)
			want[i] = e.InputIDs
		}
		fresh := tinyRoberta(t) // an empty word cache, filled by all goroutines at once
		if tk.Algorithm() == Unigram {
			fresh = tinyAlbert(t)
		}
		errs := make(chan string, 4)
		for g := range 4 {
			go func() {
				for k := range texts {
					i := (k*7 + g*101) % len(texts)
					if e, _ := fresh.Encode(texts[i], 0); !slices.Equal(e.InputIDs, want[i]) {
						errs <- texts[i]
						return
					}
				}
				errs <- ""
			}()
		}
		for range 4 {
			if s := <-errs; s != "" {
				t.Errorf("%s: concurrent encoding of %q differs", tk.Algorithm(), s)
			}
		}
	}
}

func TestLoadErrorsBPEUnigram(t *testing.T) {
	roberta, err := os.ReadFile("testdata/roberta-tiny/tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	albert, err := os.ReadFile("testdata/albert-tiny/tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		doc      []byte
		from, to string
		want     string
	}{
		{roberta, `"type": "ByteLevel",
    "add_prefix_space": false`, `"type": "Whitespace",
    "add_prefix_space": false`, `pre_tokenizer.type "Whitespace": not supported`},
		{roberta, `"type": "RobertaProcessing"`, `"type": "Weird"`, `post_processor.type "Weird": not supported`},
		{roberta, `"merges": [
      [
        "Ġ",
        "t"`, `"merges": [
      [
        "Ġ",
        "tzzz"`, `model.merges: merge 1 ("Ġ" "tzzz"): a part is not in the vocabulary`},
		{roberta, `"merges": [`, `"merges": ["a b c", `, `model.merges[0]: "a b c" is not two tokens`},
		{roberta, `"dropout": null`, `"dropout": 0.1`, `model.dropout 0.1: sampling is not supported`},
		{albert, `"type": "NFKD"`, `"type": "NFKC"`, `normalizer.normalizers[2].type "NFKC": not supported`},
		{albert, `"unk_id": 1`, `"unk_id": 99999`, `unk_id 99999 is not in the vocabulary`},
		{albert, `"prepend_scheme": "always"`, `"prepend_scheme": "sometimes"`, `pre_tokenizer.prepend_scheme "sometimes"`},
		{albert, `"Regex": " {2,}"`, `"Regex": " (?!x)"`, `normalizer.normalizers[6].pattern.Regex " (?!x)"`},
		{roberta, `"id": 2260,`, `"id": -1,`, `added_tokens[4]: "<mask>" has a negative id -1`},
		{albert, `"ids": [
          2
        ]`, `"ids": [
          30000
        ]`, `post_processor.special_tokens["[CLS]"].ids: 30000 is not in the vocabulary of 2000 tokens`},
		{albert, `"ids": [
          3
        ]`, `"ids": [
          -1
        ]`, `post_processor.special_tokens["[SEP]"].ids: -1 is not in the vocabulary of 2000 tokens`},
	} {
		doc := string(c.doc)
		if !strings.Contains(doc, c.from) {
			t.Fatalf("fixture lacks %q", c.from)
		}
		path := writeFile(t, t.TempDir(), "tokenizer.json", strings.Replace(doc, c.from, c.to, 1))
		if _, err := FromTokenizerJSON(path); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "tokenizer.json") {
			t.Errorf("%s -> %s: error %v, want %q", c.from, c.to, err, c.want)
		}
	}
	dir := t.TempDir()
	writeFile(t, dir, "vocab.json", `{"a": 0}`)
	writeFile(t, dir, "merges.txt", "#version: 0.2\na b c\n")
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "merges.txt:2:") {
		t.Errorf("bad merges.txt: %v", err)
	}
	writeFile(t, dir, "merges.txt", "#version: 0.2\n\na a\n")
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), `merges.txt:3: merge "a a": "aa" is not in vocab.json`) {
		t.Errorf("merge into a token vocab.json lacks: %v", err)
	}
	writeFile(t, dir, "spiece.model", "\xff\xff")
	os.Remove(filepath.Join(dir, "vocab.json"))
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "spiece.model") {
		t.Errorf("bad spiece.model: %v", err)
	}
}

// A run of letters is one word to byte-level BPE. Its merging rescanned the word
// after every merge, O(n²) (a 50 kB word took a minute); HF's heap of pairs takes
// a fraction of a second, even under the race detector.
func TestBPELongWord(t *testing.T) {
	tk := tinyRoberta(t)
	word := strings.Repeat("therainsinspainfalls", 5000)
	start := time.Now()
	e, err := tk.Encode(word, 0)
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("a word of %d bytes took %v", len(word), d)
	}
	if err != nil {
		t.Fatal(err)
	}
	if n := e.Len(); n < 3 || e.Offsets[1].Start != 0 || int(e.Offsets[n-2].End) != len(word) {
		t.Fatalf("%d tokens, offsets from %v to %v", n, e.Offsets[1], e.Offsets[n-2])
	}
}
