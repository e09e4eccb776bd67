package tokenize

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// fuzzTokenizers are the tokenizers the encoding fuzz tests run: one of each family
// from the repository's fixtures, and BERT's real vocabularies when the shared data
// is there.
func fuzzTokenizers(tb testing.TB) []*Tokenizer {
	tks := []*Tokenizer{tiny(tb), tinyRoberta(tb), tinyAlbert(tb)}
	if _, err := os.Stat(sharedDataPath("vocab/bert-base-uncased.vocab.txt")); err == nil {
		tks = append(tks, bert(tb, true), bert(tb, false))
	}
	return tks
}

// fuzzTexts are seeds that stress normalization, special tokens and offsets.
var fuzzTexts = append([]string{"Hello, world!", "unaffable [MASK] <mask> [CLS]x[SEP] <s></s>",
	"f\xffo\xc3 \xe2\x82", "İstanbul Ⅻ ﬁ ｶﾞ \u00ad\u200b", strings.Repeat("a", 101) + " ok", "a\r\n\t b"}, EDGE...)

// seq is the tokens of one sequence of an encoding, which start at token at.
type seq struct {
	at         int
	ids, words []int32
	offsets    []Span
}

func (s seq) slice(from, to int) seq {
	return seq{s.at + from, s.ids[from:to], s.words[from:to], s.offsets[from:to]}
}

// layout checks e against the tokenizer's template (special tokens where it puts
// them, with no offsets and no word) and returns its sequences: the runs of tokens
// with a word id between the special tokens.
func layout(t *testing.T, tk *Tokenizer, e *Encoding, pair bool) []seq {
	t.Helper()
	n := e.Len()
	if len(e.TokenTypeIDs) != n || len(e.Offsets) != n || len(e.WordIDs) != n || e.Labels != nil && len(e.Labels) != n {
		t.Fatalf("columns of %d ids, %d types, %d offsets, %d words, %d labels", n, len(e.TokenTypeIDs), len(e.Offsets), len(e.WordIDs), len(e.Labels))
	}
	for i, id := range e.InputIDs {
		if id < 0 || int(id) >= tk.Vocab().Len() {
			t.Fatalf("token %d: id %d outside the vocabulary of %d", i, id, tk.Vocab().Len())
		}
	}
	items := tk.post.single
	if pair {
		items = tk.post.pair
	}
	var seqs []seq
	i := 0
	for _, it := range items {
		if it.id >= 0 {
			if i >= n || e.InputIDs[i] != it.id || e.TokenTypeIDs[i] != it.typ || e.Offsets[i] != (Span{}) || e.WordIDs[i] != -1 {
				t.Fatalf("token %d is not the template's special token %d (type %d): %+v", i, it.id, it.typ, e)
			}
			i++
			continue
		}
		from := i
		for i < n && e.WordIDs[i] >= 0 {
			if e.TokenTypeIDs[i] != it.typ {
				t.Fatalf("token %d of sequence %d has type %d, want %d", i, it.seq, e.TokenTypeIDs[i], it.typ)
			}
			i++
		}
		seqs = append(seqs, seq{from, e.InputIDs[from:i], e.WordIDs[from:i], e.Offsets[from:i]})
	}
	if i != n {
		t.Fatalf("%d tokens after the template's last item: %+v", n-i, e)
	}
	return seqs
}

// checkOffsets checks that a sequence's offsets lie in a text of runes runes and
// do not go backwards, and that its word ids never go backwards (they may skip
// words that make no token, bytes a BPE vocabulary lacks).
// Empty spans are left out of the order: HF trims a byte-level token of only a
// space to the empty span after it, before the next word's start when that
// space was put there by add_prefix_space ("<s>Z" as a pre-split word).
func checkOffsets(t *testing.T, s seq, runes int) {
	t.Helper()
	last := Span{}
	for i, o := range s.offsets {
		if o.Start < 0 || o.Start > o.End || int(o.End) > runes {
			t.Fatalf("token %d: offsets %v outside the text of %d runes", i, o, runes)
		}
		if o.Start < o.End {
			if o.Start < last.Start {
				t.Fatalf("token %d: offsets %v go back from %v", i, o, last)
			}
			last = o
		}
		if i > 0 && s.words[i] < s.words[i-1] {
			t.Fatalf("token %d: word ids %v", i, s.words)
		}
	}
}

// encodeSeq encodes text untruncated and returns its one sequence, checked.
func encodeSeq(t *testing.T, tk *Tokenizer, text string) seq {
	t.Helper()
	e, err := tk.Encode(text, 0)
	if err != nil {
		t.Fatal(err)
	}
	s := layout(t, tk, &e, false)[0]
	checkOffsets(t, s, utf8.RuneCountInString(text))
	toks := make([]string, len(s.ids))
	for i, id := range s.ids {
		toks[i] = tk.Vocab().Token(int(id))
	}
	if got := tk.Tokens(text); !slices.Equal(got, toks) {
		t.Fatalf("Tokens %q, Encode %q", got, toks)
	}
	return s
}

func sameSeq(t *testing.T, what string, got, want seq) {
	t.Helper()
	if !slices.Equal(got.ids, want.ids) || !slices.Equal(got.words, want.words) || !slices.Equal(got.offsets, want.offsets) {
		t.Fatalf("%s: got %+v, want %+v", what, got, want)
	}
}

// Encode and EncodePair on any text, valid UTF-8 or not: ids in the vocabulary,
// offsets inside the text and in order, truncation to the first tokens within
// maxLen, and a pair made of the two texts' own tokens cut as longest_first cuts them.
func FuzzEncode(f *testing.F) {
	for i, s := range fuzzTexts {
		f.Add(s, fuzzTexts[(i+1)%len(fuzzTexts)], uint8(i*3))
	}
	f.Add("", "", uint8(0))
	f.Add("a", "b", uint8(1))
	tks := fuzzTokenizers(f)
	f.Fuzz(func(t *testing.T, a, b string, maxLen uint8) {
		for _, tk := range tks {
			sa, sb := encodeSeq(t, tk, a), encodeSeq(t, tk, b)

			ns := tk.post.specials(false)
			e, err := tk.Encode(a, int(maxLen))
			if maxLen > 0 && int(maxLen) < ns {
				if err == nil {
					t.Fatalf("%s: max length %d below %d special tokens: no error", tk.kind, maxLen, ns)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				n := len(sa.ids)
				if maxLen > 0 {
					n = min(n, int(maxLen)-ns)
				}
				sameSeq(t, "truncated", layout(t, tk, &e, false)[0], sa.slice(0, n))
			}

			ns = tk.post.specials(true)
			e, err = tk.EncodePair(a, b, int(maxLen))
			if maxLen > 0 && int(maxLen) < ns {
				if err == nil {
					t.Fatalf("%s: max length %d below %d special tokens of a pair: no error", tk.kind, maxLen, ns)
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			want := len(sa.ids) + len(sb.ids) + ns
			if maxLen > 0 {
				want = min(want, int(maxLen))
			}
			if e.Len() != want {
				t.Fatalf("%s: pair of %d+%d tokens cut to %d, want %d", tk.kind, len(sa.ids), len(sb.ids), e.Len(), want)
			}
			ps := layout(t, tk, &e, true)
			if len(ps[0].ids) > len(sa.ids) || len(ps[1].ids) > len(sb.ids) {
				t.Fatalf("%s: pair has %d and %d tokens of texts of %d and %d", tk.kind, len(ps[0].ids), len(ps[1].ids), len(sa.ids), len(sb.ids))
			}
			sameSeq(t, "first of pair", ps[0], sa.slice(0, len(ps[0].ids)))
			sameSeq(t, "second of pair", ps[1], sb.slice(0, len(ps[1].ids)))
		}
	})
}

// EncodeWords on any words (the fuzzed text cut at newlines): each word's tokens are
// what it makes alone, its first token carries its label and the others none, and
// WordStarts finds each word's first token.
func FuzzEncodeWords(f *testing.F) {
	for i, s := range fuzzTexts {
		f.Add(strings.ReplaceAll(s, " ", "\n"), uint8(i*2))
	}
	f.Add("Hello\nnaïve\n\u00ad\nworld!", uint8(0))
	f.Add("\n\n", uint8(3))
	tks := fuzzTokenizers(f)
	f.Fuzz(func(t *testing.T, text string, maxLen uint8) {
		words := strings.Split(text, "\n")
		labels := make([]int32, len(words))
		for i := range labels {
			labels[i] = int32(i)
		}
		for _, tk := range tks {
			e, err := tk.EncodeWords(words, labels, int(maxLen))
			if ns := tk.post.specials(false); maxLen > 0 && int(maxLen) < ns {
				if err == nil {
					t.Fatalf("%s: max length %d below %d special tokens: no error", tk.kind, maxLen, ns)
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if maxLen > 0 && e.Len() > int(maxLen) {
				t.Fatalf("%s: %d tokens, max length %d", tk.kind, e.Len(), maxLen)
			}
			s := layout(t, tk, &e, false)[0]
			// Each word alone, in a whole encoding of its own.
			var alone seq
			for i, w := range words {
				ew, err := tk.EncodeWords([]string{w}, nil, 0)
				if err != nil {
					t.Fatal(err)
				}
				sw := layout(t, tk, &ew, false)[0]
				checkOffsets(t, sw, utf8.RuneCountInString(w))
				for j := range sw.words {
					sw.words[j] = int32(i)
				}
				alone = seq{ids: append(alone.ids, sw.ids...), words: append(alone.words, sw.words...), offsets: append(alone.offsets, sw.offsets...)}
			}
			if len(s.ids) > len(alone.ids) {
				t.Fatalf("%s: %d tokens, the words alone make %d", tk.kind, len(s.ids), len(alone.ids))
			}
			sameSeq(t, "words", s, alone.slice(0, len(s.ids)))
			starts := WordStarts(&e, len(words))
			for i, w := range e.WordIDs {
				first := w >= 0 && (i == 0 || e.WordIDs[i-1] != w)
				switch {
				case first && (e.Labels[i] != labels[w] || starts[w] != i):
					t.Fatalf("%s: token %d starts word %d but has label %d, word start %d", tk.kind, i, w, e.Labels[i], starts[w])
				case !first && e.Labels[i] != IgnoreLabel:
					t.Fatalf("%s: token %d (word %d) is not a word's first but has label %d", tk.kind, i, w, e.Labels[i])
				}
			}
			for w, i := range starts {
				if i >= 0 && e.WordIDs[i] != int32(w) || i < 0 && slices.Contains(e.WordIDs, int32(w)) {
					t.Fatalf("%s: WordStarts %v for word ids %v", tk.kind, starts, e.WordIDs)
				}
			}
		}
	})
}

// EncodeQA on any question and context, with an answer cut from the context (or,
// when the fuzzed span does not fit, one that must be refused): the windows are the
// context's tokens from the start to the end, each overlapping the one before by
// stride tokens, and a window labels the answer exactly when it holds it whole.
func FuzzEncodeQA(f *testing.F) {
	f.Add("Who said hello?", "Ça coûte 5 € — naïve Zoë said hello to the world of Tokyo again", 22, uint8(8), uint8(15), uint8(3))
	f.Add("Where?", "In Tokyo.", 3, uint8(5), uint8(64), uint8(0))
	f.Add("", "", 0, uint8(1), uint8(9), uint8(1))
	f.Add("I ❤️ NY", "I ❤️ NY 😀 👨‍👩‍👧", 8, uint8(1), uint8(12), uint8(2))
	f.Add("a", "f\xffo\xc3 \xe2\x82 b", 1, uint8(3), uint8(10), uint8(1))
	tks := fuzzTokenizers(f)
	f.Fuzz(func(t *testing.T, question, context string, start int, length, maxLen, stride uint8) {
		answer, ok := runeSlice(context, start, start+int(length))
		if !ok || answer == "" {
			answer = "x" // not in the context at start, or past its end: refused
		}
		ex := QAExample{ID: "q", Question: question, Context: context, Answers: []Answer{{Text: answer, Start: start}}}
		checked := checkAnswers(&ex) == nil
		end := start + utf8.RuneCountInString(answer)
		for _, tk := range tks {
			feats, err := tk.EncodeQA([]QAExample{ex}, int(maxLen), int(stride))
			q, c := encodeSeq(t, tk, question), encodeSeq(t, tk, context)
			window := int(maxLen) - len(q.ids) - tk.post.specials(true)
			if !checked || window <= int(stride) {
				if err == nil {
					t.Fatalf("%s: answer %q at %d (valid %v), window %d, stride %d: no error", tk.kind, answer, start, checked, window, stride)
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			from := 0
			for k, f := range feats {
				if f.Example != 0 || f.Len() > int(maxLen) {
					t.Fatalf("%s: feature %d of example %d has %d tokens, max length %d", tk.kind, k, f.Example, f.Len(), maxLen)
				}
				ps := layout(t, tk, &f.Encoding, true)
				sameSeq(t, "question", ps[0], q)
				to := min(from+window, len(c.ids))
				if f.ContextStart != ps[1].at || f.ContextEnd != ps[1].at+len(ps[1].ids) {
					t.Fatalf("%s: feature %d: context tokens [%d, %d), the encoding has them at [%d, %d)", tk.kind, k, f.ContextStart, f.ContextEnd, ps[1].at, ps[1].at+len(ps[1].ids))
				}
				sameSeq(t, "window", ps[1], c.slice(from, to))
				inside := from < to && int(c.offsets[from].Start) <= start && int(c.offsets[to-1].End) >= end
				switch {
				case !inside && (f.StartPosition != 0 || f.EndPosition != 0):
					t.Fatalf("%s: feature %d labels %d, %d for an answer it does not hold", tk.kind, k, f.StartPosition, f.EndPosition)
				case inside && (f.StartPosition < f.ContextStart || f.EndPosition >= f.ContextEnd):
					t.Fatalf("%s: feature %d labels %d, %d outside its context [%d, %d)", tk.kind, k, f.StartPosition, f.EndPosition, f.ContextStart, f.ContextEnd)
				case inside && f.StartPosition > f.EndPosition:
					t.Fatalf("%s: feature %d labels %d, %d: the end before the start", tk.kind, k, f.StartPosition, f.EndPosition)
				case inside:
					got, ok := f.AnswerText(context, f.StartPosition, f.EndPosition)
					if i := strings.Index(got, answer); !ok || i < 0 {
						t.Fatalf("%s: feature %d labels %q, which lacks the answer %q", tk.kind, k, got, answer)
					}
				}
				if to == len(c.ids) {
					if k != len(feats)-1 {
						t.Fatalf("%s: %d features after the end of the context", tk.kind, len(feats)-1-k)
					}
					break
				}
				from = to - int(stride)
			}
		}
	})
}

// checkLoaded checks a tokenizer loaded from fuzzed files: special token ids in
// the vocabulary (or -1 where the family allows none), and encodings of probe
// texts, and of its own first tokens, that pass encodeSeq's and layout's checks.
func checkLoaded(t *testing.T, tk *Tokenizer) {
	t.Helper()
	if !slices.Contains([]string{WordPiece, BPE, Unigram}, tk.Algorithm()) {
		t.Fatalf("algorithm %q", tk.Algorithm())
	}
	v := tk.Vocab()
	for name, id := range map[string]int32{"pad": tk.PadID(), "cls": tk.ClsID(), "sep": tk.SepID(), "unk": tk.UnkID(), "mask": tk.MaskID()} {
		if id < -1 || int(id) >= v.Len() || id == -1 && (name == "pad" || tk.kind == WordPiece) {
			t.Fatalf("%s id %d, vocabulary of %d", name, id, v.Len())
		}
	}
	probes := slices.Clone(fuzzTexts)
	for i := range min(v.Len(), 8) {
		probes = append(probes, v.Token(i)+" x"+v.Token(v.Len()-1-i))
	}
	for i, a := range probes {
		encodeSeq(t, tk, a)
		b := probes[(i+1)%len(probes)]
		e, err := tk.EncodePair(a, b, 0)
		if err != nil {
			t.Fatal(err)
		}
		ps := layout(t, tk, &e, true)
		checkOffsets(t, ps[0], utf8.RuneCountInString(a))
		checkOffsets(t, ps[1], utf8.RuneCountInString(b))
		words := strings.Fields(a)
		e, err = tk.EncodeWords(words, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		layout(t, tk, &e, false)
	}
}

// fuzzLoad loads a directory of the given files (nil: absent): an error must name
// one of them, a tokenizer must pass checkLoaded.
func fuzzLoad(t *testing.T, files map[string][]byte) {
	dir := t.TempDir()
	for name, data := range files {
		if data != nil {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	tk, err := Load(dir)
	if err != nil {
		for name, data := range files {
			if data != nil && strings.Contains(err.Error(), filepath.Join(dir, name)) {
				return
			}
		}
		t.Fatalf("the error names none of the files: %v", err)
	}
	checkLoaded(t, tk)
}

func readTestdata(tb testing.TB, name string) []byte {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

// Small tokenizer.json files of each family, quicker to mutate than the fixtures.
const (
	smallBPEJSON = `{"added_tokens": [{"id": 0, "content": "<s>", "special": true}, {"id": 1, "content": "<pad>", "special": true},
  {"id": 2, "content": "</s>", "special": true}, {"id": 9, "content": "<mask>", "lstrip": true, "special": true},
  {"id": 10, "content": "é", "normalized": true, "single_word": true, "rstrip": true}],
 "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFD"}, {"type": "Strip", "strip_left": true, "strip_right": true}]},
 "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
 "post_processor": {"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0], "trim_offsets": true, "add_prefix_space": false},
 "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "fuse_unk": true,
  "vocab": {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "a": 4, "b": 5, "Ġ": 6, "ab": 7, "Ġab": 8, "<mask>": 9}, "merges": ["a b", ["Ġ", "ab"]]}}`
	smallUnigramJSON = `{"added_tokens": [{"id": 0, "content": "<pad>", "special": true}, {"id": 1, "content": "<unk>", "special": true},
  {"id": 2, "content": "[CLS]", "special": true}, {"id": 3, "content": "[SEP]", "special": true}, {"id": 4, "content": "[MASK]", "lstrip": true, "special": true}],
 "normalizer": {"type": "Sequence", "normalizers": [{"type": "Replace", "pattern": {"String": "''"}, "content": "\""},
  {"type": "NFKD"}, {"type": "StripAccents"}, {"type": "Lowercase"}, {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]},
 "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": true},
 "post_processor": {"type": "TemplateProcessing",
  "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
  "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
   {"Sequence": {"id": "B", "type_id": 1}}, {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
  "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]}, "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
 "model": {"type": "Unigram", "unk_id": 1, "byte_fallback": true, "vocab": [["<pad>", 0], ["<unk>", 0], ["[CLS]", 0], ["[SEP]", 0], ["[MASK]", 0],
  ["▁", -2], ["▁a", -1.5], ["b", -3], ["ab", -2.5], ["<0x41>", -9]]}}`
)

// Load on any tokenizer.json, with or without a tokenizer_config.json.
func FuzzLoadTokenizerJSON(f *testing.F) {
	for _, doc := range [][]byte{[]byte(tinyTokenizerJSON), []byte(smallBPEJSON), []byte(smallUnigramJSON),
		readTestdata(f, "roberta-tiny/tokenizer.json"), readTestdata(f, "albert-tiny/tokenizer.json")} {
		f.Add(doc, []byte(nil))
	}
	f.Add([]byte(smallBPEJSON), []byte(`{"add_prefix_space": true, "mask_token": {"content": "<mask>"}}`))
	f.Add([]byte(smallUnigramJSON), []byte(`{"unk_token": "[MASK]", "pad_token": null, "cls_token": "[SEP]"}`))
	f.Add([]byte(tinyTokenizerJSON), []byte(`{"do_lower_case": false, "strip_accents": true, "tokenize_chinese_chars": false}`))
	f.Fuzz(func(t *testing.T, doc, config []byte) {
		if len(config) == 0 {
			config = nil
		}
		fuzzLoad(t, map[string][]byte{"tokenizer.json": doc, "tokenizer_config.json": config})
	})
}

// Load on any vocab.txt, with or without a tokenizer_config.json.
func FuzzLoadVocabTxt(f *testing.F) {
	f.Add([]byte(strings.Join(tiny(f).Vocab().tokens, "\n")), []byte(nil))
	f.Add([]byte("[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\n[MASK]\r\nhé\r\n##llo\r\n"), []byte(`{"do_lower_case": false}`))
	f.Add([]byte("<p>\n<u>\n<c>\n<s>\n<m>\na\n"), []byte(`{"pad_token": "<p>", "unk_token": "<u>", "cls_token": "<c>", "sep_token": "<s>", "mask_token": {"content": "<m>"}}`))
	f.Add([]byte("[PAD]\n[UNK]\n"), []byte(nil))
	f.Fuzz(func(t *testing.T, vocab, config []byte) {
		if len(config) == 0 {
			config = nil
		}
		fuzzLoad(t, map[string][]byte{"vocab.txt": vocab, "tokenizer_config.json": config})
	})
}

// Load on any vocab.json and merges.txt.
func FuzzLoadVocabMerges(f *testing.F) {
	f.Add(readTestdata(f, "roberta-tiny/vocab.json"), readTestdata(f, "roberta-tiny/merges.txt"))
	f.Add([]byte(`{"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "a": 4, "b": 5, "Ġ": 6, "ab": 7, "Ġab": 8, "<mask>": 9}`), []byte("#version: 0.2\na b\r\nĠ ab\n"))
	f.Add([]byte(`{"<s>": 0, "</s>": 1}`), []byte(""))
	f.Fuzz(func(t *testing.T, vocab, merges []byte) {
		fuzzLoad(t, map[string][]byte{"vocab.json": vocab, "merges.txt": merges})
	})
}

// protoField appends a length-delimited protobuf field.
func protoField(b []byte, field int, data []byte) []byte {
	b = binary.AppendUvarint(b, uint64(field<<3|2))
	b = binary.AppendUvarint(b, uint64(len(data)))
	return append(b, data...)
}

// Load on any SentencePiece model, as ALBERT's spiece.model and DeBERTa's spm.model.
func FuzzLoadSPModel(f *testing.F) {
	f.Add(readTestdata(f, "albert-tiny/spiece.model"))
	f.Add(readTestdata(f, "deberta-tiny/spm.model"))
	var small []byte
	for i, p := range []struct {
		piece string
		typ   int
	}{{"<pad>", spControl}, {"<unk>", 2}, {"[CLS]", spControl}, {"[SEP]", spControl}, {"[MASK]", spUserDefined}, {"▁a", spNormal}, {"b", spNormal}, {"1,", spNormal}} {
		piece := protoField(nil, 1, []byte(p.piece))
		piece = binary.LittleEndian.AppendUint32(append(piece, 2<<3|5), math.Float32bits(-float32(i)))
		piece = binary.AppendUvarint(append(piece, 3<<3), uint64(p.typ))
		small = protoField(small, 1, piece)
	}
	trainer := binary.AppendUvarint([]byte{3 << 3}, 1)                     // model_type unigram
	trainer = binary.AppendUvarint(append(trainer, 0xc0, 0x02), uint64(1)) // field 40, unk_id
	small = protoField(small, 2, trainer)
	f.Add(small)
	f.Fuzz(func(t *testing.T, model []byte) {
		fuzzLoad(t, map[string][]byte{"spiece.model": model})
		fuzzLoad(t, map[string][]byte{"spm.model": model})
	})
}
