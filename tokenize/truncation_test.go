package tokenize

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Left truncation keeps a text's end, head+tail its start and end; offsets still point
// at the kept tokens' runes. A pair keeps each text's end with the longest-first counts.
func TestTruncationSides(t *testing.T) {
	tk := tiny(t)
	const text = "a b c d e f" // ids 5..10, runes 0, 2, ..., 10
	for _, c := range []struct {
		tr      Truncation
		ids     []int32
		offsets []Span
	}{
		{Truncation{}, ids32(2, 5, 6, 7, 8, 3), []Span{{}, {0, 1}, {2, 3}, {4, 5}, {6, 7}, {}}},
		{Truncation{Left: true}, ids32(2, 7, 8, 9, 10, 3), []Span{{}, {4, 5}, {6, 7}, {8, 9}, {10, 11}, {}}},
		{Truncation{Left: true, Head: 1}, ids32(2, 5, 8, 9, 10, 3), []Span{{}, {0, 1}, {6, 7}, {8, 9}, {10, 11}, {}}},
		{Truncation{Left: true, Head: 4}, ids32(2, 5, 6, 7, 8, 3), nil},
		{Truncation{Left: true, Head: 9}, ids32(2, 5, 6, 7, 8, 3), nil}, // more than fits: the head alone
	} {
		if err := tk.SetTruncation(c.tr); err != nil {
			t.Fatal(err)
		}
		e, err := tk.Encode(text, 6)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(e.InputIDs, c.ids) || c.offsets != nil && !slices.Equal(e.Offsets, c.offsets) {
			t.Errorf("%+v: ids %v offsets %v, want %v %v", c.tr, e.InputIDs, e.Offsets, c.ids, c.offsets)
		}
		if e, _ := tk.Encode("a b", 6); !slices.Equal(e.InputIDs, ids32(2, 5, 6, 3)) {
			t.Errorf("%+v: a short text lost tokens: %v", c.tr, e.InputIDs)
		}
	}
	tk.SetTruncation(Truncation{Left: true, Head: 2})
	e, err := tk.EncodePair("a b c d e f", "b c d", 9) // 6 + 3 over 6: 3 + 3
	if err != nil {
		t.Fatal(err)
	}
	if want := ids32(2, 8, 9, 10, 3, 6, 7, 8, 3); !slices.Equal(e.InputIDs, want) {
		t.Errorf("pair %v, want %v", e.InputIDs, want)
	}
	for _, bad := range []Truncation{{Head: 2}, {Left: true, Head: -1}} {
		if err := tk.SetTruncation(bad); err == nil {
			t.Errorf("%+v taken", bad)
		}
	}
}

// tokenizer_config.json records the truncation as transformers does (truncation_side)
// plus the head; Load reads it back, and names a bad value's file and field.
func TestTruncationSavedAndLoaded(t *testing.T) {
	for _, tk := range []*Tokenizer{tiny(t), tinyRoberta(t)} {
		want := Truncation{Left: true, Head: 3}
		if err := tk.SetTruncation(want); err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if err := tk.Save(dir); err != nil {
			t.Fatal(err)
		}
		cfg, _ := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
		if !strings.Contains(string(cfg), `"truncation_side": "left"`) || !strings.Contains(string(cfg), `"bertnode_truncation_head": 3`) {
			t.Errorf("%s tokenizer_config.json:\n%s", tk.Algorithm(), cfg)
		}
		back, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		if back.Truncation() != want {
			t.Errorf("%s: loaded %+v, want %+v", tk.Algorithm(), back.Truncation(), want)
		}
	}
	dir := t.TempDir()
	if err := tiny(t).Save(dir); err != nil {
		t.Fatal(err)
	}
	if back, err := Load(dir); err != nil || back.Truncation() != (Truncation{}) {
		t.Errorf("no truncation saved: %+v, %v", back, err)
	}
	for cfg, want := range map[string]string{
		`{"truncation_side": "middle"}`:   `tokenizer_config.json: truncation_side: "middle": want left or right`,
		`{"bertnode_truncation_head": 3}`: "bertnode_truncation_head: 3: want a positive count with truncation_side left",
	} {
		os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(cfg), 0o644)
		if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", cfg, err, want)
		}
	}
}
