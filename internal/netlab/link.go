package netlab

import "fmt"

// Partition cuts the host off: the host side of its veth pair goes down, so the
// bridge forwards nothing to it and what it sends is dropped at the pair. Established
// connections stay open on both ends but carry nothing (writes fill the socket buffer
// and then block, reads time out, TCP retransmits with backoff), new connections time
// out and UDP is dropped, both ways, without an error to the sender, and the host's
// processes keep running. TestPartitionCutsTCPAndUDP checks it. A blackhole qdisc on
// both ends measured the same (tc's other drop tools, netem and filters, are missing
// from some kernels); link down is used because it leaves Limit's qdiscs alone. Inside
// the namespace eth0 shows NO-CARRIER meanwhile.
func (h *Host) Partition() error {
	return run("ip", "link", "set", h.link, "down")
}

// Heal reconnects a partitioned host; a Limit set before stays. Established TCP
// connections resume at their next retransmission, which backoff may put seconds away
// after a long partition (5-6 s after about 6 s cut off, in TestPartitionCutsTCPAndUDP).
func (h *Host) Heal() error {
	return run("ip", "link", "set", h.link, "up")
}

// Limit caps the host's link at rate in each direction with a token bucket filter
// (tc tbf) on both ends of its veth pair. burst is the bucket in bytes, the most sent
// at once at line speed; 0 picks max(128 KiB, 1 ms at rate). The queue holds 50 ms at
// rate beyond the bucket. Calling it again replaces the limit.
func (h *Host) Limit(rate Rate, burst int) error {
	if rate == 0 {
		return fmt.Errorf("netlab: host %s: rate 0", h.name)
	}
	if burst <= 0 {
		burst = max(128<<10, int(rate/8/1000))
	}
	if burst < 2048 {
		return fmt.Errorf("netlab: host %s: burst %d bytes is smaller than a packet", h.name, burst)
	}
	limit := burst + int(rate/8/20)
	args := []string{"qdisc", "replace", "dev", "", "root", "tbf", "rate", fmt.Sprintf("%dbit", uint64(rate)),
		"burst", fmt.Sprint(burst), "limit", fmt.Sprint(limit)}
	h.mu.Lock()
	defer h.mu.Unlock()
	args[3] = h.link
	if err := run("tc", args...); err != nil {
		return err
	}
	h.limited = true
	args[3] = "eth0"
	return run("tc", append([]string{"-n", h.netns}, args...)...)
}

// Unlimit removes the rate limit from both ends.
func (h *Host) Unlimit() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.limited {
		return nil
	}
	if err := runAll([]string{"tc", "qdisc", "del", "dev", h.link, "root"},
		[]string{"tc", "-n", h.netns, "qdisc", "del", "dev", "eth0", "root"}); err != nil {
		return err
	}
	h.limited = false
	return nil
}
