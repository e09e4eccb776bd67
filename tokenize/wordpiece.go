package tokenize

import "unicode/utf8"

// wordPiece splits one normalized word greedily into the longest vocabulary pieces,
// left to right; a word that cannot be covered, or is longer than
// MaxInputCharsPerWord runes, becomes a single unknown token.
func (t *wordPiece) wordPiece(dst *pieces, word []byte, origin []int32, nrunes int, wid int32) {
	span := func(a, b int) Span { return Span{Start: origin[a], End: origin[b-1] + 1} }
	if nrunes > t.cfg.MaxInputCharsPerWord {
		dst.push(t.unk, span(0, len(word)), wid)
		return
	}
	mark := len(dst.ids)
	for start := 0; start < len(word); {
		vocab, longest := t.initial, t.maxInitial
		if start > 0 {
			vocab, longest = t.cont, t.maxCont
		}
		end := len(word)
		if end-start > longest {
			end = start + longest
			for end > start && !utf8.RuneStart(word[end]) {
				end--
			}
		}
		id, found := int32(0), false
		for end > start {
			if id, found = vocab[string(word[start:end])]; found {
				break
			}
			end--
			for end > start && !utf8.RuneStart(word[end]) {
				end--
			}
		}
		if !found {
			dst.ids, dst.spans, dst.words = dst.ids[:mark], dst.spans[:mark], dst.words[:mark]
			dst.push(t.unk, span(0, len(word)), wid)
			return
		}
		dst.push(id, span(start, end), wid)
		start = end
	}
}
