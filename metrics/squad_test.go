package metrics

import (
	"encoding/json"
	"testing"
)

func TestNormalizeAnswer(t *testing.T) {
	for in, want := range map[string]string{
		"The  Quick, brown fox!": "quick brown fox",
		"an apple a day":         "apple day",
		"A-team":                 "ateam", // punctuation goes before articles
		"théa":                   "théa",  // é is a word character: no boundary before a
		"the«a»":                 "« »",   // « » are not ASCII punctuation, so they stay
		"x\x1cy\u00a0z":          "x y z", // Python's str.split() whitespace
		"The":                    "",
		"Theatre":                "theatre",
		"$1,000.50":              "100050",
	} {
		if got := NormalizeAnswer(in); got != want {
			t.Errorf("NormalizeAnswer(%q) = %q, want %q", in, got, want)
		}
	}
}

func addOne(v SQuADVersion, pred string, golds ...string) QASums {
	c := NewQACounts(v)
	c.Add(pred, golds)
	if len(golds) == 0 {
		return c.NoAns
	}
	return c.HasAns
}

func TestQAScoresPerQuestion(t *testing.T) {
	for _, tc := range []struct {
		v         SQuADVersion
		pred      string
		golds     []string
		exact, f1 float64
	}{
		// tokens [cat sat] vs [cat sat on mat]: 2 shared, P 1, R 1/2 -> F1 2/3
		{SQuAD11, "the cat sat", []string{"a cat sat on the mat"}, 0, 2.0 / 3},
		// bags: 1 shared "cat", P 1/3, R 1/2 -> F1 2*(1/6)/(5/6) = 2/5
		{SQuAD11, "cat cat cat", []string{"cat dog"}, 0, 0.4},
		// max over golds: vs "cat cat" P 2/3, R 1 -> F1 4/5
		{SQuAD11, "cat cat cat", []string{"dog", "cat cat"}, 0, 0.8},
		{SQuAD11, "Denver Broncos!", []string{"x", "the Denver Broncos"}, 1, 1},
		// v1.1: both normalize to "" -> exact match, but F1 of empty bags is 0
		{SQuAD11, "a", []string{"the"}, 1, 0},
		// v2.0: the gold normalizes to nothing, so it is dropped and "" is the gold
		{SQuAD20, "", []string{"the"}, 1, 1},
		{SQuAD20, "a", []string{"the"}, 1, 1},
		{SQuAD20, "", nil, 1, 1},
		{SQuAD20, "Broncos", nil, 0, 0},
		{SQuAD20, "", []string{"Broncos"}, 0, 0},
	} {
		got := addOne(tc.v, tc.pred, tc.golds...)
		if got.Total != 1 || got.Exact != tc.exact || !(got.F1-tc.f1 < 1e-12 && tc.f1-got.F1 < 1e-12) {
			t.Errorf("v%d %q vs %q: exact %v f1 %v total %d, want %v %v 1",
				tc.v, tc.pred, tc.golds, got.Exact, got.F1, got.Total, tc.exact, tc.f1)
		}
	}
}

func TestQAResultSplitsAndMerge(t *testing.T) {
	type q struct {
		pred  string
		golds []string
	}
	qs := []q{
		{"Denver Broncos!", []string{"Denver Broncos", "the Denver Broncos"}}, // EM 1, F1 1
		{"Panthers", []string{"Carolina Panthers"}},                           // EM 0, F1 2/3
		{"", nil},        // no answer, predicted none: 1, 1
		{"Broncos", nil}, // no answer, predicted one: 0, 0
	}
	a, b := NewQACounts(SQuAD20), NewQACounts(SQuAD20)
	for i, x := range qs {
		if i < 2 {
			a.Add(x.pred, x.golds)
		} else {
			b.Add(x.pred, x.golds)
		}
	}
	blob, _ := json.Marshal(b)
	var remote QACounts
	if err := json.Unmarshal(blob, &remote); err != nil {
		t.Fatal(err)
	}
	if err := a.Merge(&remote); err != nil {
		t.Fatal(err)
	}
	r := a.Result()
	near(t, "exact", r.Exact, 50)              // 2 of 4
	near(t, "f1", r.F1, 100*(1+2.0/3+1)/4)     // 66.67
	near(t, "HasAns_exact", r.HasAnsExact, 50) // 1 of 2
	near(t, "HasAns_f1", r.HasAnsF1, 100*(1+2.0/3)/2)
	near(t, "NoAns_exact", r.NoAnsExact, 50)
	near(t, "NoAns_f1", r.NoAnsF1, 50)
	if r.Total != 4 || r.HasAnsTotal != 2 || r.NoAnsTotal != 2 {
		t.Errorf("totals %d/%d/%d, want 4/2/2", r.Total, r.HasAnsTotal, r.NoAnsTotal)
	}
	if err := a.Merge(NewQACounts(SQuAD11)); err == nil {
		t.Error("merging v1.1 counts into v2.0 counts succeeded")
	}
}

// SQuAD v1.1 dev against predictions cut from the context around the first
// gold answer, a few characters off in either direction. The expected numbers
// come from the official evaluate-v1.1.py and evaluate-v2.0.py functions run
// on the same predictions; for v2.0 every tenth question is made unanswerable
// and every twentieth gets the empty prediction.
func TestQARealSQuADDevMatchesOfficialScripts(t *testing.T) {
	var dev struct {
		Data []struct {
			Paragraphs []struct {
				Context string
				QAs     []struct {
					Answers []struct {
						Text        string
						AnswerStart int `json:"answer_start"`
					}
				} `json:"qas"`
			}
		}
	}
	if err := json.Unmarshal(readShared(t, "squad_v1.1/dev-v1.1.json"), &dev); err != nil {
		t.Fatal(err)
	}
	v1, v2 := NewQACounts(SQuAD11), NewQACounts(SQuAD20)
	k := 0
	for _, art := range dev.Data {
		for _, para := range art.Paragraphs {
			ctx := []rune(para.Context)
			for _, qa := range para.QAs {
				a := qa.Answers[0]
				from := max(0, a.AnswerStart-(k%4)*3)
				to := min(len(ctx), a.AnswerStart+len([]rune(a.Text))+(k%3)*2-1)
				pred := string(ctx[from:to])
				var golds []string
				for _, g := range qa.Answers {
					golds = append(golds, g.Text)
				}
				v1.Add(pred, golds)
				if k%10 == 0 {
					golds = nil
				}
				if k%20 == 0 {
					pred = ""
				}
				v2.Add(pred, golds)
				k++
			}
		}
	}
	const tol = 1e-9
	check := func(what string, got, want float64) {
		t.Helper()
		if got-want > tol || want-got > tol {
			t.Errorf("%s = %.12f, want %.12f", what, got, want)
		}
	}
	r := v1.Result()
	if r.Total != 10570 {
		t.Fatalf("%d questions, want 10570", r.Total)
	}
	check("v1.1 exact", r.Exact, 11.85430463576159)
	check("v1.1 f1", r.F1, 63.991490224413745)

	r = v2.Result()
	check("v2.0 exact", r.Exact, 14.758751182592242)
	check("v2.0 f1", r.F1, 62.169269866054428)
	check("v2.0 HasAns_exact", r.HasAnsExact, 10.83780090402607)
	check("v2.0 HasAns_f1", r.HasAnsF1, 63.516154996761593)
	check("v2.0 NoAns_exact", r.NoAnsExact, 50.047303689687794)
	check("v2.0 NoAns_f1", r.NoAnsF1, 50.047303689687794)
	if r.Total != 10570 || r.HasAnsTotal != 9513 || r.NoAnsTotal != 1057 {
		t.Errorf("v2.0 totals %d/%d/%d, want 10570/9513/1057", r.Total, r.HasAnsTotal, r.NoAnsTotal)
	}
}
