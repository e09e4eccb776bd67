package metrics

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Scheme is a tagging scheme for entity spans.
type Scheme int

const (
	// BIO (IOB2): every entity starts with B-.
	BIO Scheme = iota
	// IOB1: entities start with I-; B- only separates two adjacent entities of
	// the same type.
	IOB1
)

func (s Scheme) String() string {
	switch s {
	case BIO:
		return "BIO"
	case IOB1:
		return "IOB1"
	}
	return fmt.Sprintf("Scheme(%d)", int(s))
}

// Mode selects how ill-formed tag sequences are read.
type Mode int

const (
	// Lenient is seqeval's default mode (conlleval compatible): an I- after O
	// or after another type starts an entity. It reads BIO and IOB1 alike.
	Lenient Mode = iota
	// Strict is seqeval's mode="strict": only spans well formed under the
	// scheme count, ill-formed ones are dropped.
	Strict
)

// Entity is a typed span of tokens [Start, End).
type Entity struct {
	Type  string `json:"type"`
	Start int    `json:"start"`
	End   int    `json:"end"`
}

// tag is a parsed tag: prefix 'B', 'I' or 'O' and the entity type.
type tag struct {
	prefix byte
	typ    string
}

var outside = tag{'O', "_"}

// parseTag accepts O, B-TYPE, I-TYPE, and bare B / I (type "_", as seqeval).
func parseTag(s string) (tag, bool) {
	switch {
	case s == "O":
		return outside, true
	case s == "B" || s == "I":
		return tag{s[0], "_"}, true
	case len(s) > 2 && (s[0] == 'B' || s[0] == 'I') && s[1] == '-':
		return tag{s[0], s[2:]}, true
	}
	return tag{}, false
}

// Entities decodes the entity spans of one sentence.
func Entities(tags []string, scheme Scheme, mode Mode) ([]Entity, error) {
	var d decoder
	return d.decode(nil, tags, scheme, mode)
}

// decoder holds a reusable parse buffer so that streaming NER evaluation does
// not allocate per sentence.
type decoder struct{ parsed []tag }

func (d *decoder) decode(dst []Entity, tags []string, scheme Scheme, mode Mode) ([]Entity, error) {
	if scheme != BIO && scheme != IOB1 {
		return nil, fmt.Errorf("metrics: unknown tagging scheme %v", scheme)
	}
	d.parsed = d.parsed[:0]
	for i, s := range tags {
		t, ok := parseTag(s)
		if !ok {
			return nil, fmt.Errorf("metrics: token %d: tag %q is not O, B-TYPE or I-TYPE", i, s)
		}
		d.parsed = append(d.parsed, t)
	}
	// A trailing O closes the last entity, as in seqeval.
	d.parsed = append(d.parsed, outside)
	if mode == Strict {
		return strictEntities(dst, d.parsed, scheme), nil
	}
	return lenientEntities(dst, d.parsed), nil
}

// lenientEntities is seqeval's get_entities restricted to B/I/O.
func lenientEntities(dst []Entity, ts []tag) []Entity {
	prev := tag{'O', ""}
	begin := 0
	for i, t := range ts {
		end := (prev.prefix == 'B' || prev.prefix == 'I') && (t.prefix != 'I' || prev.typ != t.typ)
		if end {
			dst = append(dst, Entity{prev.typ, begin, i})
		}
		start := t.prefix == 'B' || (t.prefix == 'I' && (prev.prefix == 'O' || prev.typ != t.typ))
		if start {
			begin = i
		}
		prev = t
	}
	return dst
}

// strictEntities follows seqeval.scheme.Tokens.entities: a span starts where
// the scheme's start pattern matches, extends while the inside pattern
// matches, and counts only if the end pattern matches where it stops.
func strictEntities(dst []Entity, ts []tag, scheme Scheme) []Entity {
	var isStart, isEnd func(prev, cur tag) bool
	if scheme == BIO {
		isStart, isEnd = bioStart, bioEnd
	} else {
		isStart, isEnd = iob1Start, iob1End
	}
	prev := outside
	for i := 0; i < len(ts); {
		cur := ts[i]
		if isStart(prev, cur) {
			end := i + 1
			for p := cur; end < len(ts) && isInside(p, ts[end]); end++ {
				p = ts[end]
			}
			if isEnd(ts[end-1], ts[end]) {
				dst = append(dst, Entity{cur.typ, i, end})
			}
			i = end
		} else {
			i++
		}
		prev = ts[i-1]
	}
	return dst
}

// isInside is the same for BIO and IOB1: I- continues B- or I- of its type.
func isInside(prev, cur tag) bool {
	return cur.prefix == 'I' && prev.prefix != 'O' && prev.typ == cur.typ
}

func bioStart(_, cur tag) bool { return cur.prefix == 'B' }

func bioEnd(prev, cur tag) bool {
	switch prev.prefix {
	case 'B', 'I':
		return cur.prefix == 'O' || cur.prefix == 'B' || prev.typ != cur.typ
	}
	return false
}

func iob1Start(prev, cur tag) bool {
	same := prev.typ == cur.typ
	switch {
	case cur.prefix == 'I':
		return prev.prefix == 'O' || prev.prefix == 'B' || (prev.prefix == 'I' && !same)
	case cur.prefix == 'B':
		return prev.prefix != 'O' && same
	}
	return false
}

func iob1End(prev, cur tag) bool {
	same := prev.typ == cur.typ
	switch prev.prefix {
	case 'I':
		return cur.prefix == 'O' || cur.prefix == 'B' || !same
	case 'B':
		return cur.prefix == 'O' || (cur.prefix == 'I' && !same) || (cur.prefix == 'B' && same)
	}
	return false
}

// TypeCounts are the entity counts of one type.
type TypeCounts struct {
	TP   int64 `json:"tp"`
	Pred int64 `json:"pred"`
	Gold int64 `json:"gold"`
}

// EntityCounts accumulates entity-level NER counts over sentences, mergeable
// across shards. An entity is right only if type, start and end all match.
// Not safe for concurrent use.
type EntityCounts struct {
	Scheme        Scheme                `json:"scheme"`
	Mode          Mode                  `json:"mode"`
	Types         map[string]TypeCounts `json:"types"`
	Tokens        int64                 `json:"tokens"`
	TokensCorrect int64                 `json:"tokens_correct"`

	dec        decoder
	gold, pred []Entity
}

// NewEntityCounts returns empty counts.
func NewEntityCounts(scheme Scheme, mode Mode) *EntityCounts {
	return &EntityCounts{Scheme: scheme, Mode: mode, Types: map[string]TypeCounts{}}
}

// Add counts one sentence's gold and predicted tags.
func (c *EntityCounts) Add(gold, pred []string) error {
	if len(gold) != len(pred) {
		return fmt.Errorf("metrics: %d gold tags but %d predicted", len(gold), len(pred))
	}
	var err error
	if c.gold, err = c.dec.decode(c.gold[:0], gold, c.Scheme, c.Mode); err != nil {
		return fmt.Errorf("gold: %w", err)
	}
	if c.pred, err = c.dec.decode(c.pred[:0], pred, c.Scheme, c.Mode); err != nil {
		return fmt.Errorf("prediction: %w", err)
	}
	for i := range gold {
		if gold[i] == pred[i] {
			c.TokensCorrect++
		}
	}
	c.Tokens += int64(len(gold))
	for _, e := range c.gold {
		c.add(e.Type, TypeCounts{Gold: 1})
	}
	// Both lists are ordered by position and hold no overlapping spans, so
	// one merge pass finds the exact matches.
	i := 0
	for _, p := range c.pred {
		d := TypeCounts{Pred: 1}
		for i < len(c.gold) && c.gold[i].Start < p.Start {
			i++
		}
		if i < len(c.gold) && c.gold[i] == p {
			d.TP = 1
		}
		c.add(p.Type, d)
	}
	return nil
}

func (c *EntityCounts) add(typ string, d TypeCounts) {
	if c.Types == nil {
		c.Types = map[string]TypeCounts{}
	}
	t, ok := c.Types[typ]
	if !ok {
		typ = strings.Clone(typ) // the key must not pin the caller's tag strings
	}
	t.TP += d.TP
	t.Pred += d.Pred
	t.Gold += d.Gold
	c.Types[typ] = t
}

// Merge adds the counts of o, which must use the same scheme and mode.
func (c *EntityCounts) Merge(o *EntityCounts) error {
	if c.Scheme != o.Scheme || c.Mode != o.Mode {
		return fmt.Errorf("metrics: merging NER counts of %v/mode %d into %v/mode %d", o.Scheme, o.Mode, c.Scheme, c.Mode)
	}
	for typ, t := range o.Types {
		c.add(typ, t)
	}
	c.Tokens += o.Tokens
	c.TokensCorrect += o.TokensCorrect
	return nil
}

// Report computes seqeval's classification_report: one row per entity type
// seen in gold or predictions (sorted), micro, macro and weighted averages.
// Accuracy is token-level (seqeval's accuracy_score).
func (c *EntityCounts) Report() Report {
	r := Report{Accuracy: ratio(c.TokensCorrect, c.Tokens)}
	types := slices.Sorted(maps.Keys(c.Types))
	all := make([]counts, len(types))
	for i, typ := range types {
		t := c.Types[typ]
		all[i] = counts{tp: t.TP, pred: t.Pred, gold: t.Gold}
		r.PerClass = append(r.PerClass, ClassScores{Label: typ, Scores: all[i].scores()})
	}
	r.Micro, r.Macro, r.Weighted = averages(r.PerClass, all)
	return r
}

// NER scores tagged sentences in one call.
func NER(gold, pred [][]string, scheme Scheme, mode Mode) (Report, error) {
	if len(gold) != len(pred) {
		return Report{}, fmt.Errorf("metrics: %d gold sentences but %d predicted", len(gold), len(pred))
	}
	c := NewEntityCounts(scheme, mode)
	for i := range gold {
		if err := c.Add(gold[i], pred[i]); err != nil {
			return Report{}, fmt.Errorf("sentence %d: %w", i, err)
		}
	}
	return c.Report(), nil
}
