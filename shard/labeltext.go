package shard

import "bytes"

// labelText parses "label<delimiter>text" lines, such as TREC's "label text"
// and SMS spam's "label<TAB>text". Without a delimiter the label ends at the
// first run of spaces and tabs.
type labelText struct {
	file     string
	delim    []byte
	labelSep string
	scores   bool
	labels   *interner
	fr       frame
	txt      []byte
}

func newLabelText(file string, s Spec) *labelText {
	return &labelText{file: file, delim: []byte(s.Delimiter), labelSep: s.LabelSep, scores: s.Scores, labels: newInterner()}
}

func (p *labelText) load(fr frame, text []byte) (int, error) {
	p.fr, p.txt = fr, trimCR(bytes.TrimSuffix(text, []byte{'\n'}))
	return 1, nil
}

func (p *labelText) record(_ int, rec *Record) error {
	line := p.txt
	var label, text []byte
	if len(p.delim) > 0 {
		i := bytes.Index(line, p.delim)
		if i < 0 {
			return frameErr(p.file, p.fr, p.txt, 0, "", "no %q between label and text", p.delim)
		}
		label, text = line[:i], line[i+len(p.delim):]
	} else {
		i := bytes.IndexAny(line, " \t")
		if i < 0 {
			return frameErr(p.file, p.fr, p.txt, 0, "", "no space or tab between label and text")
		}
		label, text = line[:i], bytes.TrimLeft(line[i:], " \t")
	}
	if len(bytes.TrimSpace(text)) == 0 {
		return frameErr(p.file, p.fr, p.txt, 0, "text", "empty")
	}
	var err error
	if rec.Labels, err = appendLabels(rec.Labels, label, p.labelSep, p.labels, p.scores); err != nil {
		return frameErr(p.file, p.fr, p.txt, 0, "label", "%v", err)
	}
	rec.Text = string(text)
	return nil
}
