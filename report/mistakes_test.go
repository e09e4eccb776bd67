package report

import (
	"bufio"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/internal/atomicfile"
)

func TestWriteMistakesMostConfidentFirst(t *testing.T) {
	in := []Mistake{
		{Text: "free entry <now>", Gold: "ham", Pred: "spam", Confidence: 0.61, Source: "sms.tsv:10"},
		{Text: "call me", Gold: "spam", Pred: "ham", Confidence: 0.99, Source: "sms.tsv:11"},
		{Text: "tie a", Gold: "ham", Pred: "spam", Confidence: 0.75},
		{Text: "tie b\twith tab", Gold: "ham", Pred: "spam", Confidence: 0.75},
	}
	path := filepath.Join(t.TempDir(), "errors.jsonl")
	if err := atomicfile.Write(path, 0o644, func(w io.Writer) error { return WriteMistakes(w, in) }); err != nil {
		t.Fatal(err)
	}
	if in[0].Confidence != 0.61 {
		t.Error("WriteMistakes reordered the caller's slice")
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []Mistake
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.Contains(sc.Text(), `\u003c`) {
			t.Errorf("line %q escapes <: hard to read", sc.Text())
		}
		var m Mistake
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		got = append(got, m)
	}
	want := []Mistake{in[1], in[2], in[3], in[0]} // 0.99, the 0.75 tie in input order, 0.61
	if len(got) != len(want) {
		t.Fatalf("%d lines, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d = %+v, want %+v", i+1, got[i], want[i])
		}
	}
}

func TestWriteMistakesRejectsNaN(t *testing.T) {
	err := WriteMistakes(io.Discard, []Mistake{{Text: "ok", Confidence: 0.5}, {Text: "bad one", Confidence: math.NaN()}})
	if err == nil || !strings.Contains(err.Error(), `mistake 1 ("bad one"): confidence is NaN`) {
		t.Errorf("error %v, want it to name mistake 1", err)
	}
}
