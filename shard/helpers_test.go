package shard

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// dataDir is the shared real-data folder (see its README), relative to this
// package; tests that need it skip without it.
const dataDir = "../../shared/data"

func realFile(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(dataDir, rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("real data not available: %v", err)
	}
	return p
}

func writeFile(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// drain reads src to the end, cloning each record.
func drain(t testing.TB, src Source) []Record {
	t.Helper()
	recs, err := drainErr(src)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func drainErr(src Source) ([]Record, error) {
	var recs []Record
	var rec Record
	for {
		err := src.Next(&rec)
		if errors.Is(err, io.EOF) {
			return recs, nil
		}
		if err != nil {
			return recs, err
		}
		recs = append(recs, rec.Clone())
	}
}

func readFile(t testing.TB, spec Spec, path string) []Record {
	t.Helper()
	r, err := OpenFile(spec, path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	return drain(t, r)
}

// readErr reads a whole file and returns the first error, from opening or
// reading.
func readErr(spec Spec, path string) error {
	r, err := OpenFile(spec, path)
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = drainErr(r)
	return err
}

// norm clones records, which turns empty slices into nil, so that records
// read compare equal to records written by hand.
func norm(recs []Record) []Record {
	out := make([]Record, len(recs))
	for i := range recs {
		out[i] = recs[i].Clone()
	}
	return out
}

// content strips positions, to compare what was read with what was written.
func content(recs []Record) []Record {
	out := norm(recs)
	for i := range out {
		out[i].Pos = Pos{}
	}
	return out
}

// same compares record lists, an empty list equal to nil.
func same(a, b []Record) bool {
	return len(a) == len(b) && (len(a) == 0 || reflect.DeepEqual(a, b))
}
