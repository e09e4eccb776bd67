package augment

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// DefaultWordNetDir is where Debian's wordnet-base package installs the database.
const DefaultWordNetDir = "/usr/share/wordnet"

// Parts of speech, in the order their synsets are listed.
const (
	noun = iota
	verb
	adj
	adv
	numPOS
)

var posFiles = [numPOS]string{"noun", "verb", "adj", "adv"}

// WordNet is the synonym part of a WordNet 3.0 database: which synsets
// (sets of synonymous lemmas) each lemma belongs to, per part of speech,
// and the irregular inflections used to find a word's lemma.
type WordNet struct {
	synsets [][]string                 // lemmas as WordNet spells them, '_' turned into ' '
	index   [numPOS]map[string][]int32 // lower-case lemma, '_' kept, to synset ids
	exc     [numPOS]map[string][]string
}

// LoadWordNet reads data.{noun,verb,adj,adv} and the optional *.exc files from dir.
func LoadWordNet(dir string) (*WordNet, error) {
	wn := &WordNet{}
	for pos, name := range posFiles {
		path := filepath.Join(dir, "data."+name)
		if err := wn.loadData(path, pos); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("WordNet database not found: %v (install the Debian package wordnet-base, or point the WordNet directory at a WordNet 3.0 dict/)", err)
			}
			return nil, err
		}
		exc, err := loadExceptions(filepath.Join(dir, name+".exc"))
		if err != nil {
			return nil, err
		}
		wn.exc[pos] = exc
	}
	return wn, nil
}

// loadData parses a data file. Each synset is one line:
//
//	offset lex_filenum ss_type w_cnt word lex_id [word lex_id...] p_cnt ... | gloss
//
// where w_cnt is two hex digits; lines starting with spaces are the licence.
func (wn *WordNet) loadData(path string, pos int) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	wn.index[pos] = map[string][]int32{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		// Bytes, not Text: the glosses are most of the file and never needed.
		b := sc.Bytes()
		if len(b) == 0 || b[0] == ' ' {
			continue
		}
		if k := bytes.Index(b, []byte(" | ")); k >= 0 {
			b = b[:k]
		}
		next := func() []byte {
			b = bytes.TrimLeft(b, " ")
			k := bytes.IndexByte(b, ' ')
			if k < 0 {
				k = len(b)
			}
			field := b[:k]
			b = b[k:]
			return field
		}
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%s:%d: %s", path, line, fmt.Sprintf(format, args...))
		}
		offset, _, _, count := next(), next(), next(), next()
		if _, err := strconv.ParseUint(string(offset), 10, 32); err != nil {
			return bad("synset offset %q is not a number", offset)
		}
		n, err := strconv.ParseUint(string(count), 16, 8)
		if err != nil || n == 0 {
			return bad("word count %q is not a positive hex number", count)
		}
		id := int32(len(wn.synsets))
		lemmas := make([]string, n)
		for i := range lemmas {
			word, lexID := next(), next()
			if len(lexID) == 0 {
				return bad("word count %s, but only %d words follow", count, i)
			}
			if k := bytes.IndexByte(word, '('); k > 0 && pos == adj { // syntactic marker: (a), (p), (ip)
				word = word[:k]
			}
			w := string(word)
			lemmas[i] = strings.ReplaceAll(w, "_", " ")
			key := strings.ToLower(w)
			if ids := wn.index[pos][key]; len(ids) == 0 || ids[len(ids)-1] != id {
				wn.index[pos][key] = append(ids, id)
			}
		}
		wn.synsets = append(wn.synsets, lemmas)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// loadExceptions reads "inflected base [base...]" lines; a missing file is
// no exceptions.
func loadExceptions(path string) (map[string][]string, error) {
	exc := map[string][]string{}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return exc, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if len(fields) < 2 {
			return nil, fmt.Errorf("%s:%d: want an inflected form and its base forms", path, line)
		}
		exc[fields[0]] = fields[1:]
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return exc, nil
}

// suffixes are WordNet's detachment rules (morph.c): an inflected ending
// and what replaces it to give a base form.
var suffixes = [numPOS][][2]string{
	noun: {{"s", ""}, {"ses", "s"}, {"xes", "x"}, {"zes", "z"}, {"ches", "ch"}, {"shes", "sh"}, {"men", "man"}, {"ies", "y"}},
	verb: {{"s", ""}, {"ies", "y"}, {"es", "e"}, {"es", ""}, {"ed", "e"}, {"ed", ""}, {"ing", "e"}, {"ing", ""}},
	adj:  {{"er", ""}, {"est", ""}, {"er", "e"}, {"est", "e"}},
}

// baseForms lists the lemmas in pos that word may be an inflection of,
// word itself first when it is one, as WordNet's morphy does.
func (wn *WordNet) baseForms(word string, pos int) []string {
	cands := []string{word}
	if exc, ok := wn.exc[pos][word]; ok {
		cands = append(cands, exc...)
	} else {
		for _, s := range suffixes[pos] {
			if base, ok := strings.CutSuffix(word, s[0]); ok && base != "" {
				cands = append(cands, base+s[1])
			}
		}
	}
	var out []string
	for _, c := range cands {
		if _, ok := wn.index[pos][c]; ok && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// Synsets returns the lemma lists of every synset word (in any inflection
// WordNet knows) belongs to: nouns, verbs, adjectives, adverbs, each in
// database order.
func (wn *WordNet) Synsets(word string) [][]string {
	synsets, _ := wn.lookup(word)
	return synsets
}

func (wn *WordNet) lookup(word string) (synsets [][]string, bases []string) {
	word = strings.ReplaceAll(strings.ToLower(word), " ", "_")
	seen := map[int32]bool{}
	for pos := range numPOS {
		for _, base := range wn.baseForms(word, pos) {
			if !slices.Contains(bases, base) {
				bases = append(bases, base)
			}
			for _, id := range wn.index[pos][base] {
				if !seen[id] {
					seen[id] = true
					synsets = append(synsets, wn.synsets[id])
				}
			}
		}
	}
	return synsets, bases
}

// Synonyms lists, without repeats, the lemmas of word's synsets other than
// word and its base forms ("dog" is no synonym for "dogs") that can stand in
// running text: letters, spaces, hyphens and apostrophes only.
func (wn *WordNet) Synonyms(word string) []string {
	synsets, bases := wn.lookup(word)
	lower := strings.ToLower(word)
	var out []string
	for _, lemmas := range synsets {
		for _, l := range lemmas {
			key := strings.ReplaceAll(strings.ToLower(l), " ", "_")
			if key == lower || slices.Contains(bases, key) || !plainWord(l) || slices.Contains(out, l) {
				continue
			}
			out = append(out, l)
		}
	}
	return out
}

func plainWord(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == ' ' || r == '-' || r == '\'') {
			return false
		}
	}
	return s != ""
}
