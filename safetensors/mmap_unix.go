//go:build linux || darwin || freebsd || netbsd || openbsd

package safetensors

import (
	"os"
	"syscall"
)

// mapFile maps fd read-only. Checkpoints are replaced by rename, never
// rewritten in place, so the mapping stays valid after the path moves on.
func mapFile(fd *os.File) ([]byte, func() error, error) {
	st, err := fd.Stat()
	if err != nil {
		return nil, nil, err
	}
	size := st.Size()
	if size == 0 { // mmap rejects empty mappings; Parse reports the short file
		return nil, func() error { return nil }, nil
	}
	if int64(int(size)) != size {
		return nil, nil, syscall.EFBIG
	}
	buf, err := syscall.Mmap(int(fd.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, err
	}
	return buf, func() error { return syscall.Munmap(buf) }, nil
}
