package tokenize

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"

	"github.com/rivo/uniseg"
)

// precompiled is SentencePiece's precompiled_charsmap (its nmt_nfkc rules compiled
// into a darts-clone double-array trie and a table of NUL-terminated replacements),
// applied the way HF's Precompiled normalizer does: per grapheme cluster when the
// cluster is shorter than 6 bytes and has a rule, else per character. As in HF, a
// rule is the shortest trie match of the chunk, and replaces the whole chunk.
type precompiled struct {
	raw    []byte // the charsmap as stored, written back by Save
	units  []uint32
	repl   []byte
	noRule [utf8.RuneSelf]bool // ASCII characters without a rule: text of only those is left as it is
}

func newPrecompiled(raw []byte) (*precompiled, error) {
	if len(raw) < 4 {
		return nil, fmt.Errorf("precompiled_charsmap of %d bytes is too short", len(raw))
	}
	size := binary.LittleEndian.Uint32(raw)
	if size%4 != 0 || int(size) > len(raw)-4 {
		return nil, fmt.Errorf("precompiled_charsmap: trie size %d does not fit in %d bytes", size, len(raw))
	}
	p := &precompiled{raw: raw, units: make([]uint32, size/4), repl: raw[4+size:]}
	for i := range p.units {
		p.units[i] = binary.LittleEndian.Uint32(raw[4+4*i:])
	}
	if len(p.units) == 0 {
		return nil, fmt.Errorf("precompiled_charsmap: empty trie")
	}
	for c := 1; c < utf8.RuneSelf; c++ {
		_, has := p.rule([]byte{byte(c)})
		p.noRule[c] = !has
	}
	if _, has := p.rule([]byte("\r\n")); has { // the one ASCII grapheme of two characters
		p.noRule['\r'] = false
	}
	return p, nil
}

// rule returns the replacement of the shortest prefix of chunk that the trie holds.
func (p *precompiled) rule(chunk []byte) ([]byte, bool) {
	u := p.units
	pos := uint32(0)
	pos ^= unitOffset(u[pos])
	for _, c := range chunk {
		if c == 0 {
			break
		}
		pos ^= uint32(c)
		if int(pos) >= len(u) {
			return nil, false
		}
		unit := u[pos]
		if unit&(1<<31|0xff) != uint32(c) {
			return nil, false
		}
		pos ^= unitOffset(unit)
		if unit>>8&1 == 1 {
			if int(pos) >= len(u) {
				return nil, false
			}
			v := int(u[pos] & (1<<31 - 1))
			if v > len(p.repl) {
				return nil, false
			}
			end := v
			for end < len(p.repl) && p.repl[end] != 0 {
				end++
			}
			return p.repl[v:end], true
		}
	}
	return nil, false
}

func unitOffset(u uint32) uint32 { return (u >> 10) << ((u & (1 << 9)) >> 6) }

func (p *precompiled) normalize(n *normStr, s *pipeScratch) {
	plain := true
	for _, c := range n.b {
		if c >= utf8.RuneSelf || !p.noRule[c] {
			plain = false
			break
		}
	}
	if plain {
		return
	}
	s.changes = s.changes[:0]
	modified := false
	state := -1
	for rest := n.b; len(rest) > 0; {
		var g []byte
		g, rest, _, state = uniseg.FirstGraphemeCluster(rest, state)
		if len(g) < 6 {
			if repl, ok := p.rule(g); ok {
				modified = true
				s.changes = precompiledReplace(s.changes, g, repl)
				continue
			}
		}
		for i := 0; i < len(g); {
			_, size := utf8.DecodeRune(g[i:])
			part := g[i : i+size]
			if repl, ok := p.rule(part); ok {
				modified = true
				s.changes = precompiledReplace(s.changes, part, repl)
			} else {
				r, _ := utf8.DecodeRune(part)
				s.changes = append(s.changes, rchange{r, 0})
			}
			i += size
		}
	}
	if modified {
		n.transform(s.changes, 0, &s.tmp)
	}
}

// precompiledReplace appends the transformation of old into repl with HF's
// arithmetic: extra characters are insertions, missing ones are removed after the
// last character appended so far (even one of an earlier chunk).
func precompiledReplace(dst []rchange, old, repl []byte) []rchange {
	diff := int32(utf8.RuneCount(repl) - utf8.RuneCount(old))
	for _, r := range string(repl) {
		dst = append(dst, rchange{r, 0})
	}
	switch {
	case diff > 0:
		for i := len(dst) - int(diff); i < len(dst); i++ {
			dst[i].change = 1
		}
	case diff < 0 && len(dst) > 0:
		dst[len(dst)-1].change += diff
	}
	return dst
}
