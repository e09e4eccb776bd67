// Package tarball packs a directory's files into a POSIX tar and unpacks one, the
// form in which models travel through the coordinator's blob store. A model directory
// is flat (config.json, model.safetensors, vocab.txt, ...), so only regular files at
// its top level go in, and Unpack accepts nothing else.
package tarball

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/bertnode/bertnode/internal/atomicfile"
)

// Pack writes dir's regular files (not its subdirectories, links or others), sorted by
// name, as a POSIX tar: the same files give the same bytes.
func Pack(dir string, w io.Writer) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("tarball: %w", err)
	}
	tw := tar.NewWriter(w)
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	for _, name := range names {
		if err := packFile(tw, filepath.Join(dir, name), name); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("tarball: %w", err)
	}
	return nil
}

// PackFile writes the one file at path as a tar holding it under its base name.
func PackFile(path string, w io.Writer) error {
	tw := tar.NewWriter(w)
	if err := packFile(tw, path, filepath.Base(path)); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("tarball: %w", err)
	}
	return nil
}

func packFile(tw *tar.Writer, path, name string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("tarball: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("tarball: %w", err)
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: fi.Size(), Mode: 0o644, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("tarball: %s: %w", name, err)
	}
	if n, err := io.Copy(tw, f); err != nil || n != fi.Size() {
		return fmt.Errorf("tarball: %s: wrote %d of %d bytes: %v", name, n, fi.Size(), err)
	}
	return nil
}

// Unpack writes a tar's files into dir (made if need be), each atomically. It refuses
// absolute or nested paths, "..", links, devices and every other non-regular entry,
// before writing anything of that entry.
func Unpack(r io.Reader, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("tarball: %w", err)
	}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("tarball: %w", err)
		}
		if err := checkEntry(hdr); err != nil {
			return err
		}
		err = atomicfile.Write(filepath.Join(dir, hdr.Name), fs.FileMode(0o644), func(w io.Writer) error {
			_, err := io.Copy(w, tr)
			return err
		})
		if err != nil {
			return fmt.Errorf("tarball: %s: %w", hdr.Name, err)
		}
	}
}

func checkEntry(hdr *tar.Header) error {
	name := hdr.Name
	switch {
	case hdr.Typeflag != tar.TypeReg:
		return fmt.Errorf("tarball: %q is not a regular file (type %q)", name, hdr.Typeflag)
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("tarball: bad entry name %q", name)
	case filepath.IsAbs(name) || strings.HasPrefix(name, "/"):
		return fmt.Errorf("tarball: %q is an absolute path", name)
	case strings.ContainsAny(name, `/\`) || strings.Contains(name, ".."):
		return fmt.Errorf("tarball: %q is not a plain file name", name)
	}
	return nil
}
