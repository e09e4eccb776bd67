package shard

import (
	"bytes"
	"fmt"
	"strconv"
)

// docStart marks a document boundary in CoNLL files; it separates sentences
// like a blank line does.
var docStart = []byte("-DOCSTART-")

func conllSeparator(line []byte) bool {
	return blank(line) || bytes.HasPrefix(line, docStart)
}

// conllSplitter frames one sentence: the lines up to a separator line.
type conllSplitter struct{}

func (conllSplitter) split(data []byte, atEOF bool) (skip, n int, err error) {
	for {
		l, line, ok := nextLine(data[skip:], atEOF)
		if !ok {
			return skip, 0, nil
		}
		if !conllSeparator(line) {
			break
		}
		skip += l
	}
	for {
		l, line, ok := nextLine(data[skip+n:], atEOF)
		if !ok {
			if atEOF {
				return skip, n, nil
			}
			return skip, 0, nil // the sentence may go on
		}
		if conllSeparator(line) {
			return skip, n, nil
		}
		n += l
	}
}

// conll parses a sentence, one token per line, into Tokens and Tags.
type conll struct {
	file        string
	delim       []byte // nil: a run of spaces and tabs
	tokCol, tag int    // negative counts from the end
	tags        *interner
	cols        [][]byte
	tokBuf      []byte
	ends        []int
	fr          frame
	txt         []byte
}

func newCoNLL(file string, s Spec) *conll {
	tok, _ := strconv.Atoi(s.Tokens) // checked by Validate
	tag, _ := strconv.Atoi(s.Tags)
	return &conll{file: file, delim: []byte(s.Delimiter), tokCol: tok, tag: tag, tags: newInterner()}
}

func (p *conll) load(fr frame, text []byte) (int, error) {
	p.fr, p.txt = fr, text
	return 1, nil
}

func (p *conll) record(_ int, rec *Record) error {
	// All tokens of a sentence share one string, so a sentence costs one
	// allocation for its tokens rather than one per token.
	p.tokBuf, p.ends = p.tokBuf[:0], p.ends[:0]
	at := 0
	for line := range bytes.Lines(p.txt) {
		cols := p.split(trimCR(bytes.TrimSuffix(line, []byte{'\n'})))
		tok, tag := col(cols, p.tokCol), col(cols, p.tag)
		if tok < 0 || tag < 0 || tok == tag {
			return frameErr(p.file, p.fr, p.txt, at, "", "%d column(s), want token column %d and tag column %d", len(cols), p.tokCol, p.tag)
		}
		if len(cols[tok]) == 0 {
			return frameErr(p.file, p.fr, p.txt, at, fmt.Sprintf("column %d", p.tokCol), "empty token")
		}
		if len(cols[tag]) == 0 {
			return frameErr(p.file, p.fr, p.txt, at, fmt.Sprintf("column %d", p.tag), "empty tag")
		}
		p.tokBuf = append(p.tokBuf, cols[tok]...)
		p.ends = append(p.ends, len(p.tokBuf))
		rec.Tags = append(rec.Tags, p.tags.get(cols[tag]))
		at += len(line)
	}
	all := string(p.tokBuf)
	start := 0
	for _, end := range p.ends {
		rec.Tokens = append(rec.Tokens, all[start:end])
		start = end
	}
	return nil
}

func (p *conll) split(line []byte) [][]byte {
	p.cols = p.cols[:0]
	if len(p.delim) > 0 {
		for f := range bytes.SplitSeq(line, p.delim) {
			p.cols = append(p.cols, f)
		}
		return p.cols
	}
	// Split at runs of spaces and tabs only: wider Unicode white space such
	// as U+00A0 can be part of a token.
	start := -1
	for i, c := range line {
		if c == ' ' || c == '\t' {
			if start >= 0 {
				p.cols = append(p.cols, line[start:i])
				start = -1
			}
		} else if start < 0 {
			start = i
		}
	}
	if start >= 0 {
		p.cols = append(p.cols, line[start:])
	}
	return p.cols
}

// col resolves a possibly negative column index, or returns -1.
func col(cols [][]byte, i int) int {
	if i < 0 {
		i += len(cols)
	}
	if i < 0 || i >= len(cols) {
		return -1
	}
	return i
}
