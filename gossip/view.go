package gossip

import (
	"encoding/json"
	"fmt"
	"log"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/bertnode/bertnode/api"
)

// wireMeta is what travels as memberlist node metadata: the member's Meta and whether
// it is leaving. memberlist marks a member that left and one that died alike in its
// events (the state that tells them apart is not exported), so a member about to
// leave first says so in its metadata.
type wireMeta struct {
	Meta
	Leaving bool `json:"leaving,omitempty"`
}

func encodeMeta(m Meta, leaving bool) ([]byte, error) {
	b, err := json.Marshal(wireMeta{Meta: m, Leaving: leaving})
	if err != nil {
		return nil, fmt.Errorf("gossip: meta: %w", err)
	}
	if len(b) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("gossip: meta is %d bytes as JSON, memberlist carries at most %d", len(b), memberlist.MetaMaxSize)
	}
	return b, nil
}

// missesToSuspect is how many checks in a row a member must miss to be suspect.
const missesToSuspect = 2

// view is this process's list of members, fed by memberlist's events (join, update,
// dead or left) and by Gossip's own checks (alive or suspect). It signals changes
// that consumers can see, coalesced, without blocking the caller.
type view struct {
	logger      *log.Logger
	forgetAfter time.Duration // dead and left members are dropped after this, as memberlist does

	mu      sync.Mutex
	members map[string]*entry
	changes chan struct{}
}

type entry struct {
	Member
	misses int       // checks missed in a row
	gone   time.Time // when it died or left
}

func newView(logger *log.Logger, forgetAfter time.Duration) *view {
	return &view{logger: logger, forgetAfter: forgetAfter, members: map[string]*entry{}, changes: make(chan struct{}, 1)}
}

func (v *view) decode(n *memberlist.Node) wireMeta {
	var w wireMeta
	if err := json.Unmarshal(n.Meta, &w); err != nil {
		v.logger.Printf("[WARN] gossip: member %s: unreadable meta %q: %v", n.Name, n.Meta, err)
	}
	return w
}

// set stores e and signals a change when what consumers see differs.
func (v *view) set(e *entry) {
	old, ok := v.members[e.Name]
	v.members[e.Name] = e
	if !ok || old.Member != e.Member {
		v.signal()
	}
}

func (v *view) signal() {
	select {
	case v.changes <- struct{}{}:
	default:
	}
}

// NotifyJoin, NotifyUpdate and NotifyLeave make v a memberlist.EventDelegate. memberlist
// calls them one at a time, holding its own lock: they must not call back into it.
func (v *view) NotifyJoin(n *memberlist.Node) { v.alive(n) }

func (v *view) NotifyUpdate(n *memberlist.Node) { v.alive(n) }

func (v *view) alive(n *memberlist.Node) {
	w := v.decode(n)
	v.mu.Lock()
	defer v.mu.Unlock()
	v.set(&entry{Member: Member{Name: n.Name, Addr: n.Address(), Meta: w.Meta, Health: api.Alive}})
}

func (v *view) NotifyLeave(n *memberlist.Node) {
	w := v.decode(n)
	h := api.Dead
	if w.Leaving {
		h = api.Left
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.set(&entry{Member: Member{Name: n.Name, Addr: n.Address(), Meta: w.Meta, Health: h}, gone: time.Now()})
}

// toCheck lists the members other than self that are alive or suspect.
func (v *view) toCheck(self string) []Member {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []Member
	for _, e := range v.members {
		if e.Name != self && (e.Health == api.Alive || e.Health == api.Suspect) {
			out = append(out, e.Member)
		}
	}
	return out
}

// checked records a check of m: answered, it is alive; missesToSuspect misses in a row
// make it suspect. A result about an address or health the member no longer has
// (memberlist's events moved on meanwhile) is dropped.
func (v *view) checked(m Member, answered bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	e, ok := v.members[m.Name]
	if !ok || e.Addr != m.Addr || (e.Health != api.Alive && e.Health != api.Suspect) {
		return
	}
	n := *e
	if answered {
		n.misses, n.Health = 0, api.Alive
	} else if n.misses++; n.misses >= missesToSuspect {
		n.Health = api.Suspect
	}
	v.set(&n)
}

// forget drops members dead or left for longer than forgetAfter.
func (v *view) forget(now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for name, e := range v.members {
		if !e.gone.IsZero() && now.Sub(e.gone) > v.forgetAfter {
			delete(v.members, name)
			v.signal()
		}
	}
}

func (v *view) list() []Member {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]Member, 0, len(v.members))
	for _, e := range v.members {
		out = append(out, e.Member)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
