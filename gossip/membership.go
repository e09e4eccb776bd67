// Package gossip says which members of a cluster are alive: every coordinator and node
// is a member of one hashicorp/memberlist cluster, encrypted with a key derived from the
// cluster secret. Consumers depend on Membership; *Gossip is the real one and Static its
// in-memory twin for tests.
//
// # Health
//
// memberlist's events give joins, metadata updates and departures; Gossip maps them to
// api.Alive and to api.Dead or api.Left (a leaving member marks itself in its
// metadata first, since memberlist's events do not tell the two apart). memberlist
// does not expose its suspicion, so Gossip pings the members itself and calls one
// that misses two pings in a row api.Suspect (check.go). Dead and left members stay
// listed until memberlist forgets them (GossipToTheDeadTime after their end).
//
// # Profiles
//
// "lan" is memberlist.DefaultLANConfig: probes every 1 s with a 500 ms timeout,
// suspicion of 4 probe intervals (more in large clusters, up to 6 times that while
// confirmations are awaited); Gossip's own pings go out every second. With three
// members on loopback a stopped one was suspect after 2.5 s and dead after 6-7 s. A
// dead member's name can be taken by a new address after 30 s.
//
// "local" is for members on one machine (loopback, tests), where a round trip takes
// microseconds and waiting a LAN's timeouts only slows tests down: probes every
// 200 ms with a 100 ms timeout, Gossip's own pings every 100 ms, suspicion of 5
// probe intervals (at most twice that). With three members a stopped one was
// suspect after ~0.25 s and dead after ~1.5 s (TestShutdownIsSuspectThenDead prints
// it), at most ~2.5 s in larger clusters; the second between the two leaves Gossip's
// pings room to see the suspicion before memberlist's verdict. A dead member's name
// may be taken at once by a new address, as a member restarted on a new port does. On
// a loaded machine memberlist slows its own probes (its "awareness"), so these are
// lower bounds.
package gossip

import (
	"sort"
	"sync"

	"github.com/bertnode/bertnode/api"
)

// Role is what a member is.
type Role string

const (
	Coordinator Role = "coordinator"
	Worker      Role = "node"
)

// Meta is what a member tells the others about itself (memberlist node metadata, JSON,
// at most 512 bytes).
type Meta struct {
	Role Role   `json:"role"`
	API  string `json:"api,omitempty"`  // coordinator: its HTTP API address
	Raft string `json:"raft,omitempty"` // coordinator: its raft address
	Ring string `json:"ring,omitempty"` // node: its all-reduce listener
	HTTP string `json:"http,omitempty"` // node: its own HTTP server
}

// Member is one member as this process sees it.
type Member struct {
	Name   string     `json:"name"` // the coordinator's or node's ID
	Addr   string     `json:"addr"` // gossip address, host:port
	Meta   Meta       `json:"meta"`
	Health api.Health `json:"health"`
}

// Membership is the view consumers need: the members with their health, and a signal
// when it changes.
type Membership interface {
	// Members lists every member known, sorted by name, including those it saw die or
	// leave (until memberlist forgets them).
	Members() []Member
	// Changes is signalled, coalesced and never blocking the sender, whenever a
	// member joins or its health or metadata changes.
	Changes() <-chan struct{}
}

// Static is a Membership set by hand: the in-memory twin for tests.
type Static struct {
	mu      sync.Mutex
	members map[string]Member
	changes chan struct{}
}

// NewStatic makes a Static holding ms.
func NewStatic(ms ...Member) *Static {
	s := &Static{members: map[string]Member{}, changes: make(chan struct{}, 1)}
	for _, m := range ms {
		s.members[m.Name] = m
	}
	return s
}

// Set adds or replaces a member and signals the change.
func (s *Static) Set(m Member) {
	s.mu.Lock()
	s.members[m.Name] = m
	s.mu.Unlock()
	select {
	case s.changes <- struct{}{}:
	default:
	}
}

// Remove forgets a member (as memberlist forgets one long gone) and signals the change.
func (s *Static) Remove(name string) {
	s.mu.Lock()
	delete(s.members, name)
	s.mu.Unlock()
	select {
	case s.changes <- struct{}{}:
	default:
	}
}

// SetHealth changes a known member's health.
func (s *Static) SetHealth(name string, h api.Health) {
	s.mu.Lock()
	m, ok := s.members[name]
	s.mu.Unlock()
	if ok {
		m.Health = h
		s.Set(m)
	}
}

func (s *Static) Members() []Member {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Member, 0, len(s.members))
	for _, m := range s.members {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (s *Static) Changes() <-chan struct{} { return s.changes }
