//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package safetensors

import (
	"io"
	"os"
)

// mapFile reads the whole file where mmap is not available.
func mapFile(fd *os.File) ([]byte, func() error, error) {
	buf, err := io.ReadAll(fd)
	return buf, func() error { return nil }, err
}
