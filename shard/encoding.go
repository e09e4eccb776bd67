package shard

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/ianaindex"
)

// decoder turns a frame's bytes into UTF-8. Only UTF-8 and ASCII-compatible
// single-byte charsets are supported: framing then finds line breaks, quotes
// and delimiters in the raw bytes, so byte offsets stay exact record addresses.
type decoder struct {
	name  string
	table *[256]rune // nil for UTF-8
	buf   []byte
}

func lookupEncoding(name string) (*decoder, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	switch n {
	case "", "utf-8", "utf8":
		return &decoder{name: "utf-8"}, nil
	}
	// Common spellings that the IANA registry lacks.
	iana := n
	switch {
	case strings.HasPrefix(n, "latin-"):
		iana = "latin" + n[len("latin-"):]
	case strings.HasPrefix(n, "cp125"):
		iana = "windows-" + n[len("cp"):]
	case strings.HasPrefix(n, "iso8859-"):
		iana = "iso-8859-" + n[len("iso8859-"):]
	}
	enc, err := ianaindex.IANA.Encoding(iana)
	if err != nil || enc == nil {
		return nil, fmt.Errorf("unknown encoding %q", name)
	}
	cm, ok := enc.(*charmap.Charmap)
	if !ok {
		return nil, fmt.Errorf("encoding %q is not supported: records are addressed by byte offset, so only utf-8 and single-byte charsets are", name)
	}
	t := new([256]rune)
	for b := range 256 {
		t[b] = cm.DecodeByte(byte(b))
		if b < 0x80 && t[b] != rune(b) {
			return nil, fmt.Errorf("encoding %q is not supported: it is not ASCII-compatible", name)
		}
	}
	canonical, err := ianaindex.MIME.Name(enc)
	if err != nil {
		canonical = n
	}
	return &decoder{name: canonical, table: t}, nil
}

// decode returns b as UTF-8, or the index of the first byte that is invalid in
// the encoding. For UTF-8 the result is b itself; otherwise it lives in d's
// buffer until the next call.
func (d *decoder) decode(b []byte) ([]byte, int) {
	if d.table == nil {
		if utf8.Valid(b) {
			return b, -1
		}
		for i := 0; i < len(b); {
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n <= 1 {
				return nil, i
			}
			i += n
		}
	}
	out := d.buf[:0]
	for i, c := range b {
		if c < utf8.RuneSelf {
			out = append(out, c)
			continue
		}
		r := d.table[c]
		if r == utf8.RuneError {
			return nil, i
		}
		out = utf8.AppendRune(out, r)
	}
	d.buf = out
	return out, -1
}
