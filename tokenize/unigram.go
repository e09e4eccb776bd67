package tokenize

import (
	"fmt"
	"slices"
	"unicode/utf8"
)

// unigram is HF's Unigram model (SentencePiece's): the split of a word into pieces
// with the highest total score (Viterbi), a character no piece covers becoming the
// unknown piece, consecutive unknowns fused into one.
type unigram struct {
	pieces       []string
	scores       []float64
	ids          map[string]int32
	trie         pieceTrie
	unk          int32
	unkScore     float64 // the lowest score less 10, as in SentencePiece
	byteFallback bool    // unknown text becomes <0xXX> pieces, when the vocabulary has them
	cache        wordCache
}

const unkPenalty = 10

func newUnigram(pieces []string, scores []float64, unk int32, byteFallback bool) (*unigram, error) {
	if len(pieces) == 0 {
		return nil, fmt.Errorf("empty vocabulary")
	}
	if unk < 0 || int(unk) >= len(pieces) {
		return nil, fmt.Errorf("unk_id %d is not in the vocabulary of %d pieces", unk, len(pieces))
	}
	m := &unigram{pieces: pieces, scores: scores, ids: make(map[string]int32, len(pieces)), unk: unk, byteFallback: byteFallback}
	minScore := scores[0]
	for id, p := range pieces {
		m.ids[p] = int32(id)
		minScore = min(minScore, scores[id])
	}
	m.unkScore = minScore - unkPenalty
	m.trie = newPieceTrie(pieces)
	m.cache.init()
	return m, nil
}

type viterbiNode struct {
	id    int32
	start int32 // -1: not reached
	score float64
}

func (m *unigram) tokenize(word []byte, s *pipeScratch) {
	if cached, ok := m.cache.get(word); ok {
		s.toks = append(s.toks, cached...)
		return
	}
	from := len(s.toks)
	m.viterbi(word, s)
	m.cache.put(word, s.toks[from:])
}

func (m *unigram) viterbi(word []byte, s *pipeScratch) {
	n := len(word)
	best := slices.Grow(s.best[:0], n+1)[:n+1]
	for i := range best {
		best[i] = viterbiNode{start: -1}
	}
	for at := 0; at < n; {
		_, mblen := utf8.DecodeRune(word[at:])
		base := best[at].score
		single := false
		node := int32(0)
		for j := at; j < n; j++ {
			if node = m.trie.child(node, word[j]); node < 0 {
				break
			}
			id := m.trie.id[node]
			if id < 0 {
				continue
			}
			t := &best[j+1]
			if cand := m.scores[id] + base; t.start < 0 || cand > t.score {
				*t = viterbiNode{id, int32(at), cand}
			}
			if j+1-at == mblen {
				single = true
			}
		}
		if !single {
			t := &best[at+mblen]
			if cand := m.unkScore + base; t.start < 0 || cand > t.score {
				*t = viterbiNode{m.unk, int32(at), cand}
			}
		}
		at += mblen
	}
	s.best = best
	// Walk back, fusing runs of unknowns; the pieces come out reversed.
	mark := len(s.toks)
	for end := int32(n); end > 0; {
		nd := best[end]
		if nd.id == m.unk && len(s.toks) > mark && s.toks[len(s.toks)-1].id == m.unk {
			s.toks[len(s.toks)-1].start = nd.start
		} else {
			s.toks = append(s.toks, tok{nd.id, nd.start, end})
		}
		end = nd.start
	}
	slices.Reverse(s.toks[mark:])
	// A fused unknown is looked up again, as HF does, or spelled in bytes.
	for i := mark; i < len(s.toks); i++ {
		t := s.toks[i]
		if t.id != m.unk {
			continue
		}
		if id, ok := m.ids[string(word[t.start:t.end])]; ok {
			s.toks[i].id = id
			continue
		}
		if m.byteFallback {
			if byteToks, ok := m.bytePieces(word, t); ok {
				s.toks = slices.Replace(s.toks, i, i+1, byteToks...)
				i += len(byteToks) - 1
			}
		}
	}
}

// bytePieces spells the unknown t as <0xXX> pieces, each with t's whole span; ok is
// false when a byte has no piece.
func (m *unigram) bytePieces(word []byte, t tok) ([]tok, bool) {
	out := make([]tok, 0, t.end-t.start)
	for _, c := range word[t.start:t.end] {
		id, ok := m.ids[fmt.Sprintf("<0x%02X>", c)]
		if !ok {
			return nil, false
		}
		out = append(out, tok{id, t.start, t.end})
	}
	return out, true
}

// pieceTrie is a byte trie of the vocabulary: children in one sorted array per
// node, the root's in a table.
type pieceTrie struct {
	root  [256]int32
	first []int32 // per node: its children are labels[first:first+count]
	count []int32
	label []byte
	next  []int32
	id    []int32 // per node: the piece ending here, or -1
}

func newPieceTrie(pieces []string) pieceTrie {
	type building struct {
		kids map[byte]int32
		id   int32
	}
	nodes := []building{{kids: map[byte]int32{}, id: -1}}
	for id, p := range pieces {
		cur := int32(0)
		for i := 0; i < len(p); i++ {
			nx, ok := nodes[cur].kids[p[i]]
			if !ok {
				nx = int32(len(nodes))
				nodes = append(nodes, building{kids: map[byte]int32{}, id: -1})
				nodes[cur].kids[p[i]] = nx
			}
			cur = nx
		}
		if cur != 0 {
			nodes[cur].id = int32(id) // a piece listed twice is its last id, as in HF
		}
	}
	t := pieceTrie{first: make([]int32, len(nodes)), count: make([]int32, len(nodes)), id: make([]int32, len(nodes))}
	for i := range t.root {
		t.root[i] = -1
	}
	for n, b := range nodes {
		t.id[n] = b.id
		t.first[n] = int32(len(t.label))
		t.count[n] = int32(len(b.kids))
		labels := make([]byte, 0, len(b.kids))
		for c := range b.kids {
			labels = append(labels, c)
		}
		slices.Sort(labels)
		for _, c := range labels {
			t.label = append(t.label, c)
			t.next = append(t.next, b.kids[c])
			if n == 0 {
				t.root[c] = b.kids[c]
			}
		}
	}
	return t
}

// child is the node reached from node by byte c, or -1.
func (t *pieceTrie) child(node int32, c byte) int32 {
	if node == 0 {
		return t.root[c]
	}
	for i := t.first[node]; i < t.first[node]+t.count[node]; i++ {
		if t.label[i] == c {
			return t.next[i]
		}
	}
	return -1
}
