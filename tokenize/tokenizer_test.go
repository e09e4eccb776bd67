package tokenize

import (
	"slices"
	"strings"
	"testing"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// Expected ids come from Hugging Face: the first cases are quoted from its test
// suites; the others are the output of transformers' BertTokenizer (BasicTokenizer
// + WordpieceTokenizer) on the same vocab files, chosen where the Python and Rust
// tokenizers agree.
var knownIDs = []struct {
	text           string
	uncased, cased []int32
}{
	// transformers' README / quickstart.
	{"Hello, world!", ids32(7592, 1010, 2088, 999), ids32(8667, 117, 1362, 106)},
	// test_clean_text: a soft hyphen (Cf) is removed.
	{"\u00ad", ids32(), ids32()},
	{"Héllo naïve café résumé Ångström", ids32(7592, 15743, 7668, 13746, 17076, 15687),
		ids32(145, 2744, 6643, 9468, 28203, 2707, 20583, 187, 10051, 1818, 2744, 230, 2118, 2050, 26370)},
	{"nai\u0308ve", ids32(15743), ids32(100)}, // decomposed accent
	{"我爱北京天安门", ids32(1855, 100, 1781, 1755, 1811, 1820, 100), ids32(100, 100, 993, 984, 1010, 1016, 100)},
	{"don't stop... (really?!) $5.00 #tag @user «quoted» — “curly”",
		ids32(2123, 1005, 1056, 2644, 1012, 1012, 1012, 1006, 2428, 1029, 999, 1007, 1002, 1019, 1012, 4002, 1001, 6415, 1030, 5310, 1077, 9339, 1090, 1517, 1523, 17546, 1524),
		ids32(1274, 112, 189, 1831, 119, 119, 119, 113, 1541, 136, 106, 114, 109, 126, 119, 3135, 108, 9235, 137, 4795, 208, 9129, 221, 783, 789, 24584, 790)},
	{"unaffable xyzzyqwv", ids32(14477, 20961, 3468, 1060, 2100, 28753, 4160, 2860, 2615),
		ids32(8362, 9823, 8057, 2165, 193, 1183, 18894, 4426, 2246, 1964)},
	// 100 characters are still split into pieces, 101 are one [UNK].
	{strings.Repeat("a", 100) + " ok",
		append(append(ids32(13360), slices.Repeat(ids32(11057), 48)...), 2050, 7929),
		append(append(ids32(170), slices.Repeat(ids32(22118), 49)...), 1161, 21534)},
	{strings.Repeat("a", 101) + " ok", ids32(100, 7929), ids32(100, 21534)},
	// zero-width space (Cf) removed; tab, newline and no-break space split words.
	{"foo\u200bbar tab\tnew\nline a\u00a0b", ids32(29379, 8237, 21628, 2047, 2240, 1037, 1038),
		ids32(175, 5658, 6824, 27629, 1830, 1207, 1413, 170, 171)},
	// uncased NFD turns Hangul syllables into jamo, as HF does.
	{"한국어", ids32(1469, 30006, 30021, 29991, 30014, 30020, 29999, 30008), ids32(100)},
	{"I ❤️ NY 😀", ids32(1045, 100, 6396, 100), ids32(146, 100, 5883, 100)},
	{"İstanbul", ids32(9960), ids32(300, 13946, 27515)},
	// Special tokens in the text are matched whole, even inside words.
	{"[UNK] [CLS]x[SEP]", ids32(100, 101, 1060, 102), ids32(100, 101, 193, 102)},
}

func TestKnownIDs(t *testing.T) {
	for _, lowercase := range []bool{true, false} {
		tk := bert(t, lowercase)
		for _, c := range knownIDs {
			want := c.cased
			if lowercase {
				want = c.uncased
			}
			want = slices.Concat(ids32(tk.ClsID()), want, ids32(tk.SepID()))
			e, err := tk.Encode(c.text, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(e.InputIDs, want) {
				t.Errorf("lowercase=%v %q:\n got %v %q\nwant %v", lowercase, c.text, e.InputIDs, tk.Tokens(c.text), want)
			}
		}
	}
}

// test_offsets_with_special_characters of transformers, bert-base-uncased.
func TestOffsetsMatchTransformers(t *testing.T) {
	tk := bert(t, true)
	e, err := tk.Encode("A, naïve [MASK] AllenNLP sentence.", 0)
	if err != nil {
		t.Fatal(err)
	}
	wantTokens := []string{"[CLS]", "a", ",", "naive", "[MASK]", "allen", "##nl", "##p", "sentence", ".", "[SEP]"}
	wantOffsets := []Span{{0, 0}, {0, 1}, {1, 2}, {3, 8}, {9, 15}, {16, 21}, {21, 23}, {23, 24}, {25, 33}, {33, 34}, {0, 0}}
	var tokens []string
	for _, id := range e.InputIDs {
		tokens = append(tokens, tk.Vocab().Token(int(id)))
	}
	if !slices.Equal(tokens, wantTokens) || !slices.Equal(e.Offsets, wantOffsets) {
		t.Errorf("got %q %v\nwant %q %v", tokens, e.Offsets, wantTokens, wantOffsets)
	}
	if want := ids32(-1, 0, 1, 2, 3, 4, 4, 4, 5, 6, -1); !slices.Equal(e.WordIDs, want) {
		t.Errorf("word ids %v, want %v", e.WordIDs, want)
	}
}

// test_basic_encode of HF tokenizers' BertWordPieceTokenizer, bert-base-uncased.
func TestPairMatchesTokenizers(t *testing.T) {
	tk := bert(t, true)
	e, err := tk.EncodePair("My name is John", "pair", 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := ids32(101, 2026, 2171, 2003, 2198, 102, 3940, 102); !slices.Equal(e.InputIDs, want) {
		t.Errorf("ids %v, want %v", e.InputIDs, want)
	}
	if want := []Span{{0, 0}, {0, 2}, {3, 7}, {8, 10}, {11, 15}, {0, 0}, {0, 4}, {0, 0}}; !slices.Equal(e.Offsets, want) {
		t.Errorf("offsets %v, want %v", e.Offsets, want)
	}
	if want := ids32(0, 0, 0, 0, 0, 0, 1, 1); !slices.Equal(e.TokenTypeIDs, want) {
		t.Errorf("type ids %v, want %v", e.TokenTypeIDs, want)
	}
}

// Every token's offsets must select source text that normalizes to the token: checked
// on all SQuAD dev paragraphs (accents, CJK, symbols), with a whole-string
// normalization that shares no code with the tokenizer's per-rune one.
func TestOffsetsSelectTheirSource(t *testing.T) {
	for _, lowercase := range []bool{true, false} {
		tk := bert(t, lowercase)
		checked := 0
		for _, text := range squadContexts(t) {
			runes := []rune(text)
			e, err := tk.Encode(text, 0)
			if err != nil {
				t.Fatal(err)
			}
			last := Span{}
			for i, id := range e.InputIDs {
				if e.WordIDs[i] < 0 || id == tk.UnkID() {
					continue
				}
				sp := e.Offsets[i]
				if sp.Start < last.Start || sp.Start >= sp.End || int(sp.End) > len(runes) {
					t.Fatalf("token %d of %q: offsets %v after %v", i, text, sp, last)
				}
				last = sp
				src := string(runes[sp.Start:sp.End])
				if lowercase {
					src = strings.ToLower(strings.Map(func(r rune) rune {
						if unicode.Is(unicode.Mn, r) {
							return -1
						}
						return r
					}, norm.NFD.String(src)))
				}
				piece := strings.TrimPrefix(tk.Vocab().Token(int(id)), "##")
				if src != piece {
					t.Fatalf("lowercase=%v token %q at %v selects %q in %q", lowercase, piece, sp, src, text)
				}
				checked++
			}
		}
		t.Logf("lowercase=%v: %d token offsets checked", lowercase, checked)
	}
}

func TestTruncation(t *testing.T) {
	tk := tiny(t)
	e, err := tk.Encode("a b c d e f", 5)
	if err != nil {
		t.Fatal(err)
	}
	if want := ids32(2, 5, 6, 7, 3); !slices.Equal(e.InputIDs, want) {
		t.Errorf("truncated ids %v, want %v", e.InputIDs, want)
	}
	if e, _ = tk.Encode("a b", 2); !slices.Equal(e.InputIDs, ids32(2, 3)) {
		t.Errorf("max length 2: %v", e.InputIDs)
	}
	if e, _ = tk.Encode("a b", 0); !slices.Equal(e.InputIDs, ids32(2, 5, 6, 3)) {
		t.Errorf("no limit: %v", e.InputIDs)
	}
	if e, _ = tk.Encode("", 8); !slices.Equal(e.InputIDs, ids32(2, 3)) {
		t.Errorf("empty text: %v", e.InputIDs)
	}
	for _, bad := range []int{1, -1} {
		if _, err := tk.Encode("a", bad); err == nil {
			t.Errorf("max length %d: no error", bad)
		}
	}
	if _, err := tk.EncodePair("a", "b", 2); err == nil {
		t.Error("pair with max length 2: no error")
	}

	// Pair: the longer text loses tokens first.
	e, err = tk.EncodePair("a b c d e f", "a b", 8)
	if err != nil {
		t.Fatal(err)
	}
	if want := ids32(2, 5, 6, 7, 3, 5, 6, 3); !slices.Equal(e.InputIDs, want) {
		t.Errorf("pair ids %v, want %v", e.InputIDs, want)
	}
	if want := ids32(0, 0, 0, 0, 0, 1, 1, 1); !slices.Equal(e.TokenTypeIDs, want) {
		t.Errorf("pair type ids %v, want %v", e.TokenTypeIDs, want)
	}
}

// The arithmetic of HF's LongestFirst truncation, with cases worked by hand.
func TestLongestFirst(t *testing.T) {
	for _, c := range []struct{ n1, n2, budget, w1, w2 int }{
		{3, 4, 10, 3, 4}, // fits
		{2, 9, 6, 2, 4},  // short one whole, long one gets the rest
		{9, 2, 6, 4, 2},
		{5, 6, 7, 3, 4}, // both cut in half, the odd token to the longer
		{6, 5, 7, 4, 3},
		{5, 5, 6, 3, 3},
		{8, 8, 5, 2, 3},
		{0, 9, 4, 0, 4},
	} {
		if g1, g2 := longestFirst(c.n1, c.n2, c.budget); g1 != c.w1 || g2 != c.w2 {
			t.Errorf("longestFirst(%d, %d, %d) = %d, %d; want %d, %d", c.n1, c.n2, c.budget, g1, g2, c.w1, c.w2)
		}
	}
}

func TestWordPieceSplitsAndFails(t *testing.T) {
	tk := tiny(t)
	if got := tk.Tokens("unaffable, abc. abz"); !slices.Equal(got, []string{"un", "##aff", "##able", ",", "a", "##b", "##c", ".", "[UNK]"}) {
		t.Errorf("tokens %q", got)
	}
	e, _ := tk.Encode("xx abz", 0)
	if want := []Span{{0, 0}, {0, 2}, {3, 6}, {0, 0}}; !slices.Equal(e.Offsets, want) {
		t.Errorf("unknown words should span the whole word: %v", e.Offsets)
	}
}

func TestNewRejectsMissingSpecialToken(t *testing.T) {
	v, err := NewVocab([]string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "a"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(v, BertConfig(true))
	if err == nil || !strings.Contains(err.Error(), `MaskToken "[MASK]"`) {
		t.Errorf("error %v should name MaskToken", err)
	}
}

// A Tokenizer is shared by goroutines: pooled scratch must never leak between calls.
func TestConcurrentEncode(t *testing.T) {
	tk := bert(t, true)
	texts := append(sst2Sentences(t, "test.tsv"), squadContexts(t)[:200]...)
	want := make([][]int32, len(texts))
	for i, s := range texts {
		e, _ := tk.Encode(s, 0)
		want[i] = e.InputIDs
	}
	errs := make(chan string, 4)
	for g := range 4 {
		go func() {
			for k := range texts {
				i := (k*7 + g*101) % len(texts)
				if e, _ := tk.Encode(texts[i], 0); !slices.Equal(e.InputIDs, want[i]) {
					errs <- texts[i]
					return
				}
			}
			errs <- ""
		}()
	}
	for range 4 {
		if s := <-errs; s != "" {
			t.Errorf("concurrent encoding of %q differs", s)
		}
	}
}
