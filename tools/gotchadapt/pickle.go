package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
)

// gotch's torch.save reader allocates each storage at the element count the pickle
// claims before it reads the storage's zip record: a corrupt count asks for terabytes,
// and the process dies out of memory instead of failing to read the file. Every
// element takes at least a byte, so refuse a count above the record's size.
var (
	storageAlloc = []byte("\tstorage := dataType.New(size, location)\n")
	storageCheck = []byte("\tif size < 0 || uint64(size) > file.UncompressedSize64 {\n" +
		"\t\treturn nil, fmt.Errorf(\"storage %s: %d elements in a record of %d bytes\", key, size, file.UncompressedSize64)\n" +
		"\t}\n")
)

// boundStorages adds the check to pickle/serialization.go's loadTensor.
func boundStorages(pickleDir string) error {
	path := filepath.Join(pickleDir, "serialization.go")
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if n := bytes.Count(b, storageAlloc); n != 1 {
		return fmt.Errorf("%s: found the storage allocation %d times, want 1", path, n)
	}
	if bytes.Contains(b, storageCheck) {
		return fmt.Errorf("%s: the storage size is already checked", path)
	}
	b = bytes.Replace(b, storageAlloc, append(append([]byte{}, storageCheck...), storageAlloc...), 1)
	return os.WriteFile(path, b, 0o644)
}
