// Package parquettest writes Parquet files for tests as pyarrow writes the Hugging
// Face hub's: snappy pages, several row groups, the datasets library's metadata.
package parquettest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/snappy"
)

// Write writes rows, whose struct tags are the schema (a ",dict" tag dictionary-encodes
// a column, as pyarrow does its strings), to name in a new temporary directory:
// rowGroup rows per row group, and meta, when set, as the "huggingface" key-value
// metadata. It returns the file's path.
func Write[T any](t testing.TB, name string, rows []T, rowGroup int, meta string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	opts := []parquet.WriterOption{parquet.Compression(&snappy.Codec{})}
	if meta != "" {
		opts = append(opts, parquet.KeyValueMetadata("huggingface", meta))
	}
	w := parquet.NewGenericWriter[T](f, opts...)
	for i := 0; i < len(rows); i += rowGroup {
		if _, err := w.Write(rows[i:min(i+rowGroup, len(rows))]); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil { // ends the row group
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// RowGroups is the number of row groups of the Parquet file at path.
func RowGroups(t testing.TB, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	pf, err := parquet.OpenFile(f, st.Size(), parquet.SkipPageIndex(true))
	if err != nil {
		t.Fatal(err)
	}
	return len(pf.RowGroups())
}
