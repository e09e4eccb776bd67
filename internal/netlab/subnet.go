package netlab

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
)

// freeSubnet picks a /24 in 10.64.0.0/10 that overlaps no address and no route of the
// host namespace (the default route aside), so the lab's connected route shadows
// nothing the host uses. Labs alive now are seen through their bridges' addresses.
func freeSubnet() (netip.Prefix, error) {
	used, err := usedPrefixes()
	if err != nil {
		return netip.Prefix{}, err
	}
	start := rand.IntN(1 << 14)
	for i := range 1 << 14 {
		n := (start + i) % (1 << 14)
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(64 + n>>8), byte(n), 0}), 24)
		if !overlapsAny(p, used) {
			return p, nil
		}
	}
	return netip.Prefix{}, errors.New("netlab: no free /24 in 10.64.0.0/10")
}

func overlapsAny(p netip.Prefix, used []netip.Prefix) bool {
	for _, u := range used {
		if u.Bits() > 0 && u.Overlaps(p) {
			return true
		}
	}
	return false
}

// usedPrefixes lists the host namespace's IPv4 addresses (with their prefixes) and
// the destinations of its IPv4 routes in every table.
func usedPrefixes() ([]netip.Prefix, error) {
	var used []netip.Prefix
	addrs, err := output("ip", "-j", "-4", "addr", "show")
	if err != nil {
		return nil, err
	}
	var links []struct {
		AddrInfo []struct {
			Local     string `json:"local"`
			PrefixLen int    `json:"prefixlen"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal([]byte(addrs), &links); err != nil {
		return nil, fmt.Errorf("netlab: ip -j addr: %w", err)
	}
	for _, l := range links {
		for _, a := range l.AddrInfo {
			if p, err := netip.ParsePrefix(fmt.Sprintf("%s/%d", a.Local, a.PrefixLen)); err == nil {
				used = append(used, p.Masked())
			}
		}
	}
	routes, err := output("ip", "-j", "-4", "route", "show", "table", "all")
	if err != nil {
		return nil, err
	}
	var rs []struct {
		Dst string `json:"dst"`
	}
	if err := json.Unmarshal([]byte(routes), &rs); err != nil {
		return nil, fmt.Errorf("netlab: ip -j route: %w", err)
	}
	for _, r := range rs {
		if p, ok := parseDst(r.Dst); ok {
			used = append(used, p)
		}
	}
	return used, nil
}

// parseDst reads a route's destination: "default", "10.1.0.0/16" or a bare address.
func parseDst(s string) (netip.Prefix, bool) {
	if s == "default" || s == "" {
		return netip.Prefix{}, false
	}
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, false
		}
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, false
	}
	return p.Masked(), true
}
