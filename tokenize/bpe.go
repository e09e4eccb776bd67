package tokenize

import (
	"fmt"
	"slices"
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
		m.merges[pairKey(a, b)] = uint64(rank)<<32 | uint64(uint32(merged))
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
	s.syms = syms
	if len(syms) < 2 {
		return syms
	}
	// HF's Word::merge_all: the candidate pairs wait in a heap, lowest rank then
	// leftmost first, and the symbols form a linked list, so a word of n bytes takes
	// O(n log n), not the O(n²) of rescanning it after each merge (minutes for a
	// 50 kB run of letters). An entry whose pair has changed since it was queued is
	// skipped unless the new pair merges into the same token, as in HF.
	links := slices.Grow(s.links[:0], len(syms))[:len(syms)]
	q := bpeQueue(s.queue[:0])
	for i := range syms {
		links[i] = bpeLink{prev: int32(i - 1), next: int32(i + 1)}
		if i+1 < len(syms) {
			q = m.queuePair(q, syms, int32(i), int32(i+1))
		}
	}
	links[len(links)-1].next = -1
	for len(q) > 0 {
		var top bpeMerge
		top, q = q.pop()
		i := top.pos
		j := links[i].next
		if links[i].dead || j < 0 {
			continue
		}
		if r, ok := m.merges[pairKey(syms[i].id, syms[j].id)]; !ok || int32(uint32(r)) != top.id {
			continue
		}
		syms[i] = tok{top.id, syms[i].start, syms[j].end}
		links[j].dead = true
		links[i].next = links[j].next
		if n := links[i].next; n >= 0 {
			links[n].prev = i
			q = m.queuePair(q, syms, i, n)
		}
		if p := links[i].prev; p >= 0 {
			q = m.queuePair(q, syms, p, i)
		}
	}
	s.links, s.queue = links, q
	out := syms[:0]
	for i, t := range syms {
		if !links[i].dead {
			out = append(out, t)
		}
	}
	return out
}

func pairKey(a, b int32) uint64 { return uint64(a)<<32 | uint64(uint32(b)) }

// queuePair queues the merge of symbols i and j, if they have one.
func (m *bpe) queuePair(q bpeQueue, syms []tok, i, j int32) bpeQueue {
	if r, ok := m.merges[pairKey(syms[i].id, syms[j].id)]; ok {
		q = q.push(bpeMerge{rank: uint32(r >> 32), pos: i, id: int32(uint32(r))})
	}
	return q
}

// bpeLink places a symbol of a word being merged among the symbols still there.
type bpeLink struct {
	prev, next int32 // -1: none
	dead       bool  // merged into the symbol before it
}

// bpeMerge is a queued merge of the symbol at pos with the one after it into id.
type bpeMerge struct {
	rank uint32
	pos  int32
	id   int32
}

func (a bpeMerge) before(b bpeMerge) bool {
	return a.rank < b.rank || a.rank == b.rank && a.pos < b.pos
}

// bpeQueue is a binary min-heap of merges, without container/heap's boxing.
type bpeQueue []bpeMerge

func (q bpeQueue) push(x bpeMerge) bpeQueue {
	q = append(q, x)
	for i := len(q) - 1; i > 0; {
		p := (i - 1) / 2
		if !q[i].before(q[p]) {
			break
		}
		q[i], q[p] = q[p], q[i]
		i = p
	}
	return q
}

func (q bpeQueue) pop() (bpeMerge, bpeQueue) {
	top, n := q[0], len(q)-1
	q[0] = q[n]
	q = q[:n]
	for i := 0; ; {
		c := 2*i + 1
		if c >= n {
			break
		}
		if c+1 < n && q[c+1].before(q[c]) {
			c++
		}
		if !q[c].before(q[i]) {
			break
		}
		q[i], q[c] = q[c], q[i]
		i = c
	}
	return top, q
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
