package shard

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// parser turns decoded frames into records.
type parser interface {
	// load takes a frame and its text decoded to UTF-8 and returns how many
	// records the frame holds.
	load(fr frame, text []byte) (int, error)
	// record fills rec, already reset, with record i of the loaded frame.
	record(i int, rec *Record) error
}

// frameErr builds the error for a problem at text[at] in a frame's text.
func frameErr(file string, fr frame, text []byte, at int, field, format string, args ...any) error {
	line := fr.line
	if at > 0 {
		line += bytes.Count(text[:at], []byte{'\n'})
	}
	return &Error{Pos: Pos{File: file, Offset: fr.off, Line: line}, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// interner returns one string per distinct label or tag, so that reading them
// does not allocate per record.
type interner struct {
	m    map[string]string
	last string // labels repeat: "O" after "O"
}

const maxInterned = 1 << 12

func newInterner() *interner { return &interner{m: map[string]string{}} }

func (in *interner) get(b []byte) string {
	if string(b) == in.last {
		return in.last
	}
	s, ok := in.m[string(b)]
	if !ok {
		s = string(b)
		if len(in.m) < maxInterned {
			in.m[s] = s
		}
	}
	in.last = s
	return s
}

// appendLabels appends the labels in v, split at sep when sep is set; with scores
// (Spec.Scores) each must be a finite number.
func appendLabels(dst []string, v []byte, sep string, in *interner, scores bool) ([]string, error) {
	if sep == "" {
		v = bytes.TrimSpace(v)
		if len(v) == 0 {
			return dst, fmt.Errorf("empty label")
		}
		if err := checkScore(v, scores); err != nil {
			return dst, err
		}
		return append(dst, in.get(v)), nil
	}
	for part := range bytes.SplitSeq(v, []byte(sep)) {
		part = bytes.TrimSpace(part)
		if len(part) == 0 {
			return dst, fmt.Errorf("empty label in %q (labels are separated by %q)", v, sep)
		}
		if err := checkScore(part, scores); err != nil {
			return dst, err
		}
		dst = append(dst, in.get(part))
	}
	return dst, nil
}

// checkScore refuses a label that is not a finite number, when labels are scores.
func checkScore(v []byte, scores bool) error {
	if !scores {
		return nil
	}
	_, err := ParseScore(string(v))
	return err
}

// ParseScore reads a regression label (Spec.Scores): a finite number.
func ParseScore(s string) (float32, error) {
	f, err := strconv.ParseFloat(s, 32)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("want a number (a regression score), got %q", s)
	}
	return float32(f), nil
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}
