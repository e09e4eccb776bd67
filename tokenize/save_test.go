package tokenize

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sugarme/tokenizer/pretrained"
)

func TestSaveRoundTrip(t *testing.T) {
	texts := append(sst2Sentences(t, "test.tsv")[:300], "Héllo naïve café [MASK] 我爱北京", "İstanbul Ångström")
	for _, lowercase := range []bool{true, false} {
		orig := bert(t, lowercase)
		dir := filepath.Join(t.TempDir(), "model")
		if err := orig.Save(dir); err != nil {
			t.Fatal(err)
		}
		entries, _ := os.ReadDir(dir)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if want := []string{"special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"}; !slices.Equal(names, want) {
			t.Errorf("saved %v, want %v (and no temporary files)", names, want)
		}

		loads := []struct {
			name string
			load func() (*Tokenizer, error)
		}{
			{"Load(dir)", func() (*Tokenizer, error) { return Load(dir) }},
			{"tokenizer.json", func() (*Tokenizer, error) { return FromTokenizerJSON(filepath.Join(dir, "tokenizer.json")) }},
			{"vocab.txt and configs", func() (*Tokenizer, error) {
				if err := os.Remove(filepath.Join(dir, "tokenizer.json")); err != nil {
					return nil, err
				}
				return Load(dir)
			}},
		}
		for _, l := range loads {
			back, err := l.load()
			if err != nil {
				t.Fatalf("%s: %v", l.name, err)
			}
			if back.Config() != orig.Config() || back.Vocab().Len() != orig.Vocab().Len() {
				t.Errorf("%s: config %+v, want %+v", l.name, back.Config(), orig.Config())
			}
			sameEncodings(t, back, orig, texts)
		}
	}
}

// Another reader of the HF format, sugarme's, loads our tokenizer.json and encodes
// an ASCII sentence as we do (it mishandles accents, see reference_test.go).
func TestSavedTokenizerJSONReadsInSugarme(t *testing.T) {
	tk := bert(t, true)
	dir := t.TempDir()
	if err := tk.Save(dir); err != nil {
		t.Fatal(err)
	}
	ref, err := pretrained.FromFile(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	const text = "My name is John, and [MASK] unaffable!"
	re, err := ref.EncodeSingle(text, true)
	if err != nil {
		t.Fatal(err)
	}
	e, _ := tk.Encode(text, 0)
	if !slices.EqualFunc(e.InputIDs, re.Ids, func(a int32, b int) bool { return int(a) == b }) {
		t.Errorf("sugarme reads %v (%q), we encode %v", re.Ids, re.Tokens, e.InputIDs)
	}
	var config map[string]any
	data, _ := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
	if err := json.Unmarshal(data, &config); err != nil || config["tokenizer_class"] != "BertTokenizer" || config["do_lower_case"] != true {
		t.Errorf("tokenizer_config.json %s: %v", data, err)
	}
}

func TestLoadDirectory(t *testing.T) {
	vocab := "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n<mask>\nhello\n<\n>\nmask\n"
	for _, c := range []struct {
		config string
		want   []string
	}{
		// transformers' defaults: uncased; special_tokens_map.json names the mask.
		{``, []string{"hello", "<mask>"}},
		{`{"do_lower_case": false}`, []string{"[UNK]", "<", "mask", ">"}},
		// Newer transformers write special tokens as objects.
		{`{"do_lower_case": true, "mask_token": {"content": "<mask>", "lstrip": true}}`, []string{"hello", "<mask>"}},
	} {
		dir := t.TempDir()
		writeFile(t, dir, "vocab.txt", vocab)
		if c.config != "" {
			writeFile(t, dir, "tokenizer_config.json", c.config)
		} else {
			writeFile(t, dir, "special_tokens_map.json", `{"mask_token": "<mask>"}`)
		}
		tk, err := Load(dir)
		if err != nil {
			t.Fatalf("%s: %v", c.config, err)
		}
		if got := tk.Tokens("Hello <mask>"); !slices.Equal(got, c.want) {
			t.Errorf("%s: tokens %q, want %q", c.config, got, c.want)
		}
	}

	dir := t.TempDir()
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "no tokenizer.json, vocab.txt, vocab.json with merges.txt, spiece.model or spm.model") {
		t.Errorf("empty directory: %v", err)
	}
	writeFile(t, dir, "vocab.txt", vocab)
	writeFile(t, dir, "tokenizer_config.json", "{\n  \"do_lower_case\": \"yes\"\n}")
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "tokenizer_config.json:2:") {
		t.Errorf("bad tokenizer_config.json: %v", err)
	}
}
