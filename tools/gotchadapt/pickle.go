package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
)

// gotch's torch.save reader allocates what the file claims before it reads it: each
// storage at the element count its pickle gives, each pickle string, bytes object and
// frame at its length. A corrupt count asks for terabytes (the process dies out of
// memory instead of failing to read the file) or for gigabytes that are zeroed in
// seconds. Each check goes just before its allocation: a storage holds at most as many
// elements as its zip record has bytes, and a checkpoint's pickle holds names and
// shapes, never 64 MiB in one piece.
var pickleChecks = []struct{ file, before, check string }{
	{"serialization.go", "\tstorage := dataType.New(size, location)\n",
		"\tif size < 0 || uint64(size) > file.UncompressedSize64 {\n" +
			"\t\treturn nil, fmt.Errorf(\"storage %s: %d elements in a record of %d bytes\", key, size, file.UncompressedSize64)\n" +
			"\t}\n"},
	{"pickle.go", "\tdata := make([]byte, n)\n",
		"\tif n < 0 || n > 1<<26 {\n" +
			"\t\treturn nil, fmt.Errorf(\"Unpickler.read(): an object of %d bytes\", n)\n" +
			"\t}\n"},
	{"pickle.go", "\tbuf := make([]byte, frameSize)\n",
		"\tif frameSize < 0 || frameSize > 1<<26 {\n" +
			"\t\treturn fmt.Errorf(\"Unpickler.loadFrame(): a frame of %d bytes\", frameSize)\n" +
			"\t}\n"},
}

// boundPickle adds the checks to gotch's pickle package.
func boundPickle(pickleDir string) error {
	for _, c := range pickleChecks {
		path := filepath.Join(pickleDir, c.file)
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if n := bytes.Count(b, []byte(c.before)); n != 1 {
			return fmt.Errorf("%s: found %q %d times, want 1", path, c.before, n)
		}
		if bytes.Contains(b, []byte(c.check+c.before)) {
			return fmt.Errorf("%s: %q is already checked", path, c.before)
		}
		b = bytes.Replace(b, []byte(c.before), []byte(c.check+c.before), 1)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
