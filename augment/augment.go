// Package augment makes extra training sentences by EDA (Wei and Zou, 2019,
// "Easy Data Augmentation Techniques for Boosting Performance on Text
// Classification Tasks"): synonym replacement from WordNet, random
// insertion of synonyms, random swap and random deletion of words.
package augment

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Options set how much each technique changes a sentence.
type Options struct {
	// WordNetDir holds WordNet 3.0's data.* and *.exc files; default
	// $WNSEARCHDIR, else DefaultWordNetDir. Only read when AlphaSR or
	// AlphaRI is set.
	WordNetDir string
	// AlphaSR, AlphaRI and AlphaRS are the fractions of a sentence's words
	// replaced by synonyms, inserted as synonyms, and swapped (at least one
	// word when non-zero); PRD is the probability of deleting each word.
	// Zero turns a technique off.
	AlphaSR, AlphaRI, AlphaRS, PRD float64
	// NumAug is how many augmented sentences to make per input sentence.
	NumAug int
}

// DefaultOptions are EDA's recommended settings.
func DefaultOptions() Options {
	return Options{AlphaSR: 0.1, AlphaRI: 0.1, AlphaRS: 0.1, PRD: 0.1, NumAug: 9}
}

// Augmenter makes EDA variants of sentences. It is safe for concurrent use.
type Augmenter struct {
	opts Options
	wn   *WordNet
}

// New checks opts and loads WordNet when a technique needs it.
func New(opts Options) (*Augmenter, error) {
	for _, p := range []struct {
		name string
		v    float64
	}{{"alpha_sr", opts.AlphaSR}, {"alpha_ri", opts.AlphaRI}, {"alpha_rs", opts.AlphaRS}, {"p_rd", opts.PRD}} {
		if !(p.v >= 0 && p.v <= 1) {
			return nil, fmt.Errorf("augment: %s must be in [0, 1], got %v", p.name, p.v)
		}
	}
	if opts.NumAug < 1 {
		return nil, fmt.Errorf("augment: num_aug must be at least 1, got %d", opts.NumAug)
	}
	if opts.AlphaSR == 0 && opts.AlphaRI == 0 && opts.AlphaRS == 0 && opts.PRD == 0 {
		return nil, fmt.Errorf("augment: every technique is off (alpha_sr, alpha_ri, alpha_rs and p_rd are all 0)")
	}
	a := &Augmenter{opts: opts}
	if opts.AlphaSR > 0 || opts.AlphaRI > 0 {
		dir := opts.WordNetDir
		if dir == "" {
			dir = os.Getenv("WNSEARCHDIR")
		}
		if dir == "" {
			dir = DefaultWordNetDir
		}
		wn, err := LoadWordNet(dir)
		if err != nil {
			return nil, fmt.Errorf("augment: %w", err)
		}
		a.wn = wn
	}
	return a, nil
}

// token is a whitespace-separated word split into the part WordNet can look
// up and the punctuation around it, so "movie," can become "film,".
type token struct{ pre, core, post string }

func (t token) String() string { return t.pre + t.core + t.post }

func tokenize(text string) []token {
	fields := strings.Fields(text)
	toks := make([]token, len(fields))
	for i, f := range fields {
		start := strings.IndexFunc(f, unicode.IsLetter)
		if start < 0 {
			toks[i] = token{pre: f}
			continue
		}
		end := strings.LastIndexFunc(f, unicode.IsLetter)
		_, size := utf8.DecodeRuneInString(f[end:])
		toks[i] = token{pre: f[:start], core: f[start : end+size], post: f[end+size:]}
	}
	return toks
}

func join(toks []token) string {
	parts := make([]string, len(toks))
	for i, t := range toks {
		parts[i] = t.String()
	}
	return strings.Join(parts, " ")
}

// Augment returns up to NumAug distinct variants of text, none equal to
// text itself; fewer when the sentence is too short to vary. Words are
// re-joined with single spaces. The result depends only on text, the
// options and rng's state.
func (a *Augmenter) Augment(text string, rng *rand.Rand) []string {
	toks := tokenize(text)
	if len(toks) == 0 {
		return nil
	}
	type technique struct {
		on  bool
		run func() []token
	}
	count := func(alpha float64) int { return max(1, int(alpha*float64(len(toks)))) }
	techniques := []technique{
		{a.opts.AlphaSR > 0, func() []token { return a.replaceSynonyms(toks, count(a.opts.AlphaSR), rng) }},
		{a.opts.AlphaRI > 0, func() []token { return a.insertSynonyms(toks, count(a.opts.AlphaRI), rng) }},
		{a.opts.AlphaRS > 0, func() []token { return swap(toks, count(a.opts.AlphaRS), rng) }},
		{a.opts.PRD > 0, func() []token { return deleteWords(toks, a.opts.PRD, rng) }},
	}
	on := 0
	for _, t := range techniques {
		if t.on {
			on++
		}
	}
	perTechnique := (a.opts.NumAug + on - 1) / on
	original := join(toks)
	seen := map[string]bool{original: true}
	var out []string
	for _, t := range techniques {
		if !t.on {
			continue
		}
		for range perTechnique {
			if s := join(t.run()); !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out[:min(len(out), a.opts.NumAug)]
}

func (a *Augmenter) synonyms(t token) []string {
	if t.core == "" || stopWords[strings.ToLower(t.core)] {
		return nil
	}
	return a.wn.Synonyms(t.core)
}

// matchCase spells a synonym the way the word it replaces is spelled:
// "Movie" becomes "Film", "MOVIE" "FILM"; lower-case words take WordNet's
// spelling, which keeps proper nouns capitalised.
func matchCase(word, syn string) string {
	first, _ := utf8.DecodeRuneInString(word)
	switch {
	case utf8.RuneCountInString(word) > 1 && strings.ToUpper(word) == word:
		return strings.ToUpper(syn)
	case unicode.IsUpper(first):
		r, size := utf8.DecodeRuneInString(syn)
		return string(unicode.ToUpper(r)) + syn[size:]
	}
	return syn
}

// replaceSynonyms replaces n distinct non-stop words that have synonyms,
// each (every occurrence of it) by one synonym drawn at random.
func (a *Augmenter) replaceSynonyms(toks []token, n int, rng *rand.Rand) []token {
	out := append([]token(nil), toks...)
	var words []string
	for _, t := range toks {
		if w := strings.ToLower(t.core); w != "" && !stopWords[w] && !slices.Contains(words, w) {
			words = append(words, w)
		}
	}
	rng.Shuffle(len(words), func(i, j int) { words[i], words[j] = words[j], words[i] })
	replaced := 0
	for _, w := range words {
		if replaced == n {
			break
		}
		syns := a.wn.Synonyms(w)
		if len(syns) == 0 {
			continue
		}
		syn := syns[rng.IntN(len(syns))]
		for i, t := range out {
			if strings.ToLower(t.core) == w {
				out[i].core = matchCase(t.core, syn)
			}
		}
		replaced++
	}
	return out
}

// insertSynonyms n times inserts, at a random position, a random synonym of
// a random non-stop word, giving up on a round after 10 words without one.
func (a *Augmenter) insertSynonyms(toks []token, n int, rng *rand.Rand) []token {
	out := append([]token(nil), toks...)
	for range n {
		var syns []string
		for try := 0; try < 10 && len(syns) == 0; try++ {
			syns = a.synonyms(out[rng.IntN(len(out))])
		}
		if len(syns) == 0 {
			break
		}
		at := rng.IntN(len(out) + 1)
		out = slices.Insert(out, at, token{core: syns[rng.IntN(len(syns))]})
	}
	return out
}

// swap n times exchanges two randomly chosen words.
func swap(toks []token, n int, rng *rand.Rand) []token {
	out := append([]token(nil), toks...)
	if len(out) < 2 {
		return out
	}
	for range n {
		i := rng.IntN(len(out))
		j := rng.IntN(len(out) - 1)
		if j >= i {
			j++ // a different word, without EDA's retry loop
		}
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// deleteWords drops each word with probability p, keeping one random word
// when all would go and leaving one-word sentences alone.
func deleteWords(toks []token, p float64, rng *rand.Rand) []token {
	if len(toks) == 1 {
		return toks
	}
	var out []token
	for _, t := range toks {
		if rng.Float64() >= p {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return []token{toks[rng.IntN(len(toks))]}
	}
	return out
}
