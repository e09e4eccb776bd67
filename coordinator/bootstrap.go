package coordinator

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/hashicorp/raft"
)

// expect is --bootstrap-expect, as Consul's bootstrap_expect: the same command line on
// every member, none of them special. Once this member finds Config.BootstrapExpect
// members at the Join addresses (itself included), none of them in a cluster, it
// bootstraps a cluster of them all. Each of them does the same with the same servers,
// which hashicorp/raft allows (one configuration bootstrapped alike on several servers
// is one cluster; a server without one grants its vote to a candidate that lists it).
// Finding a member in a cluster already, it leaves the joining to announce, as
// --join does: a member restarted with an emptied data directory, or one more than
// expected, joins the cluster rather than start another.
func (s *Server) expect() {
	want, warned := s.cfg.BootstrapExpect, false
	for !s.clustered() {
		found := map[string]raft.Server{s.id: {ID: raft.ServerID(s.id), Address: raft.ServerAddress(s.RaftAddr())}}
		joined := false
		for _, addr := range s.cfg.Join {
			ctx, cancel := context.WithTimeout(s.ctx, 2*time.Second)
			m, err := s.client([]string{addr}).Self(ctx)
			cancel()
			if err != nil {
				continue
			}
			if m.Clustered {
				joined = true
				break
			}
			found[m.ID] = raft.Server{ID: raft.ServerID(m.ID), Address: raft.ServerAddress(m.RaftAddr)}
		}
		switch {
		case joined:
			s.log.Info("bootstrap-expect: a member is in a cluster already: joining it")
			return
		case len(found) == want:
			servers := slices.SortedFunc(maps.Values(found), func(a, b raft.Server) int { return cmp.Compare(a.ID, b.ID) })
			err := s.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
			// ErrCantBootstrap: a configuration reached this member meanwhile, from a
			// leader that another member's bootstrap elected.
			if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
				s.log.Error("bootstrap-expect: bootstrap", "err", err)
			} else {
				s.log.Info("bootstrap-expect: bootstrapped", "members", len(servers))
			}
			return
		case len(found) > want && !warned:
			s.log.Error("bootstrap-expect: found more members than expected: bootstrapping none", "found", len(found), "expected", want)
			warned = true
		}
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// clustered says whether this member's raft configuration lists servers.
func (s *Server) clustered() bool {
	f := s.raft.GetConfiguration()
	return f.Error() == nil && len(f.Configuration().Servers) > 0
}

// getSelf is GET /v1/self: this member, from itself (api.Self).
func (s *Server) getSelf(w http.ResponseWriter, r *http.Request) {
	self := api.Self{JoinMember: s.self(), Clustered: s.clustered()}
	if err := s.fsm.Halted(); err != nil {
		self.Halted = err.Error()
	}
	writeJSON(w, http.StatusOK, self)
}
