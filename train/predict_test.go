package train

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/tokenize"
)

func TestPlanWindows(t *testing.T) {
	for _, c := range []struct {
		counts         []int
		budget, stride int
		want           [][2]int
	}{
		{[]int{1, 1, 1}, 6, 2, [][2]int{{0, 3}}},
		{slices.Repeat([]int{1}, 20), 6, 2, [][2]int{{0, 6}, {4, 10}, {8, 14}, {12, 18}, {16, 20}}},
		// Words of several tokens: the overlap is whole words of at most stride tokens.
		{[]int{2, 3, 1, 2, 2, 1}, 6, 3, [][2]int{{0, 3}, {2, 6}}},
		// A word longer than the budget is a window of its own; the next does not
		// share it, since it would not fit with anything else.
		{[]int{1, 9, 1, 1}, 6, 2, [][2]int{{0, 1}, {1, 2}, {2, 4}}},
		// No stride: windows follow each other.
		{[]int{1, 1, 1, 1, 1}, 2, 0, [][2]int{{0, 2}, {2, 4}, {4, 5}}},
	} {
		if got := planWindows(c.counts, c.budget, c.stride); !slices.Equal(got, c.want) {
			t.Errorf("planWindows(%v, %d, %d) = %v, want %v", c.counts, c.budget, c.stride, got, c.want)
		}
	}
}

// With windows, a text longer than max_length is read in overlapping windows of whole
// words, each word from the window where it has the most context. The model here is an
// Infer that says "window k" for every token of the k-th sequence, so each word's tag
// names the window it was read from.
func TestPredictTagsReadsEachWordFromItsBestWindow(t *testing.T) {
	tags := []string{"B-w0", "B-w1", "B-w2", "B-w3", "B-w4", "O"}
	labels, err := shard.NewLabelSet(tags)
	if err != nil {
		t.Fatal(err)
	}
	s := Defaults()
	s.Task, s.MaxLength, s.DocStride = string(model.NER), 8, 2
	var sent [][]*tokenize.Encoding
	infer := func(encs []*tokenize.Encoding) ([][]float32, error) {
		sent = append(sent, encs)
		out := make([][]float32, len(encs))
		for k, e := range encs {
			out[k] = make([]float32, e.Len()*len(tags))
			for tok := range e.Len() {
				out[k][tok*len(tags)+k%5] = 5
			}
		}
		return out, nil
	}
	tr := (&Trainer{Spec: s, Tok: testTokenizer(t), Labels: labels}).WithInfer(infer)
	words := strings.Fields("a b c d e f g h i j k l m n o p q r s t") // one token each
	text := strings.Join(words, " ")
	got, err := tr.PredictTags([]string{text, "x y"}, true)
	if err != nil {
		t.Fatal(err)
	}
	// Windows of 6 tokens sharing 2: [0,6) [4,10) [8,14) [12,18) [16,20), and "x y" alone.
	if len(sent) != 1 || len(sent[0]) != 6 {
		t.Fatalf("one call with 6 sequences expected, got %d calls", len(sent))
	}
	for k, e := range sent[0] {
		if e.Len() > s.MaxLength {
			t.Errorf("sequence %d has %d tokens, over max length %d", k, e.Len(), s.MaxLength)
		}
	}
	var want []string
	for w := range words {
		// A window's words 1 and 2 from either end have 0 and 1 tokens of context; the
		// middle ones 2. Ties go to the earlier window.
		k := []int{0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4}[w]
		want = append(want, tags[k])
	}
	p := got[0]
	if !slices.Equal(p.Words, words) || !slices.Equal(p.Tags, want) || p.Truncated != 0 || len(p.Entities) != len(words) {
		t.Errorf("tags %v (truncated %d), want %v", p.Tags, p.Truncated, want)
	}
	if q := got[1]; !slices.Equal(q.Tags, []string{"B-w0", "B-w0"}) || q.Text != "x y" {
		t.Errorf("second text: %+v", q)
	}
	for i, e := range p.Entities {
		if e.Text != words[i] || e.Start != 2*i || e.End != 2*i+1 {
			t.Errorf("entity %d: %+v", i, e)
		}
	}

	// Without windows the same text is cut after max_length's 6 words.
	sent = nil
	got, err = tr.PredictTags([]string{text}, false)
	if err != nil {
		t.Fatal(err)
	}
	want = append(slices.Repeat([]string{"B-w0"}, 6), slices.Repeat([]string{"O"}, 14)...)
	if !slices.Equal(got[0].Tags, want) || got[0].Truncated != 14 || len(sent[0]) != 1 {
		t.Errorf("without windows: tags %v, truncated %d, %d sequences", got[0].Tags, got[0].Truncated, len(sent[0]))
	}
	// A text that fits is one sequence either way, the one predict encodes.
	for _, windows := range []bool{false, true} {
		sent = nil
		if _, err := tr.PredictTags([]string{"a b c"}, windows); err != nil {
			t.Fatal(err)
		}
		want, _ := tr.Tok.EncodeWords([]string{"a", "b", "c"}, nil, s.MaxLength)
		if len(sent[0]) != 1 || fmt.Sprint(*sent[0][0]) != fmt.Sprint(want) {
			t.Errorf("windows %v: sent %v, want %v", windows, sent[0], want)
		}
	}
}
