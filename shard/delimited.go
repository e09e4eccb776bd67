package shard

import (
	"bytes"
	"fmt"
	"strconv"
)

// field is one CSV field of a frame's text: text[lo:hi], still holding
// doubled quotes or CRLF line breaks when dirty.
type field struct {
	lo, hi int
	dirty  bool
}

// scanCSV parses the record at the start of data into fields. It returns the
// record's length including its line break, or 0 when data does not yet hold
// all of it. bad >= 0 is the index of a quote error: text after a closing
// quote, or a quote never closed (framing then goes on as RFC 4180 lenient
// readers do, so that the record can be skipped).
func scanCSV(data []byte, sep byte, quote, atEOF bool, fields []field) (n int, out []field, bad int, msg string) {
	fields, bad = fields[:0], -1
	i := 0
	for {
		if quote && i < len(data) && data[i] == '"' {
			j, dirty := i+1, false
			for {
				k := bytes.IndexByte(data[j:], '"')
				if k < 0 {
					if !atEOF {
						return 0, fields, -1, ""
					}
					fields = append(fields, field{i + 1, len(data), true})
					return len(data), fields, i, "quoted field is not closed before the end of the file"
				}
				j += k
				if j+1 == len(data) && !atEOF {
					return 0, fields, -1, "" // a doubled quote may follow
				}
				if j+1 < len(data) && data[j+1] == '"' {
					j, dirty = j+2, true
					continue
				}
				break
			}
			f := field{i + 1, j, dirty || bytes.IndexByte(data[i+1:j], '\r') >= 0}
			i = j + 1
			if i < len(data) && data[i] != sep && data[i] != '\n' && !(data[i] == '\r' && (i+1 == len(data) || data[i+1] == '\n')) {
				if bad < 0 {
					bad, msg = i, "text after the closing quote of a quoted field"
				}
				// Keep framing: the rest up to the delimiter joins the field.
				for i < len(data) && data[i] != sep && data[i] != '\n' {
					i++
				}
				f.hi, f.dirty = i, true
			}
			fields = append(fields, f)
		} else {
			lineEnd := bytes.IndexByte(data[i:], '\n')
			if lineEnd < 0 {
				if !atEOF {
					return 0, fields, -1, ""
				}
				lineEnd = len(data)
			} else {
				lineEnd += i
			}
			k := bytes.IndexByte(data[i:lineEnd], sep)
			if k < 0 {
				hi := lineEnd
				if hi > i && data[hi-1] == '\r' {
					hi--
				}
				fields = append(fields, field{i, hi, false})
				i = lineEnd
			} else {
				fields = append(fields, field{i, i + k, false})
				i += k + 1
				continue
			}
		}
		// After a field: a delimiter, a line break or the end.
		switch {
		case i < len(data) && data[i] == sep:
			i++
		case i < len(data) && data[i] == '\r':
			if i+1 < len(data) {
				return i + 2, fields, bad, msg
			}
			if !atEOF {
				return 0, fields, -1, ""
			}
			return i + 1, fields, bad, msg
		case i < len(data): // '\n'
			return i + 1, fields, bad, msg
		default:
			if !atEOF {
				return 0, fields, -1, ""
			}
			return i, fields, bad, msg
		}
	}
}

// csvSplitter frames CSV and TSV records, skipping blank lines between them.
type csvSplitter struct {
	sep    byte
	quote  bool
	fields []field
}

func (s *csvSplitter) split(data []byte, atEOF bool) (skip, n int, err error) {
	for {
		l, line, ok := nextLine(data[skip:], atEOF)
		if !ok {
			return skip, 0, nil
		}
		if !blank(line) {
			break
		}
		skip += l
	}
	n, s.fields, _, _ = scanCSV(data[skip:], s.sep, s.quote, atEOF, s.fields)
	return skip, n, nil
}

// delimited parses csv and tsv records.
type delimited struct {
	file     string
	sep      byte
	quote    bool
	labelSep string
	scores   bool
	// Resolved column indexes; -1 when unused.
	text, pair, label, id, negative int
	names                           [5]string // the columns as the spec names them, for messages
	maxCol                          int
	fields                          []field
	buf                             []byte
	labels                          *interner
	fr                              frame
	txt                             []byte
}

func newDelimited(file string, s Spec) *delimited {
	return &delimited{file: file, sep: s.Delimiter[0], quote: *s.Quote, labelSep: s.LabelSep, scores: s.Scores, labels: newInterner()}
}

// resolveColumns maps the spec's columns to indexes, using header, the
// parsed first record, when the file has one.
func (p *delimited) resolveColumns(s Spec, header []string, hdr frame) error {
	cols := [5]string{s.Text, s.TextPair, s.Label, s.ID, s.Negative}
	keys := [5]string{"text", "text_pair", "label", "id", "negative"}
	var idx [5]int
	p.maxCol = 0
	for k, c := range cols {
		idx[k] = -1
		if c == "" {
			continue
		}
		found := -1
		for j, h := range header {
			if h == c {
				if found >= 0 {
					return &Error{Pos: Pos{File: p.file, Offset: hdr.off, Line: hdr.line}, Field: keys[k], Msg: fmt.Sprintf("column %q appears twice in the header", c)}
				}
				found = j
			}
		}
		if found < 0 {
			n, err := strconv.Atoi(c)
			switch {
			case err != nil && header == nil:
				return fmt.Errorf("%s: %s: column %q: the file has no header, give a 0-based index", p.file, keys[k], c)
			case err != nil:
				return &Error{Pos: Pos{File: p.file, Offset: hdr.off, Line: hdr.line}, Field: keys[k], Msg: fmt.Sprintf("column %q is not in the header (%s)", c, quoteList(header))}
			case n < 0:
				return fmt.Errorf("%s: %s: column index %d is negative", p.file, keys[k], n)
			case header != nil && n >= len(header):
				return &Error{Pos: Pos{File: p.file, Offset: hdr.off, Line: hdr.line}, Field: keys[k], Msg: fmt.Sprintf("column %d is past the header's %d columns", n, len(header))}
			}
			found = n
		}
		idx[k] = found
		p.maxCol = max(p.maxCol, found)
	}
	p.text, p.pair, p.label, p.id, p.negative = idx[0], idx[1], idx[2], idx[3], idx[4]
	p.names = cols
	return nil
}

// header parses a header frame into column names.
func (p *delimited) header(fr frame, text []byte) ([]string, error) {
	if _, err := p.load(fr, text); err != nil {
		return nil, err
	}
	names := make([]string, len(p.fields))
	for i, f := range p.fields {
		names[i] = string(bytes.TrimSpace(p.value(f)))
	}
	return names, nil
}

func (p *delimited) load(fr frame, text []byte) (int, error) {
	var bad int
	var msg string
	_, p.fields, bad, msg = scanCSV(text, p.sep, p.quote, true, p.fields)
	if bad >= 0 {
		return 0, frameErr(p.file, fr, text, bad, "", "%s", msg)
	}
	p.fr, p.txt = fr, text
	return 1, nil
}

func (p *delimited) record(_ int, rec *Record) error {
	if len(p.fields) <= p.maxCol {
		for k, c := range [5]int{p.text, p.pair, p.label, p.id, p.negative} {
			if c >= len(p.fields) {
				return frameErr(p.file, p.fr, p.txt, 0, fmt.Sprintf("column %q", p.names[k]),
					"missing: the record has %d field(s), the column is number %d (0-based)", len(p.fields), c)
			}
		}
	}
	rec.Text = string(p.value(p.fields[p.text]))
	if p.pair >= 0 {
		rec.TextPair = string(p.value(p.fields[p.pair]))
	}
	if p.id >= 0 {
		rec.ID = string(p.value(p.fields[p.id]))
	}
	if p.negative >= 0 {
		rec.Negative = string(p.value(p.fields[p.negative]))
	}
	if p.label < 0 {
		return nil // unlabeled pairs
	}
	var err error
	if rec.Labels, err = appendLabels(rec.Labels, p.value(p.fields[p.label]), p.labelSep, p.labels, p.scores); err != nil {
		return frameErr(p.file, p.fr, p.txt, p.fields[p.label].lo, fmt.Sprintf("column %q", p.names[2]), "%v", err)
	}
	return nil
}

// value returns a field's text, undoing quote doubling and CRLF line breaks.
func (p *delimited) value(f field) []byte {
	v := p.txt[f.lo:f.hi]
	if !f.dirty {
		return v
	}
	out := p.buf[:0]
	for i := 0; i < len(v); i++ {
		switch {
		case v[i] == '"' && i+1 < len(v) && v[i+1] == '"':
			i++
		case v[i] == '\r' && i+1 < len(v) && v[i+1] == '\n':
			continue
		}
		out = append(out, v[i])
	}
	p.buf = out
	return out
}
