package augment

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
)

// writeWordNet writes a WordNet-format database with the given synsets per
// file ("noun", "verb", "adj", "adv"), each synset a list of lemmas, with
// the licence header and byte offsets real data files have.
func writeWordNet(t *testing.T, synsets map[string][][]string, exc map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	ssType := map[string]string{"noun": "n", "verb": "v", "adj": "a", "adv": "r"}
	for _, pos := range posFiles {
		var b strings.Builder
		b.WriteString("  1 This software and database is being provided to you, the LICENSEE, by  \n")
		b.WriteString("  2 Princeton University under the following license.  \n")
		for _, lemmas := range synsets[pos] {
			fmt.Fprintf(&b, "%08d 03 %s %02x", b.Len(), ssType[pos], len(lemmas))
			for _, l := range lemmas {
				fmt.Fprintf(&b, " %s 0", l)
			}
			b.WriteString(" 001 @ 00001740 n 0000 | a gloss; \"an example | with a bar\"  \n")
		}
		if err := os.WriteFile(filepath.Join(dir, "data."+pos), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		if e, ok := exc[pos]; ok {
			os.WriteFile(filepath.Join(dir, pos+".exc"), []byte(e), 0o644)
		}
	}
	return dir
}

func fixture(t *testing.T) string {
	return writeWordNet(t, map[string][][]string{
		"noun": {
			{"movie", "film", "picture", "flick"},
			{"film", "photographic_film"},
			{"dog", "domestic_dog", "Canis_familiaris"},
			{"goose", "fathead"},
			{"boy", "male_child"},
		},
		"verb": {{"watch", "view", "see"}, {"run", "go"}},
		"adj":  {{"good(a)", "full"}, {"funny", "amusing", "comic"}},
		"adv":  {{"quickly", "rapidly"}},
	}, map[string]string{"noun": "geese goose\n", "verb": "ran run\n"})
}

func TestFixtureWordNet(t *testing.T) {
	wn, err := LoadWordNet(fixture(t))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		word string
		want []string
	}{
		{"Movie", []string{"film", "picture", "flick"}},
		{"films", []string{"movie", "picture", "flick", "photographic film"}}, // noun rule s -> ""
		{"geese", []string{"fathead"}},                                        // noun.exc
		{"ran", []string{"go"}},                                               // verb.exc; "run" is its base, not a synonym
		{"watching", []string{"view", "see"}},                                 // verb rule ing -> ""
		{"good", []string{"full"}},                                            // "(a)" marker stripped
		{"dogs", []string{"domestic dog", "Canis familiaris"}},
		{"the", nil},
		{"unknownword", nil},
	}
	for _, c := range cases {
		if got := wn.Synonyms(c.word); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Synonyms(%q) = %q, want %q", c.word, got, c.want)
		}
	}
	if got := wn.Synsets("film"); len(got) != 2 {
		t.Errorf("film is in %d synsets, want 2", len(got))
	}
}

func TestWordNetErrors(t *testing.T) {
	_, err := New(Options{WordNetDir: t.TempDir(), AlphaSR: 0.1, NumAug: 1})
	if err == nil || !strings.Contains(err.Error(), "install the Debian package wordnet-base") || !strings.Contains(err.Error(), "data.noun") {
		t.Fatalf("missing database: %v", err)
	}
	dir := fixture(t)
	os.WriteFile(filepath.Join(dir, "data.verb"), []byte("  1 licence\n00000012 29 v 03 walk 0 | too few words\n"), 0o644)
	_, err = LoadWordNet(dir)
	if want := filepath.Join(dir, "data.verb") + ":2: word count 03, but only 1 words follow"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("corrupt line: %v, want %q", err, want)
	}
	os.WriteFile(filepath.Join(dir, "data.verb"), []byte("xyz 29 v 01 walk 0 000 | bad offset\n"), 0o644)
	if _, err = LoadWordNet(dir); err == nil || !strings.Contains(err.Error(), `data.verb:1: synset offset "xyz"`) {
		t.Fatalf("bad offset: %v", err)
	}
}

var real struct {
	once sync.Once
	wn   *WordNet
	err  error
}

// realWordNet loads the installed WordNet 3.0 once for all tests.
func realWordNet(t testing.TB) *WordNet {
	t.Helper()
	if _, err := os.Stat(filepath.Join(DefaultWordNetDir, "data.noun")); err != nil {
		t.Skipf("WordNet is not installed in %s (Debian package wordnet-base): %v", DefaultWordNetDir, err)
	}
	real.once.Do(func() { real.wn, real.err = LoadWordNet(DefaultWordNetDir) })
	if real.err != nil {
		t.Fatal(real.err)
	}
	return real.wn
}

func TestRealWordNet(t *testing.T) {
	wn := realWordNet(t)
	if n := len(wn.synsets); n != 117659 {
		t.Fatalf("%d synsets, WordNet 3.0 has 117659", n)
	}
	syns := wn.Synonyms("movie")
	for _, want := range []string{"film", "picture", "flick", "motion picture"} {
		if !slices.Contains(syns, want) {
			t.Errorf("synonyms of movie %q lack %q", syns, want)
		}
	}
	if syns := wn.Synonyms("geese"); !slices.Contains(syns, "fathead") {
		t.Errorf("geese (an exception form of goose) has synonyms %q", syns)
	}
}

func BenchmarkLoadWordNet(b *testing.B) {
	realWordNet(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := LoadWordNet(DefaultWordNetDir); err != nil {
			b.Fatal(err)
		}
	}
}
