// Package tarball packs a checkpoint directory into a tar stream and back: how models
// travel to and from the coordinator's blob store.
package tarball

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"sort"
)

// Pack writes the regular files of dir (not subdirectories), sorted by name, as a
// POSIX tar stream.
func Pack(dir string, w io.Writer) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	tw := tar.NewWriter(w)
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		if err := addFile(tw, filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return tw.Close()
}

func addFile(tw *tar.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: filepath.Base(path), Mode: 0o644, Size: st.Size(), ModTime: st.ModTime(), Format: tar.FormatPAX}); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}
