package netlab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// Available says why labs cannot be made here (not root, no ip or tc, namespaces,
// veth, bridges or tbf refused by the kernel), or nil. Tests skip with its reason.
func Available() error { return available() }

var available = sync.OnceValue(probe)

func probe() error {
	if os.Geteuid() != 0 {
		return errors.New("netlab: needs root to make network namespaces, links and qdiscs")
	}
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("netlab: %s(8) not found (Debian: apt-get install iproute2): %w", tool, err)
		}
	}
	// Everything a lab needs, tried in a throwaway namespace of a locked thread, which
	// takes the namespace and whatever was made in it along when it exits.
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread must not return to the pool
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("netlab: network namespaces refused: %w", err)
			return
		}
		errc <- runAll(
			[]string{"ip", "link", "add", "name", "p0", "type", "veth", "peer", "name", "p1"},
			[]string{"ip", "link", "add", "name", "b0", "type", "bridge"},
			[]string{"ip", "link", "set", "p0", "master", "b0"},
			[]string{"tc", "qdisc", "add", "dev", "p0", "root", "tbf", "rate", "1mbit", "burst", "16kb", "limit", "32kb"},
		)
	}()
	return <-errc
}
