package shard

import (
	"errors"
	"io"
	"os"
	"testing"
)

// readAll reads every record of a file and returns how many there were.
func readAll(tb testing.TB, spec Spec, path string, rec *Record) int {
	r, err := OpenFile(spec, path)
	if err != nil {
		tb.Fatal(err)
	}
	defer r.Close()
	n := 0
	for {
		err := r.Next(rec)
		if errors.Is(err, io.EOF) {
			return n
		}
		if err != nil {
			tb.Fatal(err)
		}
		n++
	}
}

func benchmarkRead(b *testing.B, spec Spec, rel string) {
	path := realFile(b, rel)
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(fi.Size())
	b.ReportAllocs()
	var rec Record
	n := 0
	for b.Loop() {
		n = readAll(b, spec, path, &rec)
	}
	b.ReportMetric(float64(n), "records/op")
}

// SST-2 train: 3.4 MB, 60,614 sentences.
func BenchmarkReadTSV(b *testing.B) { benchmarkRead(b, Spec{Text: "sentence"}, "sst2/train.tsv") }

// WNUT-17 train: 0.5 MB, 3,394 sentences, 62,730 tokens.
func BenchmarkReadCoNLL(b *testing.B) { benchmarkRead(b, Spec{}, "wnut17/wnut17train.conll") }

// Reading allocates a fixed amount per file, then one string per record:
// the text of a TSV row, the tokens of a CoNLL sentence (labels and tags are
// interned, and the record's slices are reused).
func TestReadAllocs(t *testing.T) {
	for _, c := range []struct {
		spec Spec
		rel  string
	}{
		{Spec{Text: "sentence"}, "sst2/dev.tsv"},
		{Spec{}, "wnut17/emerging.dev.conll"},
	} {
		path := realFile(t, c.rel)
		var rec Record
		n := readAll(t, c.spec, path, &rec)
		allocs := testing.AllocsPerRun(3, func() { readAll(t, c.spec, path, &rec) })
		if perRecord := (allocs - 64) / float64(n); perRecord > 1 {
			t.Errorf("%s: %.0f allocations for %d records: %.2f per record, want at most 1 past a fixed 64", c.rel, allocs, n, perRecord)
		}
	}
}
