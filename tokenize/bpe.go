package tokenize

import (
	"fmt"
	"sync"
)

// bpe is a byte-level BPE model (GPT-2, RoBERTa): a word starts as its bytes and the
// adjacent pair with the lowest merge rank is merged, leftmost first, until no pair
// has a merge, as HF's BPE does. Words are cached, as in HF.
type bpe struct {
	byteID       [256]int32        // the token of each single byte; -1: not in the vocabulary
	merges       map[uint64]uint64 // pair of ids -> rank<<32 | merged id
	ranked       [][2]int32        // merges in rank order, for Save
	whole        map[string]int32  // the vocabulary by bytes, for ignore_merges
	ignoreMerges bool              // a word that is a token is not split (HF's ignore_merges)
	unk          int32             // -1: unknown bytes are dropped
	fuseUnk      bool
	cache        wordCache
}

// newBPE builds the model from the vocabulary (tokens as bytes, by id) and merges
// (pairs of tokens as bytes, in rank order).
func newBPE(tokens [][]byte, merges [][2][]byte, unk int32) (*bpe, error) {
	m := &bpe{merges: make(map[uint64]uint64, len(merges)), whole: make(map[string]int32, len(tokens)), unk: unk}
	for i := range m.byteID {
		m.byteID[i] = -1
	}
	for id, t := range tokens {
		m.whole[string(t)] = int32(id)
		if len(t) == 1 {
			m.byteID[t[0]] = int32(id)
		}
	}
	for rank, p := range merges {
		a, okA := m.whole[string(p[0])]
		b, okB := m.whole[string(p[1])]
		merged, okM := m.whole[string(p[0])+string(p[1])]
		switch {
		case !okA || !okB:
			return nil, fmt.Errorf("merge %d (%q %q): a part is not in the vocabulary", rank+1, toByteChars(p[0]), toByteChars(p[1]))
		case !okM:
			return nil, fmt.Errorf("merge %d (%q %q): the merged token is not in the vocabulary", rank+1, toByteChars(p[0]), toByteChars(p[1]))
		}
		// A pair listed twice keeps its last rank, as in HF's map of merges.
		m.merges[uint64(a)<<32|uint64(uint32(b))] = uint64(rank)<<32 | uint64(uint32(merged))
		m.ranked = append(m.ranked, [2]int32{a, b})
	}
	m.cache.init()
	return m, nil
}

func (m *bpe) tokenize(word []byte, s *pipeScratch) {
	if cached, ok := m.cache.get(word); ok {
		s.toks = append(s.toks, cached...)
		return
	}
	from := len(s.toks)
	if id, ok := m.whole[string(word)]; m.ignoreMerges && ok {
		s.toks = append(s.toks, tok{id, 0, int32(len(word))})
	} else {
		s.toks = append(s.toks, m.merge(word, s)...)
	}
	m.cache.put(word, s.toks[from:])
}

func (m *bpe) merge(word []byte, s *pipeScratch) []tok {
	syms := s.syms[:0]
	for i, c := range word {
		id := m.byteID[c]
		switch {
		case id >= 0:
			syms = append(syms, tok{id, int32(i), int32(i + 1)})
		case m.unk < 0:
		case m.fuseUnk && len(syms) > 0 && syms[len(syms)-1].id == m.unk && syms[len(syms)-1].end == int32(i):
			syms[len(syms)-1].end++
		default:
			syms = append(syms, tok{m.unk, int32(i), int32(i + 1)})
		}
	}
	for len(syms) > 1 {
		best, bestRank, bestID := -1, uint32(0), int32(0)
		for i := 0; i+1 < len(syms); i++ {
			r, ok := m.merges[uint64(syms[i].id)<<32|uint64(uint32(syms[i+1].id))]
			if ok && (best < 0 || uint32(r>>32) < bestRank) {
				best, bestRank, bestID = i, uint32(r>>32), int32(uint32(r))
			}
		}
		if best < 0 {
			break
		}
		syms[best] = tok{bestID, syms[best].start, syms[best+1].end}
		syms = append(syms[:best+1], syms[best+2:]...)
	}
	s.syms = syms
	return syms
}

// wordCache remembers the tokens of up to wordCacheSize words, as HF's models do.
// Words are cached until it is full, never evicted.
type wordCache struct {
	mu sync.RWMutex
	m  map[string][]tok
}

const wordCacheSize = 10000

func (c *wordCache) init() { c.m = make(map[string][]tok) }

func (c *wordCache) get(word []byte) ([]tok, bool) {
	c.mu.RLock()
	v, ok := c.m[string(word)]
	c.mu.RUnlock()
	return v, ok
}

func (c *wordCache) put(word []byte, toks []tok) {
	if len(word) > 256 {
		return
	}
	c.mu.Lock()
	if len(c.m) < wordCacheSize {
		c.m[string(word)] = append([]tok(nil), toks...)
	}
	c.mu.Unlock()
}
