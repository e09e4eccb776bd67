package augment

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func seeded(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0)) }

func shareSynset(wn *WordNet, word, syn string) bool {
	for _, lemmas := range wn.Synsets(word) {
		for _, l := range lemmas {
			if strings.EqualFold(l, syn) {
				return true
			}
		}
	}
	return false
}

const sentence = "The funny boy was watching a movie, and the dog ran quickly!"

func TestTokenizeKeepsPunctuation(t *testing.T) {
	toks := tokenize("  \"Hello,  world!\" 42 don't\t(x)")
	want := []token{{`"`, "Hello", ","}, {"", "world", `!"`}, {pre: "42"}, {"", "don't", ""}, {"(", "x", ")"}}
	if !reflect.DeepEqual(toks, want) {
		t.Fatalf("tokens %q, want %q", toks, want)
	}
	if got := join(toks); got != `"Hello, world!" 42 don't (x)` {
		t.Fatalf("join %q", got)
	}
}

func TestSynonymReplacementOnFixture(t *testing.T) {
	a, err := New(Options{WordNetDir: fixture(t), AlphaSR: 0.5, NumAug: 20})
	if err != nil {
		t.Fatal(err)
	}
	orig := tokenize(sentence)
	for seed := range uint64(20) {
		got := a.replaceSynonyms(orig, 3, seeded(seed))
		changed := 0
		for i, tk := range got {
			o := orig[i]
			if tk == o {
				continue
			}
			changed++
			if stopWords[strings.ToLower(o.core)] {
				t.Fatalf("seed %d replaced stop word %q", seed, o.core)
			}
			if tk.pre != o.pre || tk.post != o.post {
				t.Fatalf("seed %d lost punctuation: %q -> %q", seed, o, tk)
			}
			if !shareSynset(a.wn, o.core, tk.core) {
				t.Fatalf("seed %d: %q is not in a synset of %q", seed, tk.core, o.core)
			}
			if o.core[0] >= 'A' && o.core[0] <= 'Z' && !(tk.core[0] >= 'A' && tk.core[0] <= 'Z') {
				t.Fatalf("seed %d: capital of %q lost in %q", seed, o.core, tk.core)
			}
		}
		// funny, boy, watching, movie, dog, ran, quickly all have synonyms.
		if changed != 3 {
			t.Fatalf("seed %d changed %d words, want 3: %s", seed, changed, join(got))
		}
	}
	out := a.Augment(sentence, seeded(1))
	if len(out) == 0 || len(out) > 20 {
		t.Fatalf("%d sentences", len(out))
	}
	for _, s := range out {
		if s == sentence {
			t.Fatal("the input came back as an augmentation")
		}
		if !strings.HasPrefix(s, "The ") || !strings.HasSuffix(s, "!") {
			t.Fatalf("stop word or punctuation changed: %q", s)
		}
	}
}

func TestInsertionSwapDeletion(t *testing.T) {
	a, err := New(Options{WordNetDir: fixture(t), AlphaRI: 0.2, NumAug: 1})
	if err != nil {
		t.Fatal(err)
	}
	orig := tokenize(sentence)
	swapped := 0
	for seed := range uint64(20) {
		rng := seeded(seed)
		ins := a.insertSynonyms(orig, 2, rng)
		if len(ins) != len(orig)+2 {
			t.Fatalf("inserted %d words, want 2", len(ins)-len(orig))
		}
		// The sentence is still there in order, and every word added is a
		// synonym of a non-stop word of the result (EDA may pick a word it
		// inserted before).
		j := 0
		for _, tk := range ins {
			if j < len(orig) && tk == orig[j] {
				j++
				continue
			}
			found := false
			for _, o := range ins {
				found = found || (o != tk && !stopWords[strings.ToLower(o.core)] && shareSynset(a.wn, o.core, tk.core))
			}
			if tk.pre != "" || tk.post != "" || !found {
				t.Fatalf("inserted %q is no synonym of a word in %s", tk, join(ins))
			}
		}
		if j != len(orig) {
			t.Fatalf("insertion disturbed the sentence: %s", join(ins))
		}

		sw := swap(orig, 3, rng)
		if !reflect.DeepEqual(sw, orig) {
			swapped++
		}
		got, want := slices.Clone(sw), slices.Clone(orig)
		less := func(x, y token) int { return strings.Compare(x.String(), y.String()) }
		slices.SortFunc(got, less)
		slices.SortFunc(want, less)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("swap changed the words: %s", join(sw))
		}

		del := deleteWords(orig, 0.3, rng)
		j = 0
		for _, tk := range orig {
			if j < len(del) && del[j] == tk {
				j++
			}
		}
		if j != len(del) || len(del) == 0 || len(del) > len(orig) {
			t.Fatalf("deletion is not a non-empty subsequence: %s", join(del))
		}
	}
	if swapped < 15 { // three swaps rarely undo each other
		t.Fatalf("only %d of 20 swaps changed the sentence", swapped)
	}
	if got := deleteWords(orig, 1, seeded(1)); len(got) != 1 || !slices.Contains(orig, got[0]) {
		t.Fatalf("deleting everything kept %q", got)
	}
	one := tokenize("hello")
	if got := deleteWords(one, 1, seeded(1)); !reflect.DeepEqual(got, one) {
		t.Fatalf("one-word sentence became %q", got)
	}
	if got := swap(one, 3, seeded(1)); !reflect.DeepEqual(got, one) {
		t.Fatalf("one-word swap gave %q", got)
	}
}

func TestAugmentIsDeterministic(t *testing.T) {
	opts := DefaultOptions()
	opts.WordNetDir = fixture(t)
	a, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	first := a.Augment(sentence, seeded(7))
	if len(first) != 9 {
		t.Fatalf("%d sentences, want 9: %q", len(first), first)
	}
	if again := a.Augment(sentence, seeded(7)); !reflect.DeepEqual(first, again) {
		t.Fatalf("same seed, different output:\n%q\n%q", first, again)
	}
	if other := a.Augment(sentence, seeded(8)); reflect.DeepEqual(first, other) {
		t.Fatal("different seeds gave identical output")
	}
	seen := map[string]bool{}
	for _, s := range first {
		if seen[s] || s == sentence {
			t.Fatalf("repeated or unchanged sentence %q", s)
		}
		seen[s] = true
	}
	if got := a.Augment("   ", seeded(1)); got != nil {
		t.Fatalf("blank text gave %q", got)
	}
}

// With only swap and deletion on, WordNet is not needed at all.
func TestNoWordNetNeededWithoutSynonyms(t *testing.T) {
	a, err := New(Options{WordNetDir: t.TempDir(), AlphaRS: 0.2, PRD: 0.2, NumAug: 4})
	if err != nil {
		t.Fatal(err)
	}
	if out := a.Augment("one two three four five", seeded(3)); len(out) == 0 {
		t.Fatal("no output")
	}
}

func TestOptionErrors(t *testing.T) {
	for _, c := range []struct {
		opts Options
		want string
	}{
		{Options{AlphaSR: 1.5, NumAug: 1}, "alpha_sr must be in [0, 1]"},
		{Options{PRD: -0.1, NumAug: 1}, "p_rd must be in [0, 1]"},
		{Options{AlphaRS: 0.1}, "num_aug must be at least 1"},
		{Options{NumAug: 3}, "every technique is off"},
	} {
		if _, err := New(c.opts); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.opts, err, c.want)
		}
	}
}

func TestRealWordNetAugmentation(t *testing.T) {
	a := &Augmenter{opts: Options{AlphaSR: 0.3, NumAug: 4}, wn: realWordNet(t)}
	text := "The quick brown fox jumps over the lazy dog near the river bank."
	orig := tokenize(text)
	for seed := range uint64(10) {
		got := a.replaceSynonyms(orig, 3, seeded(seed))
		changed := 0
		for i, tk := range got {
			if tk == orig[i] {
				continue
			}
			changed++
			if stopWords[strings.ToLower(orig[i].core)] || !shareSynset(a.wn, orig[i].core, tk.core) {
				t.Fatalf("seed %d: %q replaced by %q, not a synonym from the same synset", seed, orig[i].core, tk.core)
			}
		}
		if changed != 3 {
			t.Fatalf("seed %d changed %d words, want 3: %s", seed, changed, join(got))
		}
	}
	out := a.Augment(text, seeded(42))
	if len(out) != 4 || !reflect.DeepEqual(out, a.Augment(text, seeded(42))) {
		t.Fatalf("augmentations %q", out)
	}
	t.Logf("%q", out)
}

func BenchmarkAugment(b *testing.B) {
	a := &Augmenter{opts: DefaultOptions(), wn: realWordNet(b)}
	rng := seeded(1)
	b.ReportAllocs()
	for b.Loop() {
		a.Augment("Free entry in 2 a wkly comp to win FA Cup final tkts 21st May 2005. Text FA to 87121 to receive entry question", rng)
	}
}
