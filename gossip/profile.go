package gossip

import (
	"fmt"
	"time"

	"github.com/hashicorp/memberlist"
)

// The profiles Config.Profile names.
const (
	ProfileLAN   = "lan"
	ProfileLocal = "local"
)

// profile is a memberlist configuration and how often Gossip pings the members itself
// (see check.go).
type profile struct {
	ml         *memberlist.Config
	checkEvery time.Duration
}

func newProfile(name string) (profile, error) {
	switch name {
	case ProfileLAN, "":
		c := memberlist.DefaultLANConfig()
		// A member restarted at a new address (same ID, say a rescheduled container)
		// takes over its dead entry after 30 s, as Consul allows; sooner, two
		// processes claiming one name could flap.
		c.DeadNodeReclaimTime = 30 * time.Second
		return profile{ml: c, checkEvery: c.ProbeInterval}, nil
	case ProfileLocal:
		// Loopback answers in microseconds, so probes can be far more frequent than
		// on a LAN; the numbers are chosen so that a member that stops is suspect
		// after ~0.25 s (two missed checks) and dead after ~1.5 s (2.5 s at most). See
		// the package documentation.
		c := memberlist.DefaultLocalConfig()
		c.ProbeInterval = 200 * time.Millisecond
		c.ProbeTimeout = 100 * time.Millisecond
		c.SuspicionMult = 5           // suspicion lasts 5 probe intervals (1 s) below 10 members
		c.SuspicionMaxTimeoutMult = 2 // and at most 2 s while confirmations are awaited
		c.GossipInterval = 50 * time.Millisecond
		c.PushPullInterval = 5 * time.Second
		c.TCPTimeout = time.Second
		c.GossipToTheDeadTime = 15 * time.Second
		// Tests restart members on new ports: a dead entry may be taken over at once.
		c.DeadNodeReclaimTime = time.Nanosecond
		return profile{ml: c, checkEvery: 100 * time.Millisecond}, nil
	}
	return profile{}, fmt.Errorf("gossip: profile %q: want %q or %q", name, ProfileLAN, ProfileLocal)
}
