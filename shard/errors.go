package shard

import (
	"fmt"
	"strings"
)

// Error is a problem at one place in an input file.
type Error struct {
	Pos Pos
	// Field names the column, JSON field or path at fault, such as
	// `column "label"` or `qas[2].answers[0].answer_start`; empty when the
	// record as a whole is.
	Field string
	Msg   string
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s:%d (byte %d): ", e.Pos.File, e.Pos.Line, e.Pos.Offset)
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// maxBadKept bounds the errors Bad keeps, so a file of garbage cannot exhaust
// memory; Count still counts them all.
const maxBadKept = 100

// Bad reports the bad records a reader skipped.
type Bad struct {
	Count int
	First []*Error // the first maxBadKept of them
}

func (b *Bad) add(e *Error) {
	b.Count++
	if len(b.First) < maxBadKept {
		b.First = append(b.First, e)
	}
}

func (b Bad) String() string {
	if b.Count == 0 {
		return "no bad records"
	}
	var s strings.Builder
	fmt.Fprintf(&s, "%d bad record(s) skipped", b.Count)
	for _, e := range b.First {
		s.WriteString("\n  ")
		s.WriteString(e.Error())
	}
	if b.Count > len(b.First) {
		fmt.Fprintf(&s, "\n  ... and %d more", b.Count-len(b.First))
	}
	return s.String()
}
