package tokenize

import "bytes"

// Metaspace prepend schemes.
const (
	prependAlways = "always"
	prependFirst  = "first"
	prependNever  = "never"
)

// metaspace is HF's Metaspace pre-tokenizer (SentencePiece's view of spaces): spaces
// become ▁, a ▁ is put before the text (always, or only before the first segment of
// the text), and each ▁ starts a new word.
type metaspace struct {
	replacement string
	prepend     string
	splitWords  bool
}

func (m *metaspace) byteLevel() bool { return false }

func (m *metaspace) split(n *normStr, s *pipeScratch) {
	s.matches = s.matches[:0]
	for i, c := range n.b {
		if c == ' ' {
			s.matches = append(s.matches, [2]int{i, i + 1})
		}
	}
	if len(s.matches) > 0 {
		n.replaceAt(s.matches, m.replacement, &s.tmp)
	}
	if !bytes.HasPrefix(n.b, []byte(m.replacement)) &&
		(m.prepend == prependAlways || m.prepend == prependFirst && n.orig == 0) {
		n.prepend(m.replacement, &s.tmp)
	}
	if !m.splitWords {
		s.words = append(s.words, [2]int{0, len(n.b)})
		return
	}
	from := 0
	for i := 0; i < len(n.b); {
		j := bytes.Index(n.b[i:], []byte(m.replacement))
		if j < 0 {
			break
		}
		if i+j > from {
			s.words = append(s.words, [2]int{from, i + j})
			from = i + j
		}
		i += j + len(m.replacement)
	}
	s.words = append(s.words, [2]int{from, len(n.b)})
}
