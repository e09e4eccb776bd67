//go:build linux

package allreduce

import (
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The Linux side of the shared-memory transport: the host's identity, a connection's
// network namespace, the shared region (a memfd, opened by the other ranks through
// /proc/<pid>/fd/<fd>, so no file name ever exists to leak), and futexes.

const shmSupported = true

// futex(2) operations, without FUTEX_PRIVATE_FLAG.
const (
	futexWaitOp = 0
	futexWakeOp = 1
)

// bootID identifies this boot of this host.
func bootID() ([16]byte, error) {
	var id [16]byte
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return id, err
	}
	h, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(string(b)), "-", ""))
	if err != nil || len(h) != 16 {
		return id, fmt.Errorf("boot_id %q", b)
	}
	copy(id[:], h)
	return id, nil
}

// connNetns identifies the network namespace c's socket lives in: the socket's own
// (SIOCGSKNS, which needs CAP_NET_ADMIN), else this process's.
func connNetns(c net.Conn) (dev, ino uint64, err error) {
	if t, ok := c.(*tls.Conn); ok {
		c = t.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, 0, fmt.Errorf("%T is not a socket", c)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var st unix.Stat_t
	var ioErr error
	if err := raw.Control(func(fd uintptr) {
		ns, err := unix.IoctlRetInt(int(fd), unix.SIOCGSKNS)
		if err != nil {
			ioErr = err
			return
		}
		ioErr = unix.Fstat(ns, &st)
		unix.Close(ns)
	}); err != nil {
		return 0, 0, err
	}
	if ioErr != nil {
		if err := unix.Stat("/proc/self/ns/net", &st); err != nil {
			return 0, 0, err
		}
	}
	return st.Dev, st.Ino, nil
}

// createRegion makes a zeroed shared region of size bytes, mode 0600, and maps it.
// The fd stays open until the other ranks have opened it; closeFd closes it.
func createRegion(size int) (mem []byte, pid, fd int, err error) {
	fd, err = unix.MemfdCreate("bertnode-ring", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("memfd_create: %w", err)
	}
	if err = unix.Fchmod(fd, 0o600); err == nil {
		err = unix.Ftruncate(fd, int64(size))
	}
	if err == nil {
		mem, err = unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	}
	if err != nil {
		unix.Close(fd)
		return nil, 0, 0, fmt.Errorf("shared region of %d bytes: %w", size, err)
	}
	return mem, os.Getpid(), fd, nil
}

func closeFd(fd int) { unix.Close(fd) }

// openRegion maps the region another process on this host created, through its fd.
func openRegion(pid, fd, size int) ([]byte, error) {
	f, err := unix.Open(fmt.Sprintf("/proc/%d/fd/%d", pid, fd), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening rank 0's region (/proc/%d/fd/%d): %w", pid, fd, err)
	}
	defer unix.Close(f)
	var st unix.Stat_t
	if err := unix.Fstat(f, &st); err != nil {
		return nil, err
	}
	if st.Size != int64(size) {
		return nil, fmt.Errorf("rank 0's region has %d bytes, want %d", st.Size, size)
	}
	mem, err := unix.Mmap(f, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mapping rank 0's region: %w", err)
	}
	return mem, nil
}

func unmapRegion(mem []byte) { unix.Munmap(mem) }

// futexWait sleeps while *addr == val, at most d. Not FUTEX_PRIVATE: the word is in a
// mapping shared with other processes.
func futexWait(addr *atomic.Uint32, val uint32, d time.Duration) {
	ts := unix.NsecToTimespec(d.Nanoseconds())
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWaitOp, uintptr(val),
		uintptr(unsafe.Pointer(&ts)), 0, 0)
}

// futexWake wakes every waiter on addr.
func futexWake(addr *atomic.Uint32) {
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWakeOp, uintptr(1<<31-1), 0, 0, 0)
}
