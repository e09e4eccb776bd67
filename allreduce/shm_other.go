//go:build !linux

package allreduce

import (
	"errors"
	"net"
	"sync/atomic"
	"time"
)

// Elsewhere than Linux rings always use TCP: the negotiation answers "unsupported".

const shmSupported = false

var errShmUnsupported = errors.New("shared memory transport is Linux only")

func bootID() ([16]byte, error)                       { return [16]byte{}, errShmUnsupported }
func connNetns(net.Conn) (uint64, uint64, error)      { return 0, 0, errShmUnsupported }
func createRegion(int) ([]byte, int, int, error)      { return nil, 0, 0, errShmUnsupported }
func closeFd(int)                                     {}
func openRegion(int, int, int) ([]byte, error)        { return nil, errShmUnsupported }
func unmapRegion([]byte)                              {}
func futexWait(*atomic.Uint32, uint32, time.Duration) {}
func futexWake(*atomic.Uint32)                        {}
