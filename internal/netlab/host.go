package netlab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// Host is a network namespace on the lab's bridge: lo, and eth0 with one address on
// the lab's subnet, the other end of a veth pair whose host side is a bridge port.
type Host struct {
	lab   *Lab
	name  string
	netns string
	link  string
	ip    netip.Addr

	mu      sync.Mutex
	limited bool
}

// AddHost makes a namespace bnl<id>-<name> joined to the bridge, with the next free
// address of the subnet (.2, .3, ...). name is unique in the lab: lower-case letters,
// digits, dashes.
func (l *Lab) AddHost(name string) (*Host, error) {
	if !nameRE.MatchString(name) {
		return nil, fmt.Errorf("netlab: host name %q: want 1-32 of a-z, 0-9 and -", name)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, errors.New("netlab: lab closed")
	}
	for _, h := range l.hosts {
		if h.name == name {
			return nil, fmt.Errorf("netlab: host %q already in the lab", name)
		}
	}
	i := len(l.hosts)
	if i >= 253 {
		return nil, errors.New("netlab: a lab holds at most 253 hosts")
	}
	ip := l.subnet.Addr().As4()
	ip[3] = byte(i + 2)
	h := &Host{lab: l, name: name, netns: l.reg.rec.Bridge + "-" + name,
		link: fmt.Sprintf("%sh%d", l.reg.rec.Bridge, i), ip: netip.AddrFrom4(ip)}
	l.reg.rec.Hosts = append(l.reg.rec.Hosts, hostRecord{Name: name, Netns: h.netns, Link: h.link})
	if err := l.reg.save(); err != nil {
		return nil, err
	}
	l.hosts = append(l.hosts, h)
	err := runAll(
		[]string{"ip", "netns", "add", h.netns},
		[]string{"ip", "link", "add", "name", h.link, "type", "veth", "peer", "name", "eth0", "netns", h.netns},
		[]string{"ip", "link", "set", h.link, "master", l.reg.rec.Bridge},
		[]string{"ip", "link", "set", h.link, "up"},
		[]string{"ip", "-n", h.netns, "link", "set", "lo", "up"},
		[]string{"ip", "-n", h.netns, "addr", "add", netip.PrefixFrom(h.ip, l.subnet.Bits()).String(), "dev", "eth0"},
		[]string{"ip", "-n", h.netns, "link", "set", "eth0", "up"},
	)
	if err != nil {
		return nil, err // the lab's Close removes what was made
	}
	return h, nil
}

// Name is the name AddHost was given.
func (h *Host) Name() string { return h.name }

// Netns is the namespace's name, as ip netns list shows it.
func (h *Host) Netns() string { return h.netns }

// Link is the host side of the host's veth pair, a port of the lab's bridge.
func (h *Host) Link() string { return h.link }

// IP is the host's address on the lab's subnet.
func (h *Host) IP() netip.Addr { return h.ip }

// Command is exec.CommandContext for a program that runs in the host's namespace
// (through ip netns exec, which execs it: the process's PID is the program's, so
// signals reach it). Its mounts are private to it; the file system is the caller's.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.netns, name}, args...)...)
}

// Do runs fn on an OS thread switched into the host's namespace, so the sockets fn
// opens (net.Listen, net.Dial, net.ListenPacket) belong to the host and stay there.
// Goroutines fn starts run in the caller's namespace, not the host's.
func (h *Host) Do(fn func() error) error {
	target, err := os.Open(netnsPath(h.netns))
	if err != nil {
		return fmt.Errorf("netlab: host %s: %w", h.name, err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	// A fresh goroutine, so the caller's thread never changes namespace.
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netlab: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netlab: enter %s: %w", h.netns, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// the thread stays locked and exits with the goroutine, namespace and all
			errc <- errors.Join(ferr, fmt.Errorf("netlab: leave %s: %w", h.netns, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
