package netlab

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets tests start this binary as a helper process: in a host's namespace
// (helperDial) or as a test process that crashes with a lab open (helperCrash).
func TestMain(m *testing.M) {
	switch {
	case os.Getenv("NETLAB_HELPER_DIAL") != "":
		c, err := net.Dial("tcp", os.Getenv("NETLAB_HELPER_DIAL"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Fprintf(c, "%d %s\n", os.Getpid(), c.LocalAddr())
		c.Close()
		os.Exit(0)
	case os.Getenv("NETLAB_HELPER_CRASH") != "":
		helperCrash()
	}
	os.Exit(m.Run())
}

func newLab(t *testing.T) *Lab {
	t.Helper()
	if err := Available(); err != nil {
		t.Skip(err)
	}
	l, err := New("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}

func addHost(t *testing.T, l *Lab, name string) *Host {
	t.Helper()
	h, err := l.AddHost(name)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// listen opens a TCP listener on h's address (h nil: on the lab's gateway, in the
// caller's namespace).
func listen(t *testing.T, l *Lab, h *Host) net.Listener {
	t.Helper()
	var ln net.Listener
	open := func() (err error) {
		ip := l.Gateway()
		if h != nil {
			ip = h.IP()
		}
		ln, err = net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
		return err
	}
	var err error
	if h == nil {
		err = open()
	} else {
		err = h.Do(open)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// dial connects from h (nil: the caller's namespace) within timeout.
func dial(h *Host, network, addr string, timeout time.Duration) (c net.Conn, err error) {
	d := func() error {
		c, err = net.DialTimeout(network, addr, timeout)
		return err
	}
	if h == nil {
		return c, d()
	}
	return c, h.Do(d)
}

func listenUDP(t *testing.T, h *Host) net.PacketConn {
	t.Helper()
	var pc net.PacketConn
	if err := h.Do(func() (err error) {
		pc, err = net.ListenPacket("udp", net.JoinHostPort(h.IP().String(), "0"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

// acceptOne accepts one connection in the background.
func acceptOne(ln net.Listener) <-chan net.Conn {
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(ch)
			return
		}
		ch <- c
	}()
	return ch
}

// pair connects from h to ln and returns both ends.
func pair(t *testing.T, h *Host, ln net.Listener) (client, server net.Conn) {
	t.Helper()
	acc := acceptOne(ln)
	client, err := dial(h, "tcp", ln.Addr().String(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, ok := <-acc
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { server.Close() })
	return client, server
}

// exchange writes msg on a and reads it on b within timeout.
func exchange(a, b net.Conn, msg string, timeout time.Duration) error {
	if _, err := a.Write([]byte(msg)); err != nil {
		return err
	}
	return expect(b, msg, timeout)
}

func expect(c net.Conn, msg string, timeout time.Duration) error {
	c.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return fmt.Errorf("read %q, want %q", buf, msg)
	}
	return nil
}

func TestHostsTalkTCPAndUDP(t *testing.T) {
	l := newLab(t)
	a, b := addHost(t, l, "a"), addHost(t, l, "b")
	if !l.Subnet().Contains(a.IP()) || !l.Subnet().Contains(b.IP()) || a.IP() == b.IP() || a.IP() == l.Gateway() {
		t.Fatalf("addresses: subnet %s gateway %s a %s b %s", l.Subnet(), l.Gateway(), a.IP(), b.IP())
	}
	// namespace to namespace, through the bridge
	c, s := pair(t, b, listen(t, l, a))
	if got := c.LocalAddr().(*net.TCPAddr).IP.String(); got != b.IP().String() {
		t.Errorf("b's connection comes from %s, want %s", got, b.IP())
	}
	for i := range 3 {
		if err := exchange(c, s, fmt.Sprintf("ping %d", i), 10*time.Second); err != nil {
			t.Fatal(err)
		}
		if err := exchange(s, c, fmt.Sprintf("pong %d", i), 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	// the host namespace to a namespace, and a namespace to the host namespace's bridge address
	c2, s2 := pair(t, nil, listen(t, l, a))
	if err := exchange(c2, s2, "from the host namespace", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	c3, s3 := pair(t, a, listen(t, l, nil))
	if err := exchange(c3, s3, "to the host namespace", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// UDP both ways
	ua, ub := listenUDP(t, a), listenUDP(t, b)
	for _, d := range []struct{ from, to net.PacketConn }{{ua, ub}, {ub, ua}} {
		if err := udpDelivers(d.from, d.to, 10*time.Second); err != nil {
			t.Errorf("UDP %s -> %s: %v", d.from.LocalAddr(), d.to.LocalAddr(), err)
		}
	}
}

// udpDelivers sends datagrams from one socket to the other until one arrives.
func udpDelivers(from, to net.PacketConn, timeout time.Duration) error {
	msg := []byte("datagram " + from.LocalAddr().String())
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 256)
	for time.Now().Before(deadline) {
		from.WriteTo(msg, to.LocalAddr()) // errors (no neighbour yet) show as no delivery
		to.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, addr, err := to.ReadFrom(buf)
		if err == nil && string(buf[:n]) == string(msg) && addr.String() == from.LocalAddr().String() {
			return nil
		}
	}
	return errors.New("nothing arrived")
}

// TestCommandRunsInNamespace starts a process in a host that dials the host namespace
// through the gateway: its connection comes from the host's address, and the PID the
// caller sees is the program's own, not ip's.
func TestCommandRunsInNamespace(t *testing.T) {
	l := newLab(t)
	h := addHost(t, l, "n1")
	ln := listen(t, l, nil)
	acc := acceptOne(ln)
	cmd := h.Command(context.Background(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "NETLAB_HELPER_DIAL="+ln.Addr().String())
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var c net.Conn
	select {
	case c = <-acc:
	case <-time.After(30 * time.Second):
		t.Fatal("the process in the namespace never connected")
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	var local string
	fmt.Sscanf(line, "%d %s", &pid, &local)
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if pid != cmd.Process.Pid {
		t.Errorf("the program's PID is %d, the caller's Cmd has %d", pid, cmd.Process.Pid)
	}
	if host, _, _ := net.SplitHostPort(local); host != h.IP().String() {
		t.Errorf("process dialled from %s, want %s", local, h.IP())
	}
	if host, _, _ := net.SplitHostPort(c.RemoteAddr().String()); host != h.IP().String() {
		t.Errorf("the host namespace sees the process at %s, want %s", c.RemoteAddr(), h.IP())
	}
}

// TestPartitionCutsTCPAndUDP: a partitioned host's established connections (to
// another host and to the host namespace) carry nothing either way, new connections
// fail both ways, UDP is dropped both ways; after Heal the data written meanwhile
// arrives on the same connections, and new connections and UDP work.
func TestPartitionCutsTCPAndUDP(t *testing.T) {
	l := newLab(t)
	a, b := addHost(t, l, "a"), addHost(t, l, "b")
	lnA, lnB, lnHost := listen(t, l, a), listen(t, l, b), listen(t, l, nil)
	type conn struct {
		name           string
		inB, otherSide net.Conn
	}
	var conns []conn
	for _, target := range []struct {
		name string
		ln   net.Listener
	}{{"b-a", lnA}, {"b-hostns", lnHost}} {
		c, s := pair(t, b, target.ln)
		if err := exchange(c, s, "before", 10*time.Second); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn{target.name, c, s})
	}
	ua, ub := listenUDP(t, a), listenUDP(t, b)
	if err := udpDelivers(ub, ua, 10*time.Second); err != nil {
		t.Fatal(err)
	}

	if err := b.Partition(); err != nil {
		t.Fatal(err)
	}
	const cut = time.Second
	for _, c := range conns {
		if err := exchange(c.inB, c.otherSide, "from b during", cut); !isTimeout(err) {
			t.Fatalf("%s: b's write during the partition: %v, want a read timeout on the other side", c.name, err)
		}
		if err := exchange(c.otherSide, c.inB, "to b during", cut); !isTimeout(err) {
			t.Fatalf("%s: write to b during the partition: %v, want a read timeout in b", c.name, err)
		}
	}
	if c, err := dial(b, "tcp", lnA.Addr().String(), cut); err == nil {
		c.Close()
		t.Error("b dialled a during the partition")
	}
	for _, from := range []*Host{a, nil} {
		if c, err := dial(from, "tcp", lnB.Addr().String(), cut); err == nil {
			c.Close()
			t.Errorf("dialled b from %v during the partition", from)
		}
	}
	if err := udpDelivers(ub, ua, cut); err == nil {
		t.Error("UDP b -> a delivered during the partition")
	}
	if err := udpDelivers(ua, ub, cut); err == nil {
		t.Error("UDP a -> b delivered during the partition")
	}

	if err := b.Heal(); err != nil {
		t.Fatal(err)
	}
	// TCP retransmits what was written during the partition, after its backoff
	const heal = 60 * time.Second
	for _, c := range conns {
		if err := expect(c.otherSide, "from b during", heal); err != nil {
			t.Errorf("%s: b's write from during the partition after Heal: %v", c.name, err)
		}
		if err := expect(c.inB, "to b during", heal); err != nil {
			t.Errorf("%s: write to b from during the partition after Heal: %v", c.name, err)
		}
		if err := exchange(c.inB, c.otherSide, "after", heal); err != nil {
			t.Errorf("%s: after Heal: %v", c.name, err)
		}
	}
	c, s := pair(t, b, lnA)
	if err := exchange(s, c, "new after", heal); err != nil {
		t.Error(err)
	}
	for _, d := range []struct{ from, to net.PacketConn }{{ua, ub}, {ub, ua}} {
		if err := udpDelivers(d.from, d.to, heal); err != nil {
			t.Errorf("UDP %s -> %s after Heal: %v", d.from.LocalAddr(), d.to.LocalAddr(), err)
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// transfer sends n bytes from one host to a listener on the other and returns the
// receiver's rate in bits per second, from accept to the last byte.
func transfer(t *testing.T, l *Lab, from, to *Host, n int) float64 {
	t.Helper()
	ln := listen(t, l, to)
	acc := acceptOne(ln)
	c, err := dial(from, "tcp", ln.Addr().String(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, ok := <-acc
	if !ok {
		t.Fatal("accept failed")
	}
	defer s.Close()
	start := time.Now()
	go func() {
		c.Write(make([]byte, n))
		c.Close()
	}()
	s.SetReadDeadline(time.Now().Add(2 * time.Minute))
	got, err := io.Copy(io.Discard, s)
	if err != nil || got != int64(n) {
		t.Fatalf("received %d of %d bytes: %v", got, n, err)
	}
	return float64(n) * 8 / time.Since(start).Seconds()
}

// TestLimitCapsTransfer: 20 Mbit/s, replacing 100, caps a transfer either way (loosely:
// the benchmark measures precisely), also after a Partition and Heal; Unlimit lifts the
// cap. The cap sits far below what the unlimited link gives a loaded machine (160-220
// Mbit/s seen under -race).
func TestLimitCapsTransfer(t *testing.T) {
	l := newLab(t)
	a, b := addHost(t, l, "a"), addHost(t, l, "b")
	if err := b.Limit(100*Mbit, 0); err != nil {
		t.Fatal(err)
	}
	if err := b.Limit(20*Mbit, 0); err != nil { // replaces
		t.Fatal(err)
	}
	// a partition takes the link down and up: the limit stays
	if err := b.Partition(); err != nil {
		t.Fatal(err)
	}
	if err := b.Heal(); err != nil {
		t.Fatal(err)
	}
	const n = 2 << 20
	for _, d := range []struct {
		name     string
		from, to *Host
	}{{"out of b", b, a}, {"into b", a, b}} {
		r := transfer(t, l, d.from, d.to, n)
		t.Logf("%s at 20mbit: %.1f Mbit/s", d.name, r/1e6)
		if r > 26e6 || r < 2e6 {
			t.Errorf("%s: %.1f Mbit/s through a 20 Mbit/s limit", d.name, r/1e6)
		}
	}
	if err := b.Unlimit(); err != nil {
		t.Fatal(err)
	}
	if r := transfer(t, l, b, a, 12*n); r < 100e6 {
		t.Errorf("after Unlimit: %.1f Mbit/s, want well above the old 20 Mbit/s", r/1e6)
	} else {
		t.Logf("unlimited: %.0f Mbit/s", r/1e6)
	}
}

// TestCloseRemovesEverything: no namespace, link, qdisc, record or process of the
// lab survives Close.
func TestCloseRemovesEverything(t *testing.T) {
	l := newLab(t)
	a, b := addHost(t, l, "a"), addHost(t, l, "b")
	if err := b.Limit(Gbit, 0); err != nil {
		t.Fatal(err)
	}
	sleep := a.Command(context.Background(), "sleep", "600")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- sleep.Wait() }()
	id := l.reg.rec.ID
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	select {
	case <-waited:
	case <-time.After(30 * time.Second):
		t.Error("the process in the namespace outlived Close")
	}
	assertGone(t, prefix+id, []string{a.Netns(), b.Netns()})
	if _, err := l.AddHost("c"); err == nil {
		t.Error("AddHost after Close succeeded")
	}
}

// assertGone checks that nothing named with a lab's bridge name is left: namespaces,
// links, qdiscs, records.
func assertGone(t *testing.T, bridge string, netns []string) {
	t.Helper()
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, ns := range netns {
		if strings.Contains(string(out), ns) {
			t.Errorf("namespace %s left: %s", ns, out)
		}
	}
	out, _ = exec.Command("ip", "-br", "link").Output()
	if strings.Contains(string(out), bridge) {
		t.Errorf("links of %s left:\n%s", bridge, out)
	}
	out, _ = exec.Command("tc", "qdisc", "show").Output()
	if strings.Contains(string(out), bridge) {
		t.Errorf("qdiscs of %s left:\n%s", bridge, out)
	}
	for _, ext := range []string{".json", ".lock"} {
		if _, err := os.Stat(stateDir + "/" + bridge + ext); err == nil {
			t.Errorf("record %s%s left", bridge, ext)
		}
	}
}

type crashReport struct {
	Bridge string `json:"bridge"`
	Netns  string `json:"netns"`
	PID    int    `json:"pid"`
}

// helperCrash opens a lab with a limited host running a process, reports it, and
// waits to be killed.
func helperCrash() {
	l, err := New("crash")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	h, err := l.AddHost("x")
	if err == nil {
		err = h.Limit(Gbit, 0)
	}
	sleep := h.Command(context.Background(), "sleep", "600")
	if err == nil {
		err = sleep.Start()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		l.Close()
		os.Exit(1)
	}
	json.NewEncoder(os.Stdout).Encode(crashReport{Bridge: l.Bridge(), Netns: h.Netns(), PID: sleep.Process.Pid})
	select {}
}

// TestNewRemovesLeftoversOfACrash: a process killed with a lab open leaves it behind;
// the next New removes it, process included, and leaves a live lab alone.
func TestNewRemovesLeftoversOfACrash(t *testing.T) {
	live := newLab(t)
	liveHost := addHost(t, live, "live")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "NETLAB_HELPER_CRASH=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var rep crashReport
	err = json.NewDecoder(out).Decode(&rep)
	cmd.Process.Kill()
	cmd.Wait()
	if err != nil {
		t.Fatalf("crash helper: %v", err)
	}
	// left behind, until the next New
	t.Cleanup(func() { // should the sweep fail, still leave nothing
		exec.Command("ip", "netns", "del", rep.Netns).Run()
		exec.Command("ip", "link", "del", rep.Bridge).Run()
	})
	if _, err := net.InterfaceByName(rep.Bridge); err != nil {
		t.Fatalf("the crashed lab's bridge is already gone: %v", err)
	}
	if !alive(rep.PID) {
		t.Fatal("the crashed lab's process is already gone")
	}
	newLab(t)
	assertGone(t, rep.Bridge, []string{rep.Netns})
	deadline := time.Now().Add(30 * time.Second)
	for alive(rep.PID) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if alive(rep.PID) {
		t.Errorf("the process in the crashed lab (pid %d) survived", rep.PID)
	}
	if _, err := net.InterfaceByName(liveHost.Link()); err != nil {
		t.Errorf("the sweep removed a live lab's link: %v", err)
	}
	if _, err := os.Stat(netnsPath(liveHost.Netns())); err != nil {
		t.Errorf("the sweep removed a live lab's namespace: %v", err)
	}
}

// alive: the process exists and is not a zombie awaiting a reaper.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z" && syscall.Kill(pid, 0) == nil
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]Rate{"100mbit": 100 * Mbit, "1gbit": Gbit, "10Gbit": 10 * Gbit,
		"2.5gbit": 2500 * Mbit, "800kbit": 800 * Kbit, "1000000": Mbit} {
		got, err := ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
		if back, err := ParseRate(got.String()); err != nil || back != got {
			t.Errorf("%v does not round-trip through String: %q", got, got.String())
		}
	}
	for _, in := range []string{"", "fast", "-1gbit", "0", "2000gbit"} {
		if _, err := ParseRate(in); err == nil {
			t.Errorf("ParseRate(%q) accepted", in)
		}
	}
}

func TestFreeSubnetAvoidsUsedPrefixes(t *testing.T) {
	used := []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("10.64.0.0/16"),
		netip.MustParsePrefix("10.65.7.9/32")}
	for p, want := range map[string]bool{"10.64.3.0/24": true, "10.65.7.0/24": true, "10.65.8.0/24": false, "10.66.0.0/24": false} {
		if got := overlapsAny(netip.MustParsePrefix(p), used); got != want {
			t.Errorf("overlapsAny(%s) = %v, want %v (a default route takes nothing)", p, got, want)
		}
	}
	for s, want := range map[string]string{"default": "", "192.0.2.0/24": "192.0.2.0/24", "127.0.0.1": "127.0.0.1/32", "10.1.2.3/8": "10.0.0.0/8"} {
		p, ok := parseDst(s)
		if got := ""; ok {
			got = p.String()
			if got != want {
				t.Errorf("parseDst(%q) = %s, want %s", s, got, want)
			}
		} else if want != "" {
			t.Errorf("parseDst(%q) failed, want %s", s, want)
		}
	}
	if err := Available(); err != nil {
		t.Skip(err)
	}
	host, err := usedPrefixes()
	if err != nil {
		t.Fatal(err)
	}
	p, err := freeSubnet()
	if err != nil || overlapsAny(p, host) {
		t.Errorf("freeSubnet = %s, %v, overlapping the host's %v", p, err, host)
	}
}
