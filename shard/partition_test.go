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

// TestShardsPartition is the property test: for random K in 1..16 the shards
// of every format (quoted CSV newlines included) cover the file and hold
// each record exactly once, in order, and a reader resumed at any point
// reads exactly the rest of its shard.
func TestShardsPartition(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 7))
	for _, gen := range generators {
		ds := gen(rng, 200)
		path := writeFile(t, ds.file, ds.data)
		for range 12 {
			checkPartition(t, ds.name, ds.spec, path, 1+rng.IntN(16), rng)
		}
	}
}

// TestSplitFewerFramesThanShards: the empty shards at the end of a file with fewer
// frames than shards read as empty, a SQuAD file's too (they read as truncated).
func TestSplitFewerFramesThanShards(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	for _, gen := range generators {
		ds := gen(rng, 2)
		checkPartition(t, ds.name, ds.spec, writeFile(t, ds.file, ds.data), 12, rng)
	}
}

func TestRealShardsPartition(t *testing.T) {
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
		for range 2 {
			checkPartition(t, c.rel, c.spec, path, 2+rng.IntN(15), rng)
		}
	}
}

func checkPartition(t *testing.T, name string, spec Spec, path string, k int, rng *rand.Rand) {
	t.Helper()
	all := readFile(t, spec, path)
	plan, err := Split(spec, path, k)
	if err != nil {
		t.Fatalf("%s: split into %d: %v", name, k, err)
	}
	fi, _ := os.Stat(path)
	if len(plan.Shards) != k || plan.Records != len(all) {
		t.Fatalf("%s k=%d: %d shards, %d records; want %d shards, %d records", name, k, len(plan.Shards), plan.Records, k, len(all))
	}
	var joined []Record
	for i, sh := range plan.Shards {
		switch {
		case sh.Index != i:
			t.Fatalf("%s k=%d: shard %d has index %d", name, k, i, sh.Index)
		case i == 0 && sh.Start != 0, i > 0 && sh.Start != plan.Shards[i-1].End, sh.End < sh.Start:
			t.Fatalf("%s k=%d: shard %d [%d, %d) does not follow on", name, k, i, sh.Start, sh.End)
		case i == k-1 && sh.End != fi.Size():
			t.Fatalf("%s k=%d: last shard ends at %d, file at %d", name, k, sh.End, fi.Size())
		}
		recs := readShard(t, spec, sh)
		if len(recs) != sh.Records {
			t.Fatalf("%s k=%d: shard %d read %d records, plan says %d", name, k, i, len(recs), sh.Records)
		}
		for _, r := range recs {
			if r.Pos.Offset < sh.Start || r.Pos.Offset >= sh.End {
				t.Fatalf("%s k=%d: record at %d in shard %d [%d, %d)", name, k, r.Pos.Offset, i, sh.Start, sh.End)
			}
		}
		if len(recs) > 0 && sh.Line != recs[0].Pos.Line && i > 0 {
			t.Fatalf("%s k=%d: shard %d says line %d, its first record is on line %d", name, k, i, sh.Line, recs[0].Pos.Line)
		}
		joined = append(joined, recs...)
		checkResume(t, name, spec, sh, recs, rng)
	}
	if !same(joined, all) {
		t.Fatalf("%s k=%d: shards do not partition the records: %d read through shards, %d in the file", name, k, len(joined), len(all))
	}
	// Shards of non-trivial size are about equal.
	if k > 1 && len(all) >= 20*k {
		for _, sh := range plan.Shards {
			if share := float64(sh.End-sh.Start) * float64(k) / float64(fi.Size()); share > 2.5 {
				t.Errorf("%s k=%d: shard %d holds %.1f times its share", name, k, sh.Index, share)
			}
		}
	}
}

// checkResume stops a shard reader after a random number of records and
// resumes from its Pos, with and without the line number.
func checkResume(t *testing.T, name string, spec Spec, sh Shard, want []Record, rng *rand.Rand) {
	t.Helper()
	r, err := Open(spec, sh)
	if err != nil {
		t.Fatal(err)
	}
	stop := rng.IntN(len(want) + 1)
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
		if !same(rest, want[stop:]) {
			t.Fatalf("%s: shard %d resumed after %d of %d records at %+v: got %d records, want %d", name, sh.Index, stop, len(want), pos, len(rest), len(want)-stop)
		}
	}
}
