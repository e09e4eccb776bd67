package shard

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// A splitter finds record frames in a byte stream. split looks at data, the
// unread bytes, and returns skip, a count of bytes before the next frame that
// belong to no record (blank lines, JSON structure), and n, the frame's
// length after them; n == 0 means no frame yet. With skip == n == 0 it needs
// more data, or at EOF there are no more frames. A stateful splitter must
// change its state only for the bytes it reports as consumed.
type splitter interface {
	split(data []byte, atEOF bool) (skip, n int, err error)
}

// syntaxError is a splitter's complaint about the byte at data[at].
type syntaxError struct {
	at  int
	msg string
}

func (e *syntaxError) Error() string { return e.msg }

// frame is the raw bytes of one record, or of a SQuAD paragraph.
type frame struct {
	b       []byte
	off     int64 // file offset of b[0]
	end     int64 // file offset after b
	line    int   // 1-based line of b[0]
	endLine int   // line at end
}

const (
	minBuffer = 64 << 10
	// maxFrame bounds one record, so an unclosed quote cannot take all memory.
	maxFrame = 64 << 20
)

// scanner cuts frames out of a reader with one reused buffer, tracking the
// byte offset and line of the unread data.
type scanner struct {
	file   string
	r      io.Reader
	split  splitter
	buf    []byte
	lo, hi int // unread data is buf[lo:hi]
	off    int64
	line   int
	eof    bool
}

func newScanner(file string, r io.Reader, sp splitter, off int64, line int) *scanner {
	return &scanner{file: file, r: r, split: sp, buf: make([]byte, minBuffer), off: off, line: line}
}

// resetBytes makes the scanner read exactly b, which starts at off.
func (s *scanner) resetBytes(b []byte, sp splitter, off int64, line int) {
	s.r, s.split, s.buf, s.lo, s.hi, s.off, s.line, s.eof = nil, sp, b, 0, len(b), off, line, true
}

// next returns the next frame, valid until the following call, or io.EOF.
func (s *scanner) next() (frame, error) {
	for {
		data := s.buf[s.lo:s.hi]
		skip, n, err := s.split.split(data, s.eof)
		if err != nil {
			var se *syntaxError
			if errors.As(err, &se) {
				return frame{}, &Error{Pos: s.posAt(se.at), Msg: se.msg}
			}
			return frame{}, err
		}
		s.consume(skip)
		if n > 0 {
			f := frame{b: s.buf[s.lo : s.lo+n], off: s.off, end: s.off + int64(n), line: s.line}
			s.consume(n)
			f.endLine = s.line
			return f, nil
		}
		if skip > 0 {
			continue
		}
		if s.eof {
			if s.lo < s.hi {
				return frame{}, &Error{Pos: s.posAt(0), Msg: "unexpected data at end of file"}
			}
			return frame{}, io.EOF
		}
		if err := s.fill(); err != nil {
			return frame{}, err
		}
	}
}

func (s *scanner) consume(n int) {
	s.line += bytes.Count(s.buf[s.lo:s.lo+n], []byte{'\n'})
	s.off += int64(n)
	s.lo += n
}

// posAt is the position of the unread byte data[i].
func (s *scanner) posAt(i int) Pos {
	return Pos{File: s.file, Offset: s.off + int64(i), Line: s.line + bytes.Count(s.buf[s.lo:s.lo+i], []byte{'\n'})}
}

func (s *scanner) fill() error {
	if s.lo > 0 {
		s.hi = copy(s.buf, s.buf[s.lo:s.hi])
		s.lo = 0
	}
	if s.hi == len(s.buf) {
		if len(s.buf) >= maxFrame {
			return &Error{Pos: s.posAt(0), Msg: fmt.Sprintf("record longer than %d MiB (an unclosed quote or bracket?)", maxFrame>>20)}
		}
		nb := make([]byte, 2*len(s.buf))
		copy(nb, s.buf[:s.hi])
		s.buf = nb
	}
	n, err := s.r.Read(s.buf[s.hi:])
	s.hi += n
	switch {
	case err == io.EOF:
		s.eof = true
	case err != nil:
		return fmt.Errorf("%s: %w", s.file, err)
	}
	return nil
}

// blank reports whether a line holds only spaces, tabs and a carriage return.
func blank(line []byte) bool {
	for _, c := range line {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}

// nextLine returns the length of the line at the start of data including its
// '\n', and the line without it. ok is false when data holds no whole line
// and more may come.
func nextLine(data []byte, atEOF bool) (n int, line []byte, ok bool) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i], true
	}
	if atEOF && len(data) > 0 {
		return len(data), data, true
	}
	return 0, nil, false
}

// lineSplitter frames one record per line, skipping blank lines.
type lineSplitter struct{}

func (lineSplitter) split(data []byte, atEOF bool) (skip, n int, err error) {
	for {
		l, line, ok := nextLine(data[skip:], atEOF)
		if !ok {
			return skip, 0, nil
		}
		if !blank(line) {
			return skip, l, nil
		}
		skip += l
	}
}

// trimCR drops a line's trailing carriage return.
func trimCR(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] == '\r' {
		return b[:len(b)-1]
	}
	return b
}
