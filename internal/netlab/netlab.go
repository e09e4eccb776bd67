// Package netlab builds small private networks out of Linux network namespaces, for
// tests that need real links to fail or to be slow: a bridge in the host namespace on
// an unused private /24, and hosts, each a namespace joined to the bridge by a veth
// pair, which a test can cut off (Partition), reconnect (Heal) and rate-limit (Limit,
// tbf on both ends). Processes and sockets in the host namespace reach the hosts
// through the bridge's address; the hosts reach each other and the bridge's address,
// and nothing else: no namespace gets a default route and nothing is forwarded.
//
// Everything a lab makes is named with the prefix "bnl" and recorded under /run/netlab
// before it is made, so Close removes it, and the next New removes what a crashed
// process left. It needs root, ip(8) and tc(8); Available says why not.
//
// Traffic between two hosts is bridged, so where br_netfilter is loaded the host's
// iptables FORWARD chain sees it: a DROP policy there (Docker sets one) cuts the hosts
// off from each other, though not from the host namespace.
package netlab

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"sync"
)

// prefix starts the name of every link and namespace a lab makes.
const prefix = "bnl"

// Lab is one bridge and the hosts on it.
type Lab struct {
	reg      *registration
	subnet   netip.Prefix
	gateway  netip.Addr
	mu       sync.Mutex
	hosts    []*Host
	closed   bool
	closeErr error
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// New makes a lab: a bridge bnl<4 hex> holding the first address of a private /24
// that no address or route of the host namespace overlaps. name labels the lab in its
// record (lower-case letters, digits, dashes). It first removes what earlier labs
// whose process has died left behind.
func New(name string) (*Lab, error) {
	if !nameRE.MatchString(name) {
		return nil, fmt.Errorf("netlab: lab name %q: want 1-32 of a-z, 0-9 and -", name)
	}
	if err := Available(); err != nil {
		return nil, err
	}
	unlock, err := lockRegistry()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := removeLeftovers(); err != nil {
		return nil, err
	}
	subnet, err := freeSubnet()
	if err != nil {
		return nil, err
	}
	reg, err := register(name, subnet)
	if err != nil {
		return nil, err
	}
	l := &Lab{reg: reg, subnet: subnet, gateway: subnet.Addr().Next()}
	br := reg.rec.Bridge
	err = runAll(
		[]string{"ip", "link", "add", "name", br, "type", "bridge", "stp_state", "0", "forward_delay", "0"},
		[]string{"ip", "addr", "add", netip.PrefixFrom(l.gateway, subnet.Bits()).String(), "dev", br},
		[]string{"ip", "link", "set", br, "up"},
	)
	if err != nil {
		return nil, errors.Join(err, l.Close())
	}
	return l, nil
}

// Subnet is the lab's /24.
func (l *Lab) Subnet() netip.Prefix { return l.subnet }

// Gateway is the bridge's address: where the hosts reach the host namespace.
func (l *Lab) Gateway() netip.Addr { return l.gateway }

// Bridge is the name of the lab's bridge in the host namespace.
func (l *Lab) Bridge() string { return l.reg.rec.Bridge }

// Hosts lists the hosts added so far, in order.
func (l *Lab) Hosts() []*Host {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Host(nil), l.hosts...)
}

// Close kills the processes still running in the lab's namespaces, removes the
// namespaces, links and bridge, and the lab's record. It is safe to call again; later
// calls return the first call's result.
func (l *Lab) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return l.closeErr
	}
	l.closed = true
	l.closeErr = l.reg.remove()
	return l.closeErr
}
