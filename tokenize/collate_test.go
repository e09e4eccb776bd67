package tokenize

import (
	"slices"
	"strings"
	"testing"
)

func TestCollateLongest(t *testing.T) {
	tk := tiny(t)
	e1, _ := tk.Encode("a b c", 0)
	e2, _ := tk.EncodePair("a", "b", 0)
	c, err := NewCollator(PadLongest, 0, tk.PadID())
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Collate([]*Encoding{&e1, &e2})
	if err != nil {
		t.Fatal(err)
	}
	if b.Size != 2 || b.Len != 5 || b.Labels != nil {
		t.Fatalf("batch %dx%d labels %v", b.Size, b.Len, b.Labels)
	}
	checks := []struct {
		name      string
		got, want []int64
	}{
		{"input ids", b.InputIDs, []int64{2, 5, 6, 7, 3, 2, 5, 3, 6, 3}},
		{"type ids", b.TokenTypeIDs, []int64{0, 0, 0, 0, 0, 0, 0, 0, 1, 1}},
		{"mask", b.AttentionMask, []int64{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
	}
	for _, c := range checks {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("%s %v, want %v", c.name, c.got, c.want)
		}
	}

	// A smaller batch reuses the buffers, and what it does not overwrite is padding.
	e3, _ := tk.Encode("a", 0)
	b, err = c.Collate([]*Encoding{&e3, &e1})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{2, 5, 3, 0, 0, 2, 5, 6, 7, 3}; !slices.Equal(b.InputIDs, want) {
		t.Errorf("input ids %v, want %v", b.InputIDs, want)
	}
	if want := []int64{1, 1, 1, 0, 0, 1, 1, 1, 1, 1}; !slices.Equal(b.AttentionMask, want) {
		t.Errorf("mask %v, want %v", b.AttentionMask, want)
	}
}

func TestCollateMaxLengthWithLabels(t *testing.T) {
	tk := tiny(t)
	e1, _ := tk.EncodeWords([]string{"a", "abc"}, ids32(7, 8), 0)
	e2, _ := tk.EncodeWords([]string{"b"}, ids32(9), 0)
	c, err := NewCollator(PadMaxLength, 6, tk.PadID())
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Collate([]*Encoding{&e1, &e2})
	if err != nil {
		t.Fatal(err)
	}
	if b.Len != 6 {
		t.Fatalf("len %d, want 6", b.Len)
	}
	if want := []int64{2, 5, 5, 12, 13, 3, 2, 6, 3, 0, 0, 0}; !slices.Equal(b.InputIDs, want) {
		t.Errorf("input ids %v, want %v", b.InputIDs, want)
	}
	if want := []int64{-100, 7, 8, -100, -100, -100, -100, 9, -100, -100, -100, -100}; !slices.Equal(b.Labels, want) {
		t.Errorf("labels %v, want %v", b.Labels, want)
	}
	if want := []int64{1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0}; !slices.Equal(b.AttentionMask, want) {
		t.Errorf("mask %v, want %v", b.AttentionMask, want)
	}
}

func TestCollateErrors(t *testing.T) {
	tk := tiny(t)
	long, _ := tk.Encode("a b c d e f", 0)
	labelled, _ := tk.EncodeWords([]string{"a"}, ids32(1), 0)
	c, _ := NewCollator(PadLongest, 4, tk.PadID())
	for _, cs := range []struct {
		encs []*Encoding
		want string
	}{
		{nil, "empty batch"},
		{[]*Encoding{&long}, "row 0 has 8 tokens, more than max length 4"},
		{[]*Encoding{&labelled, &long}, "mixes labelled and unlabelled encodings (row 1)"},
	} {
		if _, err := c.Collate(cs.encs); err == nil || !strings.Contains(err.Error(), cs.want) {
			t.Errorf("error %v, want %q", err, cs.want)
		}
	}
	if _, err := NewCollator(PadMaxLength, 0, 0); err == nil {
		t.Error("max_length padding without a length: no error")
	}
	if p, err := ParsePadding("max_length"); err != nil || p != PadMaxLength || p.String() != "max_length" {
		t.Errorf("ParsePadding: %v %v", p, err)
	}
	if _, err := ParsePadding("longst"); err == nil || !strings.Contains(err.Error(), `"longst"`) {
		t.Errorf("ParsePadding typo: %v", err)
	}
}

// Once the buffers have grown, collating allocates nothing.
func TestCollateDoesNotAllocate(t *testing.T) {
	tk := bert(t, true)
	encs := sst2Encodings(t, tk, 32)
	c, _ := NewCollator(PadLongest, 128, tk.PadID())
	if _, err := c.Collate(encs); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(20, func() { c.Collate(encs[:16]) }); n != 0 {
		t.Errorf("%v allocations per Collate", n)
	}
}

func sst2Encodings(tb testing.TB, tk *Tokenizer, n int) []*Encoding {
	var encs []*Encoding
	for _, s := range sst2Sentences(tb, "test.tsv")[:n] {
		e, err := tk.Encode(s, 128)
		if err != nil {
			tb.Fatal(err)
		}
		encs = append(encs, &e)
	}
	return encs
}
