package shard

import "bytes"

// lines parses one text per line, with no label: mlm's corpora. Blank lines are skipped
// (lineSplitter).
type lines struct{ txt []byte }

func (p *lines) load(_ frame, text []byte) (int, error) {
	p.txt = trimCR(bytes.TrimSuffix(text, []byte{'\n'}))
	return 1, nil
}

func (p *lines) record(_ int, rec *Record) error {
	rec.Text = string(p.txt)
	return nil
}
