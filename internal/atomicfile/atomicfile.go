// Package atomicfile writes files so that readers see either the old content or
// the complete new content, never a torn write, even across a crash: data goes
// to a temporary file in the target's directory, is fsynced, renamed over the
// target, and the directory is fsynced so the rename itself is durable.
package atomicfile

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// File is a pending replacement of a file. Write to it, then Commit. Close
// without Commit discards it, so `defer f.Close()` cleans up on every error path.
type File struct {
	tmp  *os.File
	path string
	perm fs.FileMode
	done bool
}

// Create starts writing a replacement for path, which gets mode perm on Commit.
func Create(path string, perm fs.FileMode) (*File, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("atomicfile: create %s: %w", path, err)
	}
	return &File{tmp: tmp, path: path, perm: perm}, nil
}

func (f *File) Write(p []byte) (int, error) { return f.tmp.Write(p) }

// Name is the path that Commit will replace.
func (f *File) Name() string { return f.path }

// Commit makes the written data visible at the target path.
func (f *File) Commit() error {
	if f.done {
		return fmt.Errorf("atomicfile: %s already committed or closed", f.path)
	}
	f.done = true
	tmpName := f.tmp.Name()
	err := f.tmp.Chmod(f.perm)
	if err == nil {
		err = f.tmp.Sync()
	}
	if cerr := f.tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmpName, f.path)
	}
	if err != nil {
		os.Remove(tmpName)
		return fmt.Errorf("atomicfile: commit %s: %w", f.path, err)
	}
	return syncDir(filepath.Dir(f.path))
}

// Close discards the pending file unless Commit already succeeded or failed.
func (f *File) Close() error {
	if f.done {
		return nil
	}
	f.done = true
	f.tmp.Close()
	return os.Remove(f.tmp.Name())
}

// WriteFile is os.WriteFile, atomically.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	return Write(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Write replaces path with what fn writes to a buffered writer. If fn fails,
// the old file stays as it was.
func Write(path string, perm fs.FileMode, fn func(io.Writer) error) error {
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 64<<10)
	if err := fn(bw); err != nil {
		return fmt.Errorf("atomicfile: write %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("atomicfile: write %s: %w", path, err)
	}
	return f.Commit()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("atomicfile: sync dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("atomicfile: sync dir %s: %w", dir, err)
	}
	return nil
}
