package shard

import (
	"bytes"
	"fmt"
	"io"
)

// codec is everything a file's format needs to frame and parse it.
type codec struct {
	file   string
	format Format
	dec    *decoder
	p      parser
	// first is where records may begin: past a UTF-8 byte order mark and a
	// CSV header. Reading from before it starts there.
	first Pos
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

func newCodec(spec Spec, file string, f io.ReaderAt) (*codec, error) {
	spec, err := spec.resolve(file)
	if err != nil {
		return nil, err
	}
	dec, _ := lookupEncoding(spec.Encoding) // checked by resolve
	c := &codec{file: file, format: spec.Format, dec: dec, first: Pos{File: file, Line: 1}}
	if dec.table == nil {
		var head [3]byte
		if n, _ := f.ReadAt(head[:], 0); bytes.Equal(head[:n], utf8BOM) {
			c.first.Offset = 3
		}
	}
	switch spec.Format {
	case CSV, TSV:
		d := newDelimited(file, spec)
		c.p = d
		if !*spec.Header {
			return c, d.resolveColumns(spec, nil, frame{})
		}
		return c, c.readHeader(spec, d, f)
	case LabelText:
		c.p = newLabelText(file, spec)
	case JSONL:
		c.p = newJSONLines(file, spec)
	case CoNLL:
		c.p = newCoNLL(file, spec)
	case SQuAD:
		c.p = &squad{file: file}
	case Lines:
		c.p = &lines{}
	case Parquet:
		return nil, fmt.Errorf("%s: a Parquet file is read as JSON lines once converted (package dataset converts it; bertnode converts before reading or uploading)", file)
	}
	return c, nil
}

func (c *codec) readHeader(spec Spec, d *delimited, f io.ReaderAt) error {
	sc := newScanner(c.file, io.NewSectionReader(f, c.first.Offset, 1<<62), c.splitter(c.first.Offset), c.first.Offset, 1)
	fr, err := sc.next()
	if err == io.EOF {
		return fmt.Errorf("%s: empty file: no header line", c.file)
	}
	if err != nil {
		return err
	}
	text, bad := c.dec.decode(fr.b)
	if bad >= 0 {
		return c.encodingErr(fr, bad)
	}
	names, err := d.header(fr, text)
	if err != nil {
		return err
	}
	c.first = Pos{File: c.file, Offset: fr.end, Line: fr.endLine}
	return d.resolveColumns(spec, names, fr)
}

// splitter returns a splitter for reading from off onwards.
func (c *codec) splitter(off int64) splitter {
	switch c.format {
	case CSV, TSV:
		d := c.p.(*delimited)
		return &csvSplitter{sep: d.sep, quote: d.quote}
	case CoNLL:
		return conllSplitter{}
	case SQuAD:
		return newSquadSplitter(off > c.first.Offset)
	}
	return lineSplitter{}
}

func (c *codec) encodingErr(fr frame, at int) error {
	return frameErr(c.file, fr, fr.b, at, "", "byte 0x%02X is not valid %s (set the spec's encoding if the file is not %s)", fr.b[at], c.dec.name, c.dec.name)
}
