package shard

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// Shard is the byte range [Start, End) of one file that a Reader reads: the
// records whose frame starts in it. OpenFile reads a whole file as one.
type Shard struct {
	File  string
	Index int // names the shard in messages
	Start int64
	End   int64
	// Line is the line at Start, for messages and positions; 0 when not known.
	Line int
}

// Reader streams the records of one shard in file order. It implements Source.
type Reader struct {
	c   *codec
	f   *os.File // nil when the Reader does not own a file
	sc  *scanner
	end int64
	// A resume point inside a SQuAD paragraph: skip its first questions.
	skip    int
	skipAt  int64
	skipBad bool
	cur     frame
	next, n int // the next record of cur, and how many it holds
	pos     Pos
	bad     Bad
	err     error
}

// OpenFile opens a whole file as one shard.
func OpenFile(spec Spec, path string) (*Reader, error) {
	return OpenFileAs(spec, path, path)
}

// OpenFileAs opens the whole file at path as one shard named name in positions and
// errors: the file as the user named it, when path holds its conversion.
func OpenFileAs(spec Spec, path, name string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	var r *Reader
	if err == nil {
		r, err = OpenReaderAt(spec, name, f, fi.Size())
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	r.f = f
	return r, nil
}

// Open opens a shard at its start.
func Open(spec Spec, sh Shard) (*Reader, error) {
	return OpenAt(spec, sh, Pos{File: sh.File, Offset: sh.Start, Line: sh.Line})
}

// OpenAt opens a shard at a resume point, a Pos that a Reader of the shard
// returned: it reads exactly the shard's records that that Reader had not
// returned yet. at.Line may be 0 when not known; it is then counted.
func OpenAt(spec Spec, sh Shard, at Pos) (*Reader, error) {
	if at.File != "" && at.File != sh.File {
		return nil, fmt.Errorf("shard: resume point in %s, shard of %s", at.File, sh.File)
	}
	if at.Offset < sh.Start || at.Offset > sh.End {
		return nil, fmt.Errorf("%s: resume offset %d outside shard %d [%d, %d)", sh.File, at.Offset, sh.Index, sh.Start, sh.End)
	}
	f, err := os.Open(sh.File)
	if err != nil {
		return nil, err
	}
	r, err := newReader(spec, sh, at, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	r.f = f
	return r, nil
}

// OpenReaderAt reads a whole file through src, size bytes, as one shard; file names
// it in positions and errors. Reads are sequential apart from the few before the
// first record (byte order mark, CSV header), so src can observe the file's bytes in
// order, e.g. to hash them.
func OpenReaderAt(spec Spec, file string, src io.ReaderAt, size int64) (*Reader, error) {
	if size == 0 {
		return nil, fmt.Errorf("%s: empty file", file)
	}
	return newReader(spec, Shard{File: file, End: size, Line: 1}, Pos{File: file, Line: 1}, src)
}

// OpenBytes reads the records of b, the bytes of file that start at at.Offset: a
// record's frame, with at.Index and at.Line as a Reader gave them for that record.
// head holds the file's bytes before First().Offset (a byte order mark, a CSV
// header), which parsing needs. The Reader returns the records of the frames that b
// holds whole; ask for no more than those: past them comes an error where b ends
// inside a frame, or inside a SQuAD document's structure.
func OpenBytes(spec Spec, file string, head, b []byte, at Pos) (*Reader, error) {
	c, err := newCodec(spec, file, bytes.NewReader(head))
	if err != nil {
		return nil, err
	}
	if at.Offset < c.first.Offset || at.Line <= 0 {
		return nil, fmt.Errorf("%s: bytes at offset %d, line %d: not a record's position (records start at byte %d)", file, at.Offset, at.Line, c.first.Offset)
	}
	at.File = file
	r := &Reader{c: c, end: at.Offset + int64(len(b)), pos: at, sc: &scanner{file: file}, skip: at.Index, skipAt: at.Offset, skipBad: spec.SkipBadRecords}
	r.sc.resetBytes(b, c.splitter(at.Offset), at.Offset, at.Line)
	return r, nil
}

func newReader(spec Spec, sh Shard, at Pos, src io.ReaderAt) (*Reader, error) {
	c, err := newCodec(spec, sh.File, src)
	if err != nil {
		return nil, err
	}
	if at.Offset <= c.first.Offset {
		at = c.first
	} else if at.Line <= 0 {
		if at.Line, err = lineAt(src, at.Offset); err != nil {
			return nil, err
		}
	}
	at.File = sh.File
	rd := io.NewSectionReader(src, at.Offset, math.MaxInt64-at.Offset)
	var done error
	if at.Offset >= sh.End {
		// No frame starts in what is left of the shard (an empty shard at the end of
		// the file, say): read nothing, for past the last SQuAD paragraph a splitter
		// that starts at a paragraph takes the end of the file for a truncation.
		done = io.EOF
	}
	return &Reader{
		c: c, end: sh.End, pos: at,
		sc:      newScanner(sh.File, rd, c.splitter(at.Offset), at.Offset, at.Line),
		skip:    at.Index,
		skipAt:  at.Offset,
		skipBad: spec.SkipBadRecords,
		err:     done,
	}, nil
}

// Next reads the next record into rec, reusing rec's slices, and returns
// io.EOF after the shard's last record. Errors are sticky.
func (r *Reader) Next(rec *Record) error {
	if r.err != nil {
		return r.err
	}
	for {
		for r.next < r.n {
			i := r.next
			rec.reset()
			if err := r.c.p.record(i, rec); err != nil {
				if err = r.badRecord(err); err != nil {
					return err
				}
				continue
			}
			r.advance()
			rec.Pos = Pos{File: r.c.file, Offset: r.cur.off, Index: i, Line: r.cur.line}
			return nil
		}
		fr, err := r.sc.next()
		if err == nil && fr.off >= r.end {
			err = io.EOF
		}
		if err != nil {
			r.err = err
			return err
		}
		r.cur, r.next, r.n = fr, 0, 0
		// A resume point inside a frame: its first records were returned, or
		// reported as bad, before it.
		resumed := fr.off == r.skipAt && r.skip > 0
		text, at := r.c.dec.decode(fr.b)
		if at >= 0 {
			err = r.c.encodingErr(fr, at)
		} else {
			r.n, err = r.c.p.load(fr, text)
		}
		if err != nil {
			r.n = 1 // a bad frame counts as one bad record
			if resumed && r.skipBad {
				r.advance()
				continue
			}
			if err = r.badRecord(err); err != nil {
				return err
			}
			continue
		}
		if resumed {
			r.next = min(r.skip, r.n)
		}
	}
}

// advance moves the resume point past the record just read. A SQuAD
// paragraph is resumed by question index: the JSON state at its end is not
// that at its start.
func (r *Reader) advance() {
	r.next++
	if r.c.format == SQuAD || r.next < r.n {
		r.pos = Pos{File: r.c.file, Offset: r.cur.off, Index: min(r.next, r.n), Line: r.cur.line}
		return
	}
	r.pos = Pos{File: r.c.file, Offset: r.cur.end, Line: r.cur.endLine}
}

// badRecord skips err when the spec says so, or makes it the sticky error.
func (r *Reader) badRecord(err error) error {
	var e *Error
	if !r.skipBad || !errors.As(err, &e) {
		r.err = err
		return err
	}
	r.bad.add(e)
	r.advance()
	return nil
}

// Pos returns the resume point: OpenAt with it reads exactly the records of
// the shard that this Reader has not returned.
func (r *Reader) Pos() Pos { return r.pos }

// Bad reports the bad records skipped so far.
func (r *Reader) Bad() Bad { return r.bad }

// First is where the file's records may begin: past a byte order mark and a CSV
// header. OpenBytes needs the bytes before it.
func (r *Reader) First() Pos { return r.c.first }

// FrameEnd is the offset just past the frame of the record Next returned last: the
// record's bytes are [Pos.Offset, FrameEnd()).
func (r *Reader) FrameEnd() int64 { return r.cur.end }

// Close closes the file the Reader opened, if any.
func (r *Reader) Close() error {
	if r.f == nil {
		return nil
	}
	return r.f.Close()
}

// lineAt counts the lines before off, for a resume point that lacks its line.
func lineAt(f io.ReaderAt, off int64) (int, error) {
	line := 1
	buf := make([]byte, minBuffer)
	for pos := int64(0); pos < off; {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), off-pos)], pos)
		line += bytes.Count(buf[:n], []byte{'\n'})
		pos += int64(n)
		if err != nil && pos < off {
			return 0, err
		}
	}
	return line, nil
}
