package shard

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"testing"
)

// TestOpenBytes: the bytes from any record's frame to the end of a later record's
// frame, with the file's head, read back exactly those records; the whole file read
// through OpenReaderAt reads as OpenFile does.
func TestOpenBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	for _, gen := range generators {
		ds := gen(rng, 120)
		path := writeFile(t, ds.file, ds.data)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		r, err := OpenReaderAt(ds.spec, path, bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		head := data[:r.First().Offset]
		var all []Record
		var ends []int64
		var rec Record
		for {
			if err := r.Next(&rec); err == io.EOF {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			all = append(all, rec.Clone())
			ends = append(ends, r.FrameEnd())
		}
		if want := readFile(t, ds.spec, path); !same(all, norm(want)) {
			t.Fatalf("%s: OpenReaderAt reads %d records, OpenFile %d", ds.name, len(all), len(want))
		}
		for range 30 {
			i := rng.IntN(len(all))
			j := i + rng.IntN(len(all)-i)
			at := all[i].Pos
			br, err := OpenBytes(ds.spec, path, bytes.Clone(head), data[at.Offset:ends[j]], at)
			if err != nil {
				t.Fatalf("%s: records %d..%d: %v", ds.name, i, j, err)
			}
			got := make([]Record, j-i+1)
			for k := range got {
				if err := br.Next(&got[k]); err != nil {
					t.Fatalf("%s: records %d..%d: record %d: %v", ds.name, i, j, i+k, err)
				}
			}
			if !same(norm(got), all[i:j+1]) {
				t.Fatalf("%s: records %d..%d read from their bytes differ", ds.name, i, j)
			}
		}
	}
}
