package tokenize

import (
	"slices"
	"testing"
)

// DeBERTa-v2/v3's spm.model loads as transformers' DebertaV2Converter converts it
// (testdata/deberta-tiny is the model fixtures' SentencePiece model, ids checked
// against sentencepiece's there): cased, whitespace stripped at both ends, accents
// kept (no NFKD), [CLS] A [SEP] B [SEP] with types 0 then 1, and [MASK], which the
// model lacks, right after its pieces.
func TestDebertaSPModel(t *testing.T) {
	tk, err := Load("testdata/deberta-tiny")
	if err != nil {
		t.Fatal(err)
	}
	if tk.Algorithm() != Unigram || tk.PadID() != 0 || tk.ClsID() != 1 || tk.SepID() != 2 || tk.UnkID() != 3 || tk.MaskID() != 203 {
		t.Fatalf("%s: pad %d cls %d sep %d unk %d mask %d", tk.Algorithm(), tk.PadID(), tk.ClsID(), tk.SepID(), tk.UnkID(), tk.MaskID())
	}
	enc := func(s string) []int32 {
		e, err := tk.Encode(s, 64)
		if err != nil {
			t.Fatal(err)
		}
		return e.InputIDs
	}
	if a, b := enc("Free entry"), enc("free entry"); slices.Equal(a, b) {
		t.Errorf("cased model: %q and %q encode alike: %v", "Free entry", "free entry", a)
	}
	if a, b := enc("  Free entry \t"), enc("Free entry"); !slices.Equal(a, b) {
		t.Errorf("strip: %v, want %v", a, b)
	}
	if a, b := enc("café"), enc("cafe"); slices.Equal(a, b) {
		t.Errorf("accents kept: café and cafe encode alike: %v", a)
	}
	if ids := enc("a [MASK] b"); !slices.Contains(ids, 203) {
		t.Errorf("[MASK] not found in %v", ids)
	}
	p, err := tk.EncodePair("Free entry", "Ok lar", 64)
	if err != nil {
		t.Fatal(err)
	}
	n := len(enc("Free entry"))
	if p.InputIDs[0] != 1 || p.InputIDs[n-1] != 2 || p.InputIDs[len(p.InputIDs)-1] != 2 || p.TokenTypeIDs[n-1] != 0 || p.TokenTypeIDs[n] != 1 {
		t.Errorf("pair: ids %v types %v", p.InputIDs, p.TokenTypeIDs)
	}
}
