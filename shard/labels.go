package shard

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
)

// LabelSet numbers class names (or NER tags) 0..n-1.
type LabelSet struct {
	names []string
	ids   map[string]int
}

// NewLabelSet numbers names in the given order.
func NewLabelSet(names []string) (*LabelSet, error) {
	s := &LabelSet{names: slices.Clone(names), ids: make(map[string]int, len(names))}
	for i, n := range names {
		if _, dup := s.ids[n]; dup {
			return nil, fmt.Errorf("label %q listed twice", n)
		}
		if n == "" {
			return nil, fmt.Errorf("label %d is empty", i)
		}
		s.ids[n] = i
	}
	return s, nil
}

// CollectLabels reads src to the end and numbers every label and tag it holds
// in sorted order: numerically when all are integers ("2" before "10"),
// else bytewise. The same data always gives the same numbering.
func CollectLabels(src Source) (*LabelSet, error) {
	seen := map[string]bool{}
	err := eachRecord(src, func(rec *Record) error {
		for _, l := range rec.Labels {
			seen[l] = true
		}
		for _, t := range rec.Tags {
			seen[t] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(seen))
	numeric := true
	for n := range seen {
		names = append(names, n)
		if _, err := strconv.ParseInt(n, 10, 64); err != nil {
			numeric = false
		}
	}
	if numeric {
		slices.SortFunc(names, func(a, b string) int {
			x, _ := strconv.ParseInt(a, 10, 64)
			y, _ := strconv.ParseInt(b, 10, 64)
			return cmp.Compare(x, y)
		})
	} else {
		slices.Sort(names)
	}
	return NewLabelSet(names)
}

// CollectScores reads src, whose labels are regression scores (Spec.Scores), to
// the end and names its outputs: n scores per record, the same n in every record
// (an *Error at the first that differs), are outputs LABEL_0..LABEL_n-1, as
// transformers names a regression head's.
func CollectScores(src Source) (*LabelSet, error) {
	n := -1
	err := eachRecord(src, func(rec *Record) error {
		if n < 0 {
			n = len(rec.Labels)
		} else if len(rec.Labels) != n {
			return &Error{Pos: rec.Pos, Field: "label", Msg: fmt.Sprintf("%d scores, the records before have %d", len(rec.Labels), n)}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	names := make([]string, max(n, 0))
	for i := range names {
		names[i] = "LABEL_" + strconv.Itoa(i)
	}
	return NewLabelSet(names)
}

// eachRecord calls f with each record of src, to the end or f's first error.
func eachRecord(src Source, f func(*Record) error) error {
	var rec Record
	for {
		err := src.Next(&rec)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := f(&rec); err != nil {
			return err
		}
	}
}

// Names returns the labels in id order.
func (s *LabelSet) Names() []string { return slices.Clone(s.names) }

// Len is the number of labels.
func (s *LabelSet) Len() int { return len(s.names) }

// ID returns a label's id.
func (s *LabelSet) ID(name string) (int, bool) {
	id, ok := s.ids[name]
	return id, ok
}

// IDs appends to dst the ids of rec's labels, or of its tags for a token
// record. An unknown label is an *Error at the record's position.
func (s *LabelSet) IDs(dst []int, rec *Record) ([]int, error) {
	names, field := rec.Labels, "label"
	if len(rec.Tokens) > 0 {
		names, field = rec.Tags, "tags"
	}
	for i, n := range names {
		id, ok := s.ids[n]
		if !ok {
			f := field
			if len(names) > 1 {
				f = fmt.Sprintf("%s[%d]", field, i)
			}
			return dst, &Error{Pos: rec.Pos, Field: f, Msg: fmt.Sprintf("unknown label %q (known: %s)", n, quoteList(s.names[:min(len(s.names), 20)]))}
		}
		dst = append(dst, id)
	}
	return dst, nil
}
