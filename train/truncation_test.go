package train

import (
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/tokenize"
)

// Texts whose label is their last word, far past max_length: cut at the head the
// model cannot learn them; cut at the tail, or head and tail, it can. The checkpoint's
// tokenizer records the truncation, so evaluating it truncates as training did.
func TestTruncationKeepsTheEndOfLongTexts(t *testing.T) {
	runtime.LockOSThread()
	r := rand.New(rand.NewPCG(5, 6))
	filler := strings.Fields("the movie was long and the plot had actors in it")
	var lines []string
	for range 240 {
		words := make([]string, 40)
		for i := range words {
			words[i] = filler[r.IntN(len(filler))]
		}
		label := []string{"pos", "neg"}[r.IntN(2)]
		lines = append(lines, label+"\t"+strings.Join(words, " ")+" "+map[string]string{"pos": "great", "neg": "awful"}[label])
	}
	data := filepath.Join(t.TempDir(), "long.txt")
	if err := os.WriteFile(data, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		truncation string
		learns     bool
		want       tokenize.Truncation
	}{{"head", false, tokenize.Truncation{}}, {"tail", true, tokenize.Truncation{Left: true}},
		{"head_tail", true, tokenize.Truncation{Left: true, Head: 4}}} {
		s := smsSpec(t)
		s.Train, s.Data, s.Metric = data, shard.Spec{Format: "labeltext", Delimiter: "\t"}, "accuracy"
		s.MaxLength, s.BatchSize, s.MaxSteps, s.Truncation = 16, 16, 60, c.truncation
		_, res := trainSpec(t, s)
		acc := res.Best.Metrics["accuracy"]
		t.Logf("truncation %s: accuracy %.3f", c.truncation, acc)
		if c.learns != (acc >= 0.9) || !c.learns && acc > 0.7 {
			t.Errorf("truncation %s: accuracy %.3f", c.truncation, acc)
		}
		ev := Defaults()
		ev.Model, ev.MaxLength = filepath.Join(s.Output, "best"), s.MaxLength
		tr, err := ForEval(ev, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if got := tr.Tok.Truncation(); got != c.want {
			t.Errorf("truncation %s: the checkpoint's tokenizer truncates %+v, want %+v", c.truncation, got, c.want)
		}
		// The held-out texts as the checkpoint predicts them, against their labels.
		right := 0
		for _, l := range lines[200:] {
			p, err := tr.Predict([]string{l[4:]}, 0)
			if err != nil {
				t.Fatal(err)
			}
			if p[0].Label == l[:3] {
				right++
			}
		}
		if c.learns != (right >= 36) {
			t.Errorf("truncation %s: the checkpoint predicts %d of 40 texts right", c.truncation, right)
		}
	}
}
