package metrics

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// SQuADVersion selects which official evaluation script to follow.
type SQuADVersion int

const (
	// SQuAD11 follows evaluate-v1.1.py.
	SQuAD11 SQuADVersion = 1
	// SQuAD20 follows evaluate-v2.0.py: gold answers that normalize to
	// nothing are dropped, a question without answers has the single gold
	// answer "", and an empty prediction scores F1 1 against it.
	SQuAD20 SQuADVersion = 2
)

// QACounts accumulates SQuAD exact match and F1 over questions, split by
// whether the question has an answer (SQuAD 2.0's HasAns/NoAns). Mergeable.
type QACounts struct {
	Version SQuADVersion `json:"version"`
	HasAns  QASums       `json:"has_ans"`
	NoAns   QASums       `json:"no_ans"`
}

// QASums are sums of per-question scores in [0,1].
type QASums struct {
	Exact float64 `json:"exact"`
	F1    float64 `json:"f1"`
	Total int64   `json:"total"`
}

func (s *QASums) add(o QASums) {
	s.Exact += o.Exact
	s.F1 += o.F1
	s.Total += o.Total
}

// QAResult is the official scripts' output: percentages over Total questions.
type QAResult struct {
	Exact float64 `json:"exact"`
	F1    float64 `json:"f1"`
	Total int64   `json:"total"`

	HasAnsExact float64 `json:"HasAns_exact"`
	HasAnsF1    float64 `json:"HasAns_f1"`
	HasAnsTotal int64   `json:"HasAns_total"`
	NoAnsExact  float64 `json:"NoAns_exact"`
	NoAnsF1     float64 `json:"NoAns_f1"`
	NoAnsTotal  int64   `json:"NoAns_total"`
}

// NewQACounts returns empty counts for a script version.
func NewQACounts(v SQuADVersion) *QACounts { return &QACounts{Version: v} }

// Add scores one prediction against the question's gold answers (none for an
// unanswerable SQuAD 2.0 question): the best exact match and the best F1 over
// the gold answers, as the official scripts do.
func (c *QACounts) Add(pred string, golds []string) {
	var em, f1 float64
	normPred := NormalizeAnswer(pred)
	predToks := strings.FieldsFunc(normPred, isPySpace)
	score := func(gold string) {
		normGold := NormalizeAnswer(gold)
		if normGold == normPred {
			em = 1
		}
		f1 = max(f1, tokenF1(predToks, strings.FieldsFunc(normGold, isPySpace), c.Version))
	}
	if c.Version == SQuAD20 {
		n := 0
		for _, g := range golds {
			if NormalizeAnswer(g) != "" {
				score(g)
				n++
			}
		}
		if n == 0 {
			score("")
		}
	} else {
		for _, g := range golds {
			score(g)
		}
	}
	s := QASums{Exact: em, F1: f1, Total: 1}
	if len(golds) > 0 {
		c.HasAns.add(s)
	} else {
		c.NoAns.add(s)
	}
}

// Merge adds the counts of o, which must follow the same script version.
func (c *QACounts) Merge(o *QACounts) error {
	if c.Version != o.Version {
		return fmt.Errorf("metrics: merging SQuAD v%d counts into v%d counts", o.Version, c.Version)
	}
	c.HasAns.add(o.HasAns)
	c.NoAns.add(o.NoAns)
	return nil
}

// Result returns exact match and F1 in percent.
func (c *QACounts) Result() QAResult {
	var all QASums
	all.add(c.HasAns)
	all.add(c.NoAns)
	pct := func(s QASums) (float64, float64) {
		if s.Total == 0 {
			return 0, 0
		}
		return 100 * s.Exact / float64(s.Total), 100 * s.F1 / float64(s.Total)
	}
	r := QAResult{Total: all.Total, HasAnsTotal: c.HasAns.Total, NoAnsTotal: c.NoAns.Total}
	r.Exact, r.F1 = pct(all)
	r.HasAnsExact, r.HasAnsF1 = pct(c.HasAns)
	r.NoAnsExact, r.NoAnsF1 = pct(c.NoAns)
	return r
}

// tokenF1 is the official F1 over bags of normalized tokens. The scripts
// differ only when a side is empty: v1.1 scores 0, v2.0 scores 1 when both
// are empty.
func tokenF1(pred, gold []string, v SQuADVersion) float64 {
	if v == SQuAD20 && (len(pred) == 0 || len(gold) == 0) {
		if len(pred) == len(gold) {
			return 1
		}
		return 0
	}
	// Answers are a handful of tokens: a quadratic multiset intersection
	// beats building maps.
	used := make([]bool, len(gold))
	same := 0
	for _, p := range pred {
		for j, g := range gold {
			if !used[j] && g == p {
				used[j] = true
				same++
				break
			}
		}
	}
	if same == 0 {
		return 0
	}
	precision := float64(same) / float64(len(pred))
	recall := float64(same) / float64(len(gold))
	return 2 * precision * recall / (precision + recall)
}

// asciiPunctuation is Python's string.punctuation.
const asciiPunctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"

// NormalizeAnswer is the official normalize_answer: lower case, drop ASCII
// punctuation (Python's string.punctuation), replace the words a, an, the by a
// space (with Python's Unicode \b word boundaries), and collapse whitespace.
// Lower-casing is Go's per-rune mapping; Python differs on rare context rules
// (final sigma, dotted capital I).
func NormalizeAnswer(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range strings.ToLower(s) {
		if strings.ContainsRune(asciiPunctuation, r) {
			continue
		}
		b.WriteRune(r)
	}
	noPunct := b.String()

	b.Reset()
	for i := 0; i < len(noPunct); {
		j := i
		for j < len(noPunct) {
			r, n := utf8.DecodeRuneInString(noPunct[j:])
			if !isPyWord(r) {
				break
			}
			j += n
		}
		if j == i { // not a word character: copy it
			_, n := utf8.DecodeRuneInString(noPunct[i:])
			b.WriteString(noPunct[i : i+n])
			i += n
			continue
		}
		switch w := noPunct[i:j]; w {
		case "a", "an", "the":
			b.WriteByte(' ')
		default:
			b.WriteString(w)
		}
		i = j
	}
	return strings.Join(strings.FieldsFunc(b.String(), isPySpace), " ")
}

// isPyWord is Python's \w for str patterns: alphanumeric or underscore.
func isPyWord(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r) }

// isPySpace is Python's str.isspace, which str.split() uses: Go's Unicode
// White_Space plus the ASCII separators U+001C..U+001F.
func isPySpace(r rune) bool { return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f) }
