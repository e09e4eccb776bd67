package shard

import (
	"fmt"
	"io"
	"os"
)

// Index lists the records of one shard for random access, e.g. to visit them
// in a shuffled order. It holds 32 bytes per record.
type Index struct {
	c      *codec
	f      *os.File
	shard  Shard
	recs   []entry
	bad    Bad
	sc     scanner
	buf    []byte
	loaded int64 // offset of the frame the parser holds, or -1
}

type entry struct {
	off, end int64 // the record's frame
	line     int
	index    int
}

// OpenIndex reads a shard once and indexes its good records; the bad ones
// (with SkipBadRecords) are in Bad.
func OpenIndex(spec Spec, sh Shard) (*Index, error) {
	r, err := Open(spec, sh)
	if err != nil {
		return nil, err
	}
	ix := &Index{c: r.c, f: r.f, shard: sh, loaded: -1}
	var rec Record
	for {
		err := r.Next(&rec)
		if err == io.EOF {
			break
		}
		if err != nil {
			r.Close()
			return nil, err
		}
		ix.recs = append(ix.recs, entry{off: r.cur.off, end: r.cur.end, line: r.cur.line, index: rec.Pos.Index})
	}
	ix.bad = r.Bad()
	return ix, nil
}

// Len is the number of records.
func (ix *Index) Len() int { return len(ix.recs) }

// Shard is the indexed shard.
func (ix *Index) Shard() Shard { return ix.shard }

// Bad reports the bad records skipped while indexing.
func (ix *Index) Bad() Bad { return ix.bad }

// Read reads record i, in file order, into rec, reading only its frame.
func (ix *Index) Read(i int, rec *Record) error {
	e := ix.recs[i]
	if ix.loaded != e.off {
		ix.loaded = -1
		n := int(e.end - e.off)
		if cap(ix.buf) < n {
			ix.buf = make([]byte, n)
		}
		ix.buf = ix.buf[:n]
		if _, err := ix.f.ReadAt(ix.buf, e.off); err != nil {
			return fmt.Errorf("%s: %w", ix.c.file, err)
		}
		ix.sc.resetBytes(ix.buf, ix.c.splitter(e.off), e.off, e.line)
		fr, err := ix.sc.next()
		if err != nil || fr.end != e.end {
			return fmt.Errorf("%s:%d (byte %d): the record is not where it was indexed: has the file changed? (%v)", ix.c.file, e.line, e.off, err)
		}
		text, at := ix.c.dec.decode(fr.b)
		if at >= 0 {
			return ix.c.encodingErr(fr, at)
		}
		if _, err := ix.c.p.load(fr, text); err != nil {
			return err
		}
		ix.loaded = e.off
	}
	rec.reset()
	if err := ix.c.p.record(e.index, rec); err != nil {
		return err
	}
	rec.Pos = Pos{File: ix.c.file, Offset: e.off, Index: e.index, Line: e.line}
	return nil
}

// Close closes the file.
func (ix *Index) Close() error { return ix.f.Close() }
