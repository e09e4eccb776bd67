package tokenize

import (
	"unicode"
	"unicode/utf8"
)

// byteChars is GPT-2's bytes_to_unicode: every byte shown as a printable character,
// the form in which byte-level BPE vocabularies (vocab.json, merges.txt) are written.
var byteChars, charBytes = func() (bc [256]rune, cb map[rune]byte) {
	cb = make(map[rune]byte, 256)
	n := rune(0)
	for b := range 256 {
		switch {
		case b >= '!' && b <= '~', b >= 0xA1 && b <= 0xAC, b >= 0xAE:
			bc[b] = rune(b)
		default:
			bc[b] = 256 + n
			n++
		}
		cb[bc[b]] = byte(b)
	}
	return bc, cb
}()

// fromByteChars decodes a token written in GPT-2's characters into its bytes.
func fromByteChars(s string) ([]byte, bool) {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		b, ok := charBytes[r]
		if !ok {
			return nil, false
		}
		out = append(out, b)
	}
	return out, true
}

// toByteChars writes bytes in GPT-2's characters.
func toByteChars(b []byte) string {
	out := make([]rune, len(b))
	for i, c := range b {
		out[i] = byteChars[c]
	}
	return string(out)
}

// byteLevel is HF's ByteLevel pre-tokenizer: a space before the text unless it
// starts with one (add_prefix_space), then GPT-2's split into words. The model works
// on the words' bytes directly, which is what mapping them to GPT-2's characters
// amounts to.
type byteLevel struct{ addPrefixSpace, useRegex bool }

func (b byteLevel) byteLevel() bool { return true }

func (b byteLevel) split(n *normStr, s *pipeScratch) {
	if b.addPrefixSpace && len(n.b) > 0 && n.b[0] != ' ' {
		n.prepend(" ", &s.tmp)
	}
	if !b.useRegex {
		s.words = append(s.words, [2]int{0, len(n.b)})
		return
	}
	for i := 0; i < len(n.b); {
		end := gpt2Match(n.b, i)
		s.words = append(s.words, [2]int{i, end})
		i = end
	}
}

type runeClass uint8

const (
	classSpace runeClass = iota
	classLetter
	classNumber
	classOther
)

func classOf(b []byte, i int) (runeClass, int) {
	c := b[i]
	if c < utf8.RuneSelf {
		switch {
		case c == ' ' || c >= '\t' && c <= '\r':
			return classSpace, 1
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			return classLetter, 1
		case c >= '0' && c <= '9':
			return classNumber, 1
		}
		return classOther, 1
	}
	r, size := utf8.DecodeRune(b[i:])
	switch {
	case unicode.IsSpace(r):
		return classSpace, size
	case unicode.IsLetter(r):
		return classLetter, size
	case unicode.IsNumber(r):
		return classNumber, size
	}
	return classOther, size
}

// gpt2Match returns the end of the match at i of GPT-2's pattern
// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// written out by hand: Go's regexp has no lookahead.
func gpt2Match(b []byte, i int) int {
	if b[i] == '\'' && i+1 < len(b) {
		switch b[i+1] {
		case 's', 't', 'm', 'd':
			return i + 2
		case 'r', 'v':
			if i+2 < len(b) && b[i+2] == 'e' {
				return i + 3
			}
		case 'l':
			if i+2 < len(b) && b[i+2] == 'l' {
				return i + 3
			}
		}
	}
	start := i
	if b[i] == ' ' {
		start++
	}
	if start < len(b) {
		if cls, size := classOf(b, start); cls != classSpace {
			end := start + size
			for end < len(b) {
				c, size := classOf(b, end)
				if c != cls {
					break
				}
				end += size
			}
			return end
		}
	}
	// A run of whitespace: all of it at the end of the text, else all but its last
	// character (which joins the next word), unless that leaves nothing.
	end, last := i, 0
	for end < len(b) {
		c, size := classOf(b, end)
		if c != classSpace {
			break
		}
		end += size
		last = size
	}
	if end < len(b) && end-last > i {
		return end - last
	}
	return end
}
