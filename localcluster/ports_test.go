package localcluster

import (
	"net"
	"strconv"
	"testing"
)

// freePorts never hands out a port the cluster's processes were given already: they may
// not have bound it yet (cluster up once gave a coordinator's API port to a node too).
func TestFreePortsAvoidsPortsHandedOut(t *testing.T) {
	used := map[string]bool{}
	for p := portLo; p < portHi; p += 2 {
		used[net.JoinHostPort("127.0.0.1", strconv.Itoa(p))] = true
	}
	for range 20 {
		addrs, err := freePorts("127.0.0.1", 3, used)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range addrs {
			if used[a] {
				t.Fatalf("freePorts handed out %s, already in use by the cluster", a)
			}
		}
	}
}
