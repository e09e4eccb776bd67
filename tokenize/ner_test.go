package tokenize

import (
	"bufio"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
)

// readCoNLL reads token<TAB>tag lines with blank lines between sentences.
func readCoNLL(tb testing.TB, path string) (words, tags [][]string) {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var w, g []string
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			if len(w) > 0 {
				words, tags = append(words, w), append(tags, g)
				w, g = nil, nil
			}
			continue
		}
		tok, tag, ok := strings.Cut(sc.Text(), "\t")
		if !ok {
			tb.Fatalf("%s:%d: no tab in %q", path, line, sc.Text())
		}
		w, g = append(w, tok), append(g, tag)
	}
	if len(w) > 0 {
		words, tags = append(words, w), append(tags, g)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return words, tags
}

func TestNERAlignmentOnWNUT17(t *testing.T) {
	sentences, tagSeqs := readCoNLL(t, sharedData(t, "wnut17/emerging.test.annotated"))
	labelOf := map[string]int32{}
	for _, seq := range tagSeqs {
		for _, tag := range seq {
			labelOf[tag] = 0
		}
	}
	names := make([]string, 0, len(labelOf))
	for tag := range labelOf {
		names = append(names, tag)
	}
	sort.Strings(names)
	for i, tag := range names {
		labelOf[tag] = int32(i)
	}

	tk := bert(t, false)
	var nWords, nTokens, noToken, unknown int
	for si, words := range sentences {
		labels := make([]int32, len(words))
		for i, tag := range tagSeqs[si] {
			labels[i] = labelOf[tag]
		}
		e, err := tk.EncodeWords(words, labels, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(e.Labels) != e.Len() || e.Labels[0] != IgnoreLabel || e.Labels[e.Len()-1] != IgnoreLabel {
			t.Fatalf("sentence %d: labels %v for %d tokens", si, e.Labels, e.Len())
		}
		starts := WordStarts(&e, len(words))
		counted := 0
		for i := 1; i < e.Len()-1; i++ {
			w := e.WordIDs[i]
			want := int32(IgnoreLabel)
			if starts[w] == i {
				want = labels[w]
			}
			if e.Labels[i] != want {
				t.Fatalf("sentence %d token %d (word %q): label %d, want %d", si, i, words[w], e.Labels[i], want)
			}
			if e.Labels[i] != IgnoreLabel {
				counted++
			}
		}
		// Each word is tokenized alone, with offsets inside the word.
		at := 1
		for wi, word := range words {
			pieces := tk.Tokens(word)
			if (starts[wi] < 0) != (len(pieces) == 0) {
				t.Fatalf("sentence %d word %q: start %d but %d pieces", si, word, starts[wi], len(pieces))
			}
			for _, p := range pieces {
				if tk.Vocab().Token(int(e.InputIDs[at])) != p || e.WordIDs[at] != int32(wi) || int(e.Offsets[at].End) > len([]rune(word)) {
					t.Fatalf("sentence %d word %q: token %d is %q word %d at %v, want piece %q",
						si, word, at, tk.Vocab().Token(int(e.InputIDs[at])), e.WordIDs[at], e.Offsets[at], p)
				}
				if e.InputIDs[at] == tk.UnkID() {
					unknown++
				}
				at++
			}
			if len(pieces) == 0 {
				noToken++
			}
		}
		if at != e.Len()-1 || counted != len(words)-countMissing(starts) {
			t.Fatalf("sentence %d: %d tokens consumed of %d, %d labels for %d words", si, at, e.Len(), counted, len(words))
		}
		nWords += len(words)
		nTokens += e.Len() - 2
	}
	t.Logf("WNUT-17 test: %d sentences, %d words, %d tokens; %d words without a token, %d [UNK]",
		len(sentences), nWords, nTokens, noToken, unknown)
}

func countMissing(starts []int) int {
	n := 0
	for _, s := range starts {
		if s < 0 {
			n++
		}
	}
	return n
}

func TestEncodeWordsByHand(t *testing.T) {
	tk := bert(t, true)
	e, err := tk.EncodeWords([]string{"Hello", "naïve", "\u00ad", "world!"}, ids32(1, 2, 3, 4), 0)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"ids", e.InputIDs, ids32(101, 7592, 15743, 2088, 999, 102)},
		{"labels", e.Labels, ids32(-100, 1, 2, 4, -100, -100)},
		{"word ids", e.WordIDs, ids32(-1, 0, 1, 3, 3, -1)},
		{"offsets", e.Offsets, []Span{{0, 0}, {0, 5}, {0, 5}, {0, 5}, {5, 6}, {0, 0}}},
		{"word starts", WordStarts(&e, 4), []int{1, 2, -1, 3}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}

	// Truncation drops whole trailing words; the kept words keep their labels.
	e, err = tk.EncodeWords([]string{"Hello", "unaffable", "world"}, ids32(1, 2, 3), 4)
	if err != nil {
		t.Fatal(err)
	}
	if want := ids32(-100, 1, 2, -100); !slices.Equal(e.Labels, want) {
		t.Errorf("truncated labels %v, want %v", e.Labels, want)
	}
	if got := WordStarts(&e, 3); !slices.Equal(got, []int{1, 2, -1}) {
		t.Errorf("truncated word starts %v", got)
	}

	if e, err = tk.EncodeWords([]string{"a", "b"}, nil, 0); err != nil || e.Labels != nil {
		t.Errorf("unlabelled: %v %v", e.Labels, err)
	}
	if _, err := tk.EncodeWords([]string{"a", "b"}, ids32(1), 0); err == nil || !strings.Contains(err.Error(), "2 words but 1 labels") {
		t.Errorf("label count mismatch: %v", err)
	}
}
