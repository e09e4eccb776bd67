package metrics

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func split(s string) []string { return strings.Fields(s) }

func TestEntitiesLenient(t *testing.T) {
	for _, tc := range []struct {
		tags string
		want []Entity
	}{
		// seqeval's get_entities docstring: [('PER', 0, 1), ('LOC', 3, 3)] inclusive.
		{"B-PER I-PER O B-LOC", []Entity{{"PER", 0, 2}, {"LOC", 3, 4}}},
		// I- after O starts an entity (conlleval).
		{"O I-PER I-PER O", []Entity{{"PER", 1, 3}}},
		// A type change inside a span splits it; B- always starts anew.
		{"B-PER I-LOC I-LOC B-LOC", []Entity{{"PER", 0, 1}, {"LOC", 1, 3}, {"LOC", 3, 4}}},
		// IOB1 reads the same way: B- only separates equal-typed neighbours.
		{"I-PER I-PER B-PER O I-ORG", []Entity{{"PER", 0, 2}, {"PER", 2, 3}, {"ORG", 4, 5}}},
		{"B-ORG-X I-ORG-X", []Entity{{"ORG-X", 0, 2}}},
		{"B I", []Entity{{"_", 0, 2}}},
		{"O I", []Entity{{"_", 1, 2}}},
		{"O O", nil},
		{"", nil},
	} {
		for _, s := range []Scheme{BIO, IOB1} {
			got, err := Entities(split(tc.tags), s, Lenient)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Entities(%q, %v, Lenient) = %v, want %v", tc.tags, s, got, tc.want)
			}
		}
	}
}

// The strict-mode cases of seqeval's tests/test_scheme.py (test_iob1_tokens,
// test_iob2_tokens and their untyped variants).
func TestEntitiesStrictMatchesSeqevalSchemeTests(t *testing.T) {
	P := func(s, e int) Entity { return Entity{"PER", s, e} }
	O := func(s, e int) Entity { return Entity{"ORG", s, e} }
	U := func(s, e int) Entity { return Entity{"_", s, e} }
	iob1 := map[string][]Entity{
		"":            nil,
		"B-PER":       nil,
		"I-PER":       {P(0, 1)},
		"O":           nil,
		"O I-PER":     {P(1, 2)},
		"O B-PER":     nil,
		"I-PER O":     {P(0, 1)},
		"I-PER I-PER": {P(0, 2)},
		"I-PER I-ORG": {P(0, 1), O(1, 2)},
		"I-PER B-PER": {P(0, 1), P(1, 2)},
		"I-PER B-ORG": {P(0, 1)},
		"B-PER O":     nil,
		"B-PER I-PER": {P(1, 2)},
		"B-PER I-ORG": {O(1, 2)},
		"B-PER B-PER": {P(1, 2)},
		"B-PER B-ORG": nil,
		"B":           nil,
		"I":           {U(0, 1)},
		"O I":         {U(1, 2)},
		"I B":         {U(0, 1), U(1, 2)},
		"B I":         {U(1, 2)},
		"B B":         {U(1, 2)},
	}
	bio := map[string][]Entity{
		"":            nil,
		"B-PER":       {P(0, 1)},
		"I-PER":       nil,
		"O I-PER":     nil,
		"O B-PER":     {P(1, 2)},
		"I-PER O":     nil,
		"I-PER I-PER": nil,
		"I-PER I-ORG": nil,
		"I-PER B-PER": {P(1, 2)},
		"I-PER B-ORG": {O(1, 2)},
		"B-PER O":     {P(0, 1)},
		"B-PER I-PER": {P(0, 2)},
		"B-PER I-ORG": {P(0, 1)},
		"B-PER B-PER": {P(0, 1), P(1, 2)},
		"B-PER B-ORG": {P(0, 1), O(1, 2)},
		"B":           {U(0, 1)},
		"I":           nil,
		"O I":         nil,
		"I B":         {U(1, 2)},
		"B I":         {U(0, 2)},
		"B B":         {U(0, 1), U(1, 2)},
	}
	for scheme, cases := range map[Scheme]map[string][]Entity{IOB1: iob1, BIO: bio} {
		for tags, want := range cases {
			got, err := Entities(split(tags), scheme, Strict)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("Entities(%q, %v, Strict) = %v, want %v", tags, scheme, got, want)
			}
		}
	}
}

func TestEntitiesRejectsUnknownTags(t *testing.T) {
	for _, tags := range []string{"O B-PER PER", "O E-PER", "S-LOC", "B-", "o"} {
		_, err := Entities(split(tags), BIO, Lenient)
		if err == nil || !strings.Contains(err.Error(), "token") {
			t.Errorf("Entities(%q) error %v, want one naming the token", tags, err)
		}
	}
	_, err := NER([][]string{{"O"}, {"B-X", "Y"}}, [][]string{{"O"}, {"B-X", "O"}}, BIO, Lenient)
	if err == nil || !strings.Contains(err.Error(), `sentence 1: gold: metrics: token 1: tag "Y"`) {
		t.Errorf("NER error %v, want it to name sentence 1, gold, token 1", err)
	}
	_, err = NER([][]string{{"O", "O"}}, [][]string{{"O"}}, BIO, Lenient)
	if err == nil || !strings.Contains(err.Error(), "sentence 0") {
		t.Errorf("length mismatch error %v, want it to name sentence 0", err)
	}
}

// seqeval's f1_score docstring example: micro 2/3, macro 0.75, weighted 2/3,
// per type [0.5, 1].
var (
	nerGold = [][]string{split("O O B-MISC I-MISC B-MISC O O"), split("B-PER I-PER O")}
	nerPred = [][]string{split("O O B-MISC I-MISC B-MISC I-MISC O"), split("B-PER I-PER O")}
)

func TestNERMatchesSeqevalDocExample(t *testing.T) {
	r, err := NER(nerGold, nerPred, BIO, Lenient)
	if err != nil {
		t.Fatal(err)
	}
	// MISC gold {[2,4), [4,5)}, predicted {[2,4), [4,6)}: tp 1 -> P R F1 = 1/2
	// PER gold {[0,2)} predicted {[0,2)}: 1
	nearScores(t, "MISC", r.PerClass[0].Scores, 0.5, 0.5, 0.5, 2)
	nearScores(t, "PER", r.PerClass[1].Scores, 1, 1, 1, 1)
	// micro: tp 2 of 3 predicted and 3 gold
	nearScores(t, "micro", r.Micro, 2.0/3, 2.0/3, 2.0/3, 3)
	nearScores(t, "macro", r.Macro, 0.75, 0.75, 0.75, 3)
	// weighted by 2 and 1: (2*0.5 + 1)/3
	nearScores(t, "weighted", r.Weighted, 2.0/3, 2.0/3, 2.0/3, 3)
	// token accuracy: 9 of 10 tags equal
	near(t, "token accuracy", r.Accuracy, 0.9)

	want := `              precision    recall  f1-score   support

        MISC       0.50      0.50      0.50         2
         PER       1.00      1.00      1.00         1

   micro avg       0.67      0.67      0.67         3
   macro avg       0.75      0.75      0.75         3
weighted avg       0.67      0.67      0.67         3
`
	if got := r.Table(2); got != want {
		t.Errorf("Table(2) =\n%s\nwant\n%s", got, want)
	}
}

// A type that only the predictions contain gets a row with support 0 and
// pulls the macro average down, as in seqeval >= 1.0.
func TestNERPredictedOnlyType(t *testing.T) {
	gold := [][]string{split("B-PER O O")}
	pred := [][]string{split("B-PER O B-LOC")}
	r, err := NER(gold, pred, BIO, Lenient)
	if err != nil {
		t.Fatal(err)
	}
	// LOC: tp 0, pred 1, gold 0 -> 0; PER: 1
	nearScores(t, "LOC", r.PerClass[0].Scores, 0, 0, 0, 0)
	// micro: tp 1, pred 2, gold 1 -> P 1/2, R 1, F1 2/3
	nearScores(t, "micro", r.Micro, 0.5, 1, 2.0/3, 1)
	nearScores(t, "macro", r.Macro, 0.5, 0.5, 0.5, 1)
	nearScores(t, "weighted", r.Weighted, 1, 1, 1, 1)
}

// Entities never run across sentences, and strict mode drops ill-formed spans.
func TestNERStrictVersusLenient(t *testing.T) {
	gold := [][]string{split("B-PER I-PER"), split("I-PER O")}
	pred := [][]string{split("B-PER I-PER"), split("I-PER O")}
	lenient, _ := NER(gold, pred, BIO, Lenient)
	strict, _ := NER(gold, pred, BIO, Strict)
	// lenient: 2 PER entities, both right; strict BIO: the I-PER span is dropped.
	nearScores(t, "lenient micro", lenient.Micro, 1, 1, 1, 2)
	nearScores(t, "strict micro", strict.Micro, 1, 1, 1, 1)
}

func TestEntityCountsMergeAcrossShards(t *testing.T) {
	whole, err := NER(nerGold, nerPred, BIO, Lenient)
	if err != nil {
		t.Fatal(err)
	}
	a, b := NewEntityCounts(BIO, Lenient), NewEntityCounts(BIO, Lenient)
	if err := a.Add(nerGold[0], nerPred[0]); err != nil {
		t.Fatal(err)
	}
	if err := b.Add(nerGold[1], nerPred[1]); err != nil {
		t.Fatal(err)
	}
	blob, _ := json.Marshal(b)
	var remote EntityCounts
	if err := json.Unmarshal(blob, &remote); err != nil {
		t.Fatal(err)
	}
	if err := a.Merge(&remote); err != nil {
		t.Fatal(err)
	}
	if got := a.Report().Table(6); got != whole.Table(6) {
		t.Errorf("merged\n%s\nwhole\n%s", got, whole.Table(6))
	}
	if err := a.Merge(NewEntityCounts(IOB1, Strict)); err == nil {
		t.Error("merging counts of another scheme succeeded")
	}
}

func BenchmarkEntityCountsAdd(b *testing.B) {
	gold := split("O B-PER I-PER O O B-LOC O B-ORG I-ORG I-ORG O O O B-MISC O O B-PER O O O O O O O B-LOC I-LOC O O O O O O")
	pred := split("O B-PER I-PER O O B-ORG O B-ORG I-ORG O O O O B-MISC O O B-PER I-PER O O O O O O B-LOC I-LOC O O O O O O")
	c := NewEntityCounts(BIO, Lenient)
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Add(gold, pred); err != nil {
			b.Fatal(err)
		}
	}
}

// sharedData is the team's real-data folder, relative to this package.
const sharedData = "../../shared/data"

func readShared(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(sharedData, rel))
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("real data %s not present (it lives in /work/shared/data)", rel)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// WNUT-17 test tags against a deterministic corruption of them (every fifth
// token replaced from a cycle of tags, which makes I- after O, type breaks and
// stray B- spans). The expected numbers come from seqeval's own code
// (get_entities for the default mode, scheme.IOB2 for strict) run on the same
// input.
func TestNERRealWNUT17MatchesSeqeval(t *testing.T) {
	var gold [][]string
	var cur []string
	for line := range strings.Lines(string(readShared(t, "wnut17/emerging.test.annotated"))) {
		line = strings.TrimRight(line, "\n")
		if strings.TrimSpace(line) == "" {
			if cur != nil {
				gold, cur = append(gold, cur), nil
			}
			continue
		}
		cur = append(cur, line[strings.LastIndexByte(line, '\t')+1:])
	}
	if cur != nil {
		gold = append(gold, cur)
	}
	noise := []string{"O", "B-person", "I-person", "I-location", "B-group"}
	n := 0
	pred := make([][]string, len(gold))
	for k, s := range gold {
		for _, tag := range s {
			if n%5 == 0 {
				tag = noise[n/5%5]
			}
			pred[k] = append(pred[k], tag)
			n++
		}
	}
	if len(gold) != 1287 || n != 23394 {
		t.Fatalf("read %d sentences, %d tokens; want 1287, 23394", len(gold), n)
	}
	type row struct {
		label   string
		p, r, f float64
		support int64
	}
	for _, tc := range []struct {
		mode                   Mode
		rows                   []row
		micro, macro, weighted [3]float64
	}{
		{Lenient, []row{
			{"corporation", 0.86206896551724133, 0.75757575757575757, 0.80645161290322576, 66},
			{"creative-work", 0.46794871794871795, 0.5140845070422535, 0.48993288590604028, 142},
			{"group", 0.1166044776119403, 0.75757575757575757, 0.20210185933710592, 165},
			{"location", 0.1019047619047619, 0.71333333333333337, 0.17833333333333332, 150},
			{"person", 0.15571557155715571, 0.80652680652680653, 0.26103357223689178, 429},
			{"product", 0.61904761904761907, 0.61417322834645671, 0.61660079051383399, 127},
		},
			[3]float64{0.16631084543125535, 0.72196478220574611, 0.27034530626409858},
			[3]float64{0.38721501893123939, 0.69387823173339414, 0.42574234237173852},
			[3]float64{0.28108595976052619, 0.72196478220574611, 0.34586171077458439}},
		{Strict, []row{
			{"corporation", 0.90909090909090906, 0.75757575757575757, 0.82644628099173556, 66},
			{"creative-work", 0.65765765765765771, 0.5140845070422535, 0.57707509881422925, 142},
			{"group", 0.11759172154280338, 0.75757575757575757, 0.20358306188925079, 165},
			{"location", 0.81666666666666665, 0.65333333333333332, 0.72592592592592597, 150},
			{"person", 0.25989138867339023, 0.78088578088578087, 0.38998835855646108, 429},
			{"product", 0.76470588235294112, 0.61417322834645671, 0.68122270742358071, 127},
		},
			[3]float64{0.277007299270073, 0.70342910101946243, 0.39748625294579737},
			[3]float64{0.58760070433072797, 0.67960472745988998, 0.56737357226686391},
			[3]float64{0.46700748307845957, 0.70342910101946243, 0.49378174452382473}},
	} {
		r, err := NER(gold, pred, BIO, tc.mode)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.PerClass) != len(tc.rows) {
			t.Fatalf("mode %d: %d types, want %d", tc.mode, len(r.PerClass), len(tc.rows))
		}
		for i, w := range tc.rows {
			g := r.PerClass[i]
			if g.Label != w.label {
				t.Fatalf("mode %d: type %d is %q, want %q", tc.mode, i, g.Label, w.label)
			}
			nearScores(t, w.label, g.Scores, w.p, w.r, w.f, w.support)
		}
		nearScores(t, "micro", r.Micro, tc.micro[0], tc.micro[1], tc.micro[2], 1079)
		nearScores(t, "macro", r.Macro, tc.macro[0], tc.macro[1], tc.macro[2], 1079)
		nearScores(t, "weighted", r.Weighted, tc.weighted[0], tc.weighted[1], tc.weighted[2], 1079)
	}
}
