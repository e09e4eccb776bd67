package coordinator

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/bertnode/bertnode/api"
	"github.com/hashicorp/raft"
)

// Protocol is the coordinator protocol this build speaks: the command types its FSM
// applies, and what their bodies mean. Bump it when adding a command type (its
// applier's since is the new number), or a body field that an older FSM would ignore
// and so apply differently (its proposer then asks supports for the new number).
// Every member's FSM must apply every entry alike, so the leader proposes nothing
// that a member of the raft configuration speaks too old a protocol for; members
// record theirs in the replicated member list (docs/cluster.md, "Rolling upgrades").
const Protocol = 8

// ProtocolOldest is the protocol of a member whose record has none: coordinators
// before protocol versions did not record theirs, and may be as old as the first FSM.
const ProtocolOldest = 1

// memberProtocol is the protocol member m speaks, as the state records it.
func memberProtocol(m *api.Member) int {
	if m == nil || m.Protocol < ProtocolOldest {
		return ProtocolOldest
	}
	return m.Protocol
}

// applies says whether an FSM of protocol p applies command type typ.
func applies(typ string, p int) bool {
	a, ok := appliers[typ]
	return ok && a.since <= p
}

// supports refuses, with a 409 naming them, what needs protocol need while some
// server of the raft configuration speaks an older one.
func (s *Server) supports(what string, need int) error {
	if need <= ProtocolOldest {
		return nil
	}
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return unavailable(err)
	}
	var old []string
	s.fsm.Read(func(st *State) { old = st.tooOld(f.Configuration().Servers, s.id, s.cfg.Protocol, need) })
	if len(old) == 0 {
		return nil
	}
	return errorf(http.StatusConflict, "%s needs coordinator protocol %d, which not every member speaks yet: %s: upgrade them first",
		what, need, strings.Join(old, ", "))
}

// tooOld lists, with their protocols, the servers that speak an older protocol than
// need: voters and nonvoters alike, as both apply every entry. A server the state
// has no record of yet (one joining) counts as the oldest; self, whose protocol is
// given, as what its build speaks.
func (st *State) tooOld(servers []raft.Server, self string, protocol, need int) []string {
	var old []string
	for _, srv := range servers {
		p := protocol
		if string(srv.ID) != self {
			p = memberProtocol(st.Members[string(srv.ID)])
		}
		if p < need {
			old = append(old, fmt.Sprintf("%s (protocol %d)", srv.ID, p))
		}
	}
	return old
}
