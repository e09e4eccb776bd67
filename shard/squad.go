package shard

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// A SQuAD file is {"data": [{"title": ..., "paragraphs": [{"context": ...,
// "qas": [...]}, ...]}, ...], "version": ...}. The frame is the paragraph
// object: its questions need its context, and a reader can start at any
// paragraph because the JSON nesting above a paragraph is always the same.

type jrole uint8

const (
	roleSkip jrole = iota // a value outside the path to the paragraphs
	roleRoot
	roleData
	roleArticle
	roleParagraphs
)

func (r jrole) String() string {
	return [...]string{"a value", "the top-level object", `the "data" array`, "an article object", `a "paragraphs" array`}[r]
}

type jstate uint8

const (
	stOpen  jstate = iota // after '{' or '['
	stKey                 // after an object key: ':' is next
	stColon               // after ':': a value is next
	stValue               // after a value: ',' or the closing bracket is next
	stComma               // after ',': a key or an array value is next
)

type jctx struct {
	arr       bool
	role      jrole
	st        jstate
	valueRole jrole // role of the value after the current key
}

// squadSplitter frames paragraph objects, checking the JSON structure around
// them (not inside them: that is the parser's job) and skipping other values.
type squadSplitter struct {
	stack   []jctx
	done    bool // the top-level object is closed
	sawData bool
}

// newSquadSplitter starts at the file's beginning, or at a paragraph object.
func newSquadSplitter(atParagraph bool) *squadSplitter {
	if !atParagraph {
		return &squadSplitter{}
	}
	return &squadSplitter{sawData: true, stack: []jctx{
		{role: roleRoot, st: stValue},
		{arr: true, role: roleData, st: stValue},
		{role: roleArticle, st: stValue},
		{arr: true, role: roleParagraphs, st: stComma},
	}}
}

func (s *squadSplitter) split(data []byte, atEOF bool) (skip, n int, err error) {
	i := 0
	for {
		for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
			i++
		}
		if i == len(data) {
			if atEOF {
				switch {
				case len(s.stack) > 0:
					return i, 0, &syntaxError{i, fmt.Sprintf("truncated JSON: the file ends inside %s", s.stack[len(s.stack)-1].role)}
				case !s.done:
					return i, 0, &syntaxError{i, "empty file"}
				case !s.sawData:
					return i, 0, &syntaxError{i, `no "data" array: not a SQuAD file`}
				}
			}
			return i, 0, nil
		}
		c := data[i]
		if len(s.stack) == 0 {
			if s.done {
				return i, 0, &syntaxError{i, "data after the end of the JSON document"}
			}
			if c != '{' {
				return i, 0, &syntaxError{i, `want a JSON object {"data": [...]}`}
			}
			s.stack = append(s.stack, jctx{role: roleRoot})
			i++
			continue
		}
		top := &s.stack[len(s.stack)-1]
		var m int
		switch {
		case top.st == stValue:
			end := byte('}')
			if top.arr {
				end = ']'
			}
			switch c {
			case ',':
				top.st = stComma
			case end:
				s.stack = s.stack[:len(s.stack)-1]
				s.done = len(s.stack) == 0
			default:
				return i, 0, &syntaxError{i, fmt.Sprintf("want ',' or '%c' in %s, found %q", end, top.role, c)}
			}
			m = 1
		case top.arr && c == ']' && top.st == stOpen:
			s.stack = s.stack[:len(s.stack)-1]
			m = 1
		case top.arr:
			if c != '{' {
				return i, 0, &syntaxError{i, fmt.Sprintf("want an object in %s, found %q", top.role, c)}
			}
			if top.role == roleData {
				top.st = stValue
				s.stack = append(s.stack, jctx{role: roleArticle})
				m = 1
				break
			}
			if m = valueEnd(data[i:], atEOF); m < 0 {
				return s.short(i, atEOF, "a paragraph object")
			}
			top.st = stValue
			return i, m, nil
		case c == '}' && top.st == stOpen:
			s.stack = s.stack[:len(s.stack)-1]
			s.done = len(s.stack) == 0
			m = 1
		case top.st == stOpen || top.st == stComma:
			if c != '"' {
				return i, 0, &syntaxError{i, fmt.Sprintf("want a key in %s, found %q", top.role, c)}
			}
			if m = valueEnd(data[i:], atEOF); m < 0 {
				return s.short(i, atEOF, "a key")
			}
			top.valueRole = roleSkip
			switch key := data[i : i+m]; {
			case top.role == roleRoot && keyIs(key, "data"):
				top.valueRole = roleData
			case top.role == roleArticle && keyIs(key, "paragraphs"):
				top.valueRole = roleParagraphs
			}
			top.st = stKey
		case top.st == stKey:
			if c != ':' {
				return i, 0, &syntaxError{i, fmt.Sprintf("want ':' after a key in %s, found %q", top.role, c)}
			}
			top.st, m = stColon, 1
		default: // stColon
			if top.valueRole == roleSkip {
				if m = valueEnd(data[i:], atEOF); m < 0 {
					return s.short(i, atEOF, "a value")
				}
				top.st = stValue
				break
			}
			if c != '[' {
				return i, 0, &syntaxError{i, fmt.Sprintf("want an array for %s, found %q", top.valueRole, c)}
			}
			top.st = stValue
			s.sawData = s.sawData || top.valueRole == roleData
			s.stack = append(s.stack, jctx{arr: true, role: top.valueRole})
			m = 1
		}
		i += m
	}
}

// short handles a value that runs past the data: wait for more, or at EOF
// report the truncation.
func (s *squadSplitter) short(i int, atEOF bool, what string) (int, int, error) {
	if atEOF {
		return i, 0, &syntaxError{i, fmt.Sprintf("truncated JSON: the file ends inside %s that starts here", what)}
	}
	return i, 0, nil
}

func keyIs(quoted []byte, key string) bool {
	if bytes.IndexByte(quoted, '\\') < 0 {
		return string(quoted[1:len(quoted)-1]) == key
	}
	var k string
	return json.Unmarshal(quoted, &k) == nil && k == key
}

// valueEnd returns the length of the JSON value at the start of b, or -1 if b
// does not hold all of it. It finds the value's end and nothing more: the
// values it frames are checked when decoded, or are of no interest.
func valueEnd(b []byte, atEOF bool) int {
	switch b[0] {
	case '"':
		for i := 1; i < len(b); i++ {
			switch b[i] {
			case '\\':
				i++
			case '"':
				return i + 1
			}
		}
		return -1
	case '{', '[':
		depth := 0
		for i := 0; i < len(b); i++ {
			switch b[i] {
			case '"':
				m := valueEnd(b[i:], atEOF)
				if m < 0 {
					return -1
				}
				i += m - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return -1
	}
	for i, c := range b {
		switch c {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			return i
		}
	}
	if atEOF {
		return len(b)
	}
	return -1
}

type squadParagraph struct {
	Context *string   `json:"context"`
	QAs     []squadQA `json:"qas"`
}

type squadQA struct {
	ID       string `json:"id"`
	Question string `json:"question"`
	Answers  []struct {
		Text  string `json:"text"`
		Start *int   `json:"answer_start"`
	} `json:"answers"`
	IsImpossible bool `json:"is_impossible"`
}

// squad parses a paragraph frame into one record per question.
type squad struct {
	file  string
	para  squadParagraph
	ascii bool
	fr    frame
}

func (p *squad) load(fr frame, text []byte) (int, error) {
	p.fr = fr
	p.para = squadParagraph{}
	if err := json.Unmarshal(text, &p.para); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return 0, frameErr(p.file, fr, text, 0, te.Field, "want %s, got a JSON %s (paragraph skipped with its questions)", te.Type, te.Value)
		}
		return 0, frameErr(p.file, fr, text, 0, "", "invalid paragraph object (skipped with its questions): %v", err)
	}
	if p.para.Context == nil {
		return 0, frameErr(p.file, fr, text, 0, "context", "missing (paragraph skipped with its questions)")
	}
	p.ascii = true
	for _, c := range []byte(*p.para.Context) {
		if c >= utf8.RuneSelf {
			p.ascii = false
			break
		}
	}
	return len(p.para.QAs), nil
}

func (p *squad) record(i int, rec *Record) error {
	qa := &p.para.QAs[i]
	bad := func(field, format string, args ...any) error {
		return &Error{Pos: Pos{File: p.file, Offset: p.fr.off, Index: i, Line: p.fr.line},
			Field: fmt.Sprintf("qas[%d]%s", i, field), Msg: fmt.Sprintf(format, args...)}
	}
	ctx := *p.para.Context
	switch {
	case qa.ID == "":
		return bad(".id", "missing")
	case strings.TrimSpace(qa.Question) == "":
		return bad(".question", "missing or empty")
	case qa.IsImpossible && len(qa.Answers) > 0:
		return bad(".answers", "is_impossible is true, yet there are %d answer(s)", len(qa.Answers))
	case !qa.IsImpossible && len(qa.Answers) == 0:
		return bad(".answers", "none; a question without an answer needs is_impossible (SQuAD v2.0)")
	}
	for j, a := range qa.Answers {
		field := fmt.Sprintf(".answers[%d]", j)
		if a.Text == "" {
			return bad(field+".text", "missing or empty")
		}
		if a.Start == nil {
			return bad(field+".answer_start", "missing")
		}
		b := p.byteOffset(ctx, *a.Start)
		if b < 0 {
			return bad(field+".answer_start", "%d is outside the context (%d characters)", *a.Start, utf8.RuneCountInString(ctx))
		}
		if !strings.HasPrefix(ctx[b:], a.Text) {
			return bad(field+".text", "%q is not in the context at character %d", a.Text, *a.Start)
		}
		rec.Answers = append(rec.Answers, Answer{Text: a.Text, Start: *a.Start})
	}
	rec.ID, rec.Question, rec.Context, rec.Impossible = qa.ID, qa.Question, ctx, qa.IsImpossible
	return nil
}

// byteOffset converts a character offset into ctx to a byte offset, or -1.
func (p *squad) byteOffset(ctx string, runes int) int {
	if runes < 0 {
		return -1
	}
	if p.ascii {
		if runes > len(ctx) {
			return -1
		}
		return runes
	}
	n := 0
	for b := range ctx {
		if n == runes {
			return b
		}
		n++
	}
	if n == runes {
		return len(ctx)
	}
	return -1
}
