package shard

import (
	"math/rand/v2"
	"os"
	"reflect"
	"testing"
)

// TestSyntheticRoundTrip: every format reads back exactly what was written.
func TestSyntheticRoundTrip(t *testing.T) {
	for seed := range uint64(5) {
		for _, gen := range generators {
			ds := gen(rand.New(rand.NewPCG(seed, 1)), 150)
			path := writeFile(t, ds.file, ds.data)
			got := content(readFile(t, ds.spec, path))
			if !same(got, content(ds.want)) {
				for i := range min(len(got), len(ds.want)) {
					if !reflect.DeepEqual(got[i], content(ds.want)[i]) {
						t.Fatalf("%s seed %d: record %d\n got %+v\nwant %+v", ds.name, seed, i, got[i], content(ds.want)[i])
					}
				}
				t.Fatalf("%s seed %d: read %d records, wrote %d", ds.name, seed, len(got), len(ds.want))
			}
		}
	}
}

// TestResume is the property test: in every format (quoted CSV newlines and
// SQuAD paragraphs of several questions included) a reader stopped after any
// number of records and reopened at its Pos, with the line and without, reads
// exactly the records the first had not returned; at the end, none. Small files
// are checked at every resume point.
func TestResume(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 7))
	for _, n := range []int{2, 200} {
		for _, gen := range generators {
			ds := gen(rng, n)
			path := writeFile(t, ds.file, ds.data)
			checkResume(t, ds.name, ds.spec, path, readFile(t, ds.spec, path), 20, rng)
		}
	}
}

func TestRealResume(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct {
		spec Spec
		rel  string
	}{
		{Spec{Format: TSV, Text: "sentence"}, "sst2/dev.tsv"},
		{Spec{Format: LabelText, Delimiter: "\t"}, "sms_spam/SMSSpamCollection"},
		{Spec{Format: LabelText, Encoding: "latin-1"}, "trec/train.txt"},
		{Spec{Format: CoNLL}, "wnut17/emerging.dev.conll"},
		{Spec{}, "squad_v1.1/dev-v1.1.json"},
	} {
		path := realFile(t, c.rel)
		checkResume(t, c.rel, c.spec, path, readFile(t, c.spec, path), 2, rng)
	}
}

// checkResume stops a reader of the whole file after stop of its records, want,
// and resumes from its Pos, with and without the line number: at every stop when
// the file holds at most random records, else at the first, the last and random
// others. The resumed reader reads exactly want[stop:] and, with SkipBadRecords,
// counts the bad records the first had not: each of the file's once.
func checkResume(t *testing.T, name string, spec Spec, path string, want []Record, random int, rng *rand.Rand) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	sh := Shard{File: path, End: fi.Size(), Line: 1}
	r, err := Open(spec, sh)
	if err != nil {
		t.Fatal(err)
	}
	drain(t, r)
	r.Close()
	bad := r.Bad().Count
	stops := []int{0, len(want)}
	if len(want) <= random {
		stops = stops[:0]
		for i := range len(want) + 1 {
			stops = append(stops, i)
		}
	} else {
		for range random {
			stops = append(stops, rng.IntN(len(want)+1))
		}
	}
	for _, stop := range stops {
		r, err := Open(spec, sh)
		if err != nil {
			t.Fatal(err)
		}
		var rec Record
		for range stop {
			if err := r.Next(&rec); err != nil {
				t.Fatal(err)
			}
		}
		at := r.Pos()
		r.Close()
		for _, pos := range []Pos{at, {File: at.File, Offset: at.Offset, Index: at.Index}} {
			r2, err := OpenAt(spec, sh, pos)
			if err != nil {
				t.Fatalf("%s: resume at %+v: %v", name, pos, err)
			}
			rest := drain(t, r2)
			r2.Close()
			if !same(rest, want[stop:]) || r.Bad().Count+r2.Bad().Count != bad {
				t.Fatalf("%s: resumed after %d of %d records at %+v: got %d records and %d bad records (%d before), want %d and %d in all",
					name, stop, len(want), pos, len(rest), r2.Bad().Count, r.Bad().Count, len(want)-stop, bad)
			}
		}
	}
}
