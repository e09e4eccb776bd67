package shard

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// jsonLines parses one JSON object per line. Field values: text and text_pair
// strings; a label as a string, an integer or an array of them (any number when the
// labels are scores); tokens an array of strings and tags an array of strings or
// integers.
type jsonLines struct {
	file                  string
	text, pair, label, id string
	negative, choices     string
	tokens, tags          string
	labelSep              string
	scores                bool
	labels                *interner
	obj                   map[string]json.RawMessage
	fr                    frame
	txt                   []byte
}

func newJSONLines(file string, s Spec) *jsonLines {
	return &jsonLines{file: file, text: s.Text, pair: s.TextPair, label: s.Label, id: s.ID, negative: s.Negative, choices: s.Choices,
		tokens: s.Tokens, tags: s.Tags, labelSep: s.LabelSep, scores: s.Scores, labels: newInterner()}
}

func (p *jsonLines) load(fr frame, text []byte) (int, error) {
	p.fr, p.txt = fr, text
	clear(p.obj)
	if err := json.Unmarshal(text, &p.obj); err != nil {
		return 0, frameErr(p.file, fr, text, 0, "", "invalid JSON object: %v", err)
	}
	return 1, nil
}

func (p *jsonLines) record(_ int, rec *Record) error {
	bad := func(field, format string, args ...any) error {
		return frameErr(p.file, p.fr, p.txt, 0, fmt.Sprintf("field %q", field), format, args...)
	}
	if p.id != "" {
		if v, ok := p.obj[p.id]; ok {
			id, err := scalar(v, false)
			if err != nil {
				return bad(p.id, "%v", err)
			}
			rec.ID = id
		}
	}
	if p.tokens != "" {
		toks, err := p.list(p.tokens, true)
		if err != nil {
			return bad(p.tokens, "%v", err)
		}
		tags, err := p.list(p.tags, false)
		if err != nil {
			return bad(p.tags, "%v", err)
		}
		if len(toks) != len(tags) {
			return bad(p.tags, "%d tags for %d tokens", len(tags), len(toks))
		}
		for i := range toks {
			rec.Tokens = append(rec.Tokens, toks[i])
			rec.Tags = append(rec.Tags, p.labels.get([]byte(tags[i])))
		}
		return nil
	}
	var err error
	if rec.Text, err = p.str(p.text, true); err != nil {
		return bad(p.text, "%v", err)
	}
	if p.pair != "" {
		if rec.TextPair, err = p.str(p.pair, true); err != nil {
			return bad(p.pair, "%v", err)
		}
	}
	if p.negative != "" {
		if rec.Negative, err = p.str(p.negative, true); err != nil {
			return bad(p.negative, "%v", err)
		}
	}
	if p.choices != "" {
		choices, err := p.list(p.choices, true)
		switch {
		case err != nil:
			return bad(p.choices, "%v", err)
		case len(choices) < 2:
			return bad(p.choices, "%d choices: want two or more", len(choices))
		}
		rec.Choices = append(rec.Choices, choices...)
	}
	if p.label == "" {
		return nil // unlabeled pairs
	}
	v, ok := p.obj[p.label]
	if !ok {
		return bad(p.label, "missing")
	}
	if len(v) > 0 && v[0] == '[' {
		var items []json.RawMessage
		if err := json.Unmarshal(v, &items); err != nil {
			return bad(p.label, "%v", err)
		}
		if len(items) == 0 {
			return bad(p.label, "empty label list")
		}
		for i, it := range items {
			s, err := scalar(it, p.scores)
			if err != nil {
				return bad(fmt.Sprintf("%s[%d]", p.label, i), "%v", err)
			}
			if rec.Labels, err = appendLabels(rec.Labels, []byte(s), "", p.labels, p.scores); err != nil {
				return bad(fmt.Sprintf("%s[%d]", p.label, i), "%v", err)
			}
		}
		return nil
	}
	s, err := scalar(v, p.scores)
	if err != nil {
		return bad(p.label, "%v", err)
	}
	if rec.Labels, err = appendLabels(rec.Labels, []byte(s), p.labelSep, p.labels, p.scores); err != nil {
		return bad(p.label, "%v", err)
	}
	return nil
}

func (p *jsonLines) str(name string, required bool) (string, error) {
	v, ok := p.obj[name]
	if !ok {
		if required {
			return "", fmt.Errorf("missing")
		}
		return "", nil
	}
	var s string
	if k := kind(v); k != "a string" || json.Unmarshal(v, &s) != nil { // Unmarshal takes null for ""
		return "", fmt.Errorf("want a string, got %s", k)
	}
	return s, nil
}

// list reads an array of strings, or of integers too unless onlyStrings.
func (p *jsonLines) list(name string, onlyStrings bool) ([]string, error) {
	v, ok := p.obj[name]
	if !ok {
		return nil, fmt.Errorf("missing")
	}
	var items []json.RawMessage
	if err := json.Unmarshal(v, &items); err != nil {
		return nil, fmt.Errorf("want an array, got %s", kind(v))
	}
	out := make([]string, len(items))
	for i, it := range items {
		var err error
		if onlyStrings {
			err = json.Unmarshal(it, &out[i])
		} else {
			out[i], err = scalar(it, false)
		}
		if err != nil || out[i] == "" {
			return nil, fmt.Errorf("item %d: want a non-empty string, got %s", i, it)
		}
	}
	return out, nil
}

// scalar returns a JSON string's value or an integer's digits, or with fractions any
// number's text.
func scalar(v json.RawMessage, fractions bool) (string, error) {
	switch k := kind(v); k {
	case "a string":
		var s string
		err := json.Unmarshal(v, &s)
		return s, err
	case "a number":
		if !fractions && bytes.ContainsAny(v, ".eE") {
			return "", fmt.Errorf("want a string or an integer, got the number %s", v)
		}
		return string(v), nil
	default:
		if fractions {
			return "", fmt.Errorf("want a number or a string, got %s", k)
		}
		return "", fmt.Errorf("want a string or an integer, got %s", k)
	}
}

func kind(v json.RawMessage) string {
	if len(v) == 0 {
		return "nothing"
	}
	switch v[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}
