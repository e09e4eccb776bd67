package stream

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/shard"
)

// benchFile writes about 16 MiB of jsonl classification records.
func benchFile(b *testing.B) string {
	b.Helper()
	var sb strings.Builder
	for i := 0; sb.Len() < 16<<20; i++ {
		fmt.Fprintf(&sb, `{"label":"%d","text":"record %d with some words to make it a sentence of a realistic length, about as long as a short review"}`+"\n", i%4, i)
	}
	p := filepath.Join(b.TempDir(), "b.jsonl")
	if err := os.WriteFile(p, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkBuild against BenchmarkShardScan: what planning adds to reading the file.
func BenchmarkBuild(b *testing.B) {
	path := benchFile(b)
	st, _ := os.Stat(path)
	b.SetBytes(st.Size())
	for b.Loop() {
		if _, err := Build(path, shard.Spec{}, Options{BlockRecords: 256, EvalSplit: 0.1}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkShardScan(b *testing.B) {
	path := benchFile(b)
	st, _ := os.Stat(path)
	b.SetBytes(st.Size())
	for b.Loop() {
		r, err := shard.OpenFile(shard.Spec{}, path)
		if err != nil {
			b.Fatal(err)
		}
		var rec shard.Record
		for {
			if err := r.Next(&rec); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
		r.Close()
	}
}
