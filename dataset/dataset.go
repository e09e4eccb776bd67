// Package dataset makes a data file, as the user names it, a file that package shard
// reads: a local file as it is; a Parquet file converted to JSON lines (one object per
// row, in row order: see eachRow), or with format squad to a SQuAD document (a
// paragraph per row: writeSQuAD); an hf://datasets/ URL downloaded from the Hugging
// Face hub first (hf.DatasetFiles), a split's several Parquet files converted into
// one file.
//
// The conversion is deterministic, a function of the Parquet bytes alone, so that a
// conversion read again (a resumed run, a job's plan) has the same bytes, records
// and byte offsets. Conversions are kept in the user's cache directory
// (bertnode/parquet), named by the sha256 of what they convert, and written atomically.
package dataset

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/bertnode/bertnode/hf"
	"github.com/bertnode/bertnode/internal/atomicfile"
	"github.com/bertnode/bertnode/shard"
)

// converterVersion names the conversion's output: change it when that changes, so
// that no older conversion in the cache is read as a newer one.
const converterVersion = "1"

// File is a data file as the readers read it.
type File struct {
	Path string     // the file to read: the one named, a download, or a conversion
	Name string     // the file as the user named it, for positions and messages
	Spec shard.Spec // how to read Path: for a conversion, format jsonl or squad
}

// Derived says whether name is read from a file that Resolve makes (a download or a
// conversion), rather than from name itself.
func Derived(name string, spec shard.Spec) bool {
	return isHub(name) || Converted(name, spec)
}

// Converted says whether name is read converted from Parquet: a Parquet file by the
// spec's format, or by its extension (or as a split of the hub's conversion) when the
// spec's format is unset or squad. The conversion's format is ConvertedFormat(spec).
func Converted(name string, spec shard.Spec) bool {
	f, _ := shard.FormatOf(name)
	parquet := f == shard.Parquet || hf.IsParquetSplit(name)
	return spec.Format == shard.Parquet || parquet && (spec.Format == "" || spec.Format == shard.SQuAD)
}

// ConvertedFormat is the format a Parquet file converts to: squad when the spec says
// so (its rows SQuAD questions, writeSQuAD), else jsonl.
func ConvertedFormat(spec shard.Spec) shard.Format {
	if spec.Format == shard.SQuAD {
		return shard.SQuAD
	}
	return shard.JSONL
}

func isHub(name string) bool { return strings.HasPrefix(name, "hf://") }

// Resolve returns the file that the readers read for name: name itself, its download
// from the hub, or its conversion from Parquet.
func Resolve(name string, spec shard.Spec) (File, error) {
	if hf.IsParquetSplit(name) && !Converted(name, spec) {
		return File{}, fmt.Errorf("%s: a split of the hub's Parquet conversion, which format %s does not read (leave the format unset, or give parquet or squad)", name, spec.Format)
	}
	paths := []string{name}
	if isHub(name) {
		var err error
		if paths, err = hf.DatasetFiles(name, hf.Options{}); err != nil {
			return File{}, err
		}
	}
	f := File{Path: paths[0], Name: name, Spec: spec}
	if !Converted(name, spec) {
		return f, nil
	}
	f.Spec.Format = ConvertedFormat(spec)
	sum := sha256.New()
	io.WriteString(sum, "bertnode parquet to "+string(f.Spec.Format)+" "+converterVersion+"\n")
	for _, p := range paths {
		h, err := fileSHA256(p)
		if err != nil {
			return File{}, fmt.Errorf("%s: %w", name, err)
		}
		io.WriteString(sum, h+"\n")
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		return File{}, fmt.Errorf("%s: no cache directory for its conversion from Parquet: %w", name, err)
	}
	f.Path = filepath.Join(dir, "bertnode", "parquet", hex.EncodeToString(sum.Sum(nil))+"."+string(f.Spec.Format))
	if _, err := os.Stat(f.Path); err == nil {
		return f, nil
	}
	if err := os.MkdirAll(filepath.Dir(f.Path), 0o755); err != nil {
		return File{}, err
	}
	out, err := atomicfile.Create(f.Path, 0o644)
	if err != nil {
		return File{}, err
	}
	defer out.Close()
	w := bufio.NewWriterSize(out, 64<<10)
	squad, first := f.Spec.Format == shard.SQuAD, true
	if squad {
		io.WriteString(w, squadHead)
	}
	for _, p := range paths {
		what := name
		if len(paths) > 1 {
			what = name + "/" + filepath.Base(p)
		}
		var err error
		if squad {
			err = writeSQuAD(w, what, p, &first)
		} else {
			err = writeJSONL(w, what, p)
		}
		if err != nil {
			return File{}, err
		}
	}
	if squad {
		io.WriteString(w, squadTail)
	}
	if err := w.Flush(); err != nil {
		return File{}, err
	}
	return f, out.Commit()
}

// Open opens the file for reading, its records positioned in f.Name.
func (f File) Open() (*shard.Reader, error) {
	return shard.OpenFileAs(f.Spec, f.Path, f.Name)
}

// ReadAll reads every record of the file, and says which bad records it skipped (with
// spec.SkipBadRecords). A file without records is an error.
func (f File) ReadAll() ([]shard.Record, shard.Bad, error) {
	r, err := f.Open()
	if err != nil {
		return nil, shard.Bad{}, err
	}
	defer r.Close()
	var recs []shard.Record
	for {
		var rec shard.Record
		if err := r.Next(&rec); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, r.Bad(), err
		}
		recs = append(recs, rec)
	}
	if len(recs) == 0 {
		return nil, r.Bad(), fmt.Errorf("%s: no records", f.Name)
	}
	return recs, r.Bad(), nil
}

func fileSHA256(path string) (string, error) {
	fd, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer fd.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fd); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
