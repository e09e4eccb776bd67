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
// and so apply differently (its proposer then asks supports for the new number), or a
// value of a state field that an older build would misread (State.needs then counts
// it, so that such a build halts on a snapshot holding it).
// Every member's FSM must apply every entry alike, so the leader proposes nothing
// that a member of the raft configuration speaks too old a protocol for; members
// record theirs in the replicated member list (docs/cluster.md, "Rolling upgrades").
const Protocol = 9

// ProtocolOldest is the protocol of a member whose record has none: coordinators
// before protocol versions did not record theirs, and may be as old as the first FSM.
const ProtocolOldest = 1

// Fields added to a command type's body before protocol versions, by the first
// protocol every build of which applies them as this one does (git history: each came
// between two command types, so the protocol before holds builds with and without
// it). An FSM older than that applies the entry as if the field were absent, so their
// proposer asks supports for it and, short of it, takes the older way every FSM
// applies alike, or refuses. (Other fields came so too, and are not gated: an older
// FSM's state lacks them, and nothing it does reads them. docs/cluster.md, Rolling
// upgrades, lists them.)
const (
	// protocolGrowth: BeginReconfig.Growth came (2dcccab) among protocol 1's builds,
	// before CmdBlobsCollect (2). Short of it, the leader opens a growth as a plain
	// reconfiguration.
	protocolGrowth = 2
	// protocolCopy: a BlobStored without Upload (a copy between members) means a copy
	// from protocol 5 on. Upload came (0609baa) among protocol 2's builds, whose FSMs
	// before it renew the grace of every blob recorded; protocol 4's began (df6b572)
	// to ignore a copy of a blob no longer listed, which older ones list again. Short
	// of 5, the leader records a copy as an upload, which every FSM applies as its
	// builds before Upload did every record.
	protocolCopy = 5
	// protocolSuspect: a failure report's Suspect (whom a ring error named) is recorded
	// (Reconfig.Suspects, 6470893) by protocol 1's later builds, whose reconfiguration
	// then closes once SuspectGrace has passed. Short of 2, the leader drops it from the
	// report: the reconfiguration waits for its rejoin window, as before.
	protocolSuspect = 2
	// protocolDoneEval: a done report's Eval and EvalStep (the job's last evaluation)
	// came (1e8468d) among protocol 1's builds. Short of 2, the leader drops them: the
	// job keeps the evaluation its progress reports gave, as before.
	protocolDoneEval = 2
	// protocolUploads: a job's Uploads (the model and tokenizer submit uploaded) came
	// (f471034) among protocol 2's builds, whose FSMs before it drop the field, and
	// whose blob collection then unlists those blobs while the job runs. Short of 3, the
	// leader refuses such a job.
	protocolUploads = 3
)

// protocolLossScale: a progress report's LossScale and Skipped (an fp16 job's loss
// scale and steps skipped) are recorded in the job's progress from protocol 9 on; an
// older FSM ignores them, and its state has no place for them. Short of 9, the leader
// drops them from the report: the job's progress shows no loss scale, as before.
const protocolLossScale = 9

// progress is node report r on job id as every member applies it alike.
func (s *Server) progress(id string, r api.ProgressReport) any {
	if (r.LossScale != 0 || r.Skipped != 0) && s.supports("a progress report's loss scale", protocolLossScale) != nil {
		r.LossScale, r.Skipped = 0, 0
	}
	return JobProgress{id, r}
}

// failure is node report r on job id as every member applies it alike.
func (s *Server) failure(id string, r api.FailureReport) any {
	if r.Suspect != "" && s.supports("a ring error's suspect", protocolSuspect) != nil {
		r.Suspect = ""
	}
	return JobFailure{id, r}
}

// done is node report r on job id as every member applies it alike.
func (s *Server) done(id string, r api.DoneReport) any {
	if len(r.Eval) > 0 && s.supports("a done report's evaluation", protocolDoneEval) != nil {
		r.Eval, r.EvalStep = nil, 0
	}
	return JobDone{id, r}
}

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
