package coordinator

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/bertnode/bertnode/api"
)

// decision is a command the leader proposes.
type decision struct {
	typ  string
	body any
}

// decide is the scheduling and reconfiguration the leader's loop does each pass: a
// pure function of the state and the time, so that it can be tested alone. Idle alive
// nodes go, in ID order, first to jobs closing a reconfiguration or waiting for
// nodes, then to pending jobs (oldest first, each when enough are idle for all its
// nodes), then to running jobs below cluster.nodes. A drained node gets no job, and
// leaves its own through a reconfiguration once the job can go on without it. Predict
// jobs take what idle nodes there are and need no reconfiguration (decidePredict).
func decide(st *State, now time.Time) []decision {
	var out []decision
	emit := func(typ string, body any) { out = append(out, decision{typ, body}) }
	idle := idleNodes(st, now)
	take := func(n int) []string {
		n = max(0, min(n, len(idle)))
		t := slices.Clone(idle[:n])
		idle = idle[n:]
		return t
	}
	gone := func(id string) bool {
		n := st.Nodes[id]
		return n == nil || n.Health == api.Dead || n.Health == api.Left
	}
	var running, pending []*api.Job
	for _, j := range sortedJobs(st) {
		switch j.State {
		case api.Running:
			running = append(running, j)
		case api.Pending:
			pending = append(pending, j)
		}
	}

	// Reconfigurations still gathering confirmations keep the idle nodes they may take,
	// replacements for drained members included.
	for _, j := range running {
		if rc := j.Reconfig; rc != nil && !closable(j, now, gone) {
			take(j.Cluster.Nodes - len(slices.DeleteFunc(members(j.Gen), func(m string) bool { return gone(m) || st.Nodes[m].Drain })))
		}
	}
	for _, j := range running {
		c := j.Cluster
		switch {
		case j.Waiting != nil:
			keep := slices.DeleteFunc(slices.Clone(j.Waiting), gone)
			if len(keep)+min(len(idle), c.Nodes-len(keep)) >= c.MinNodes {
				drained := draining(st, keep, len(idle), c)
				keep = slices.DeleteFunc(keep, func(m string) bool { return slices.Contains(drained, m) })
				joined := take(c.Nodes - len(keep))
				emit(CmdOpenGeneration, OpenGeneration{Job: j.ID, Gen: j.Gen.Gen + 1, Members: append(keep, joined...),
					Reason: describeChange(drained, joined, "enough nodes again")})
				continue
			}
			reason := fmt.Sprintf("waiting for nodes: %d of min %d", len(keep), c.MinNodes)
			if !slices.Equal(keep, j.Waiting) || reason != j.Reason {
				emit(CmdWaitForNodes, WaitForNodes{Job: j.ID, Gen: j.Gen.Gen, Keep: keep, Reason: reason})
			}
		case j.Reconfig != nil && closable(j, now, gone):
			var kept, lost []string
			for _, m := range members(j.Gen) {
				// A growth keeps a member that did not confirm in time (slow, say while
				// its coordinator calls fail over), unless gossip suspects it too: cut
				// off, it would stall the new ring until gossip calls it dead.
				slow := j.Reconfig.Growth && st.Nodes[m] != nil && st.Nodes[m].Health != api.Suspect
				if (slow || slices.Contains(j.Reconfig.Confirmed, m)) && !gone(m) {
					kept = append(kept, m)
				} else {
					lost = append(lost, m)
				}
			}
			if len(kept)+min(len(idle), c.Nodes-len(kept)) < c.MinNodes {
				emit(CmdWaitForNodes, WaitForNodes{Job: j.ID, Gen: j.Gen.Gen, Keep: kept,
					Reason: fmt.Sprintf("waiting for nodes: %d of min %d", len(kept), c.MinNodes)})
				continue
			}
			drained := draining(st, kept, len(idle), c)
			kept = slices.DeleteFunc(kept, func(m string) bool { return slices.Contains(drained, m) })
			lost = append(lost, drained...)
			joined := take(c.Nodes - len(kept))
			emit(CmdOpenGeneration, OpenGeneration{Job: j.ID, Gen: j.Gen.Gen + 1, Members: append(kept, joined...),
				Reason: describeChange(lost, joined, j.Reconfig.Cause)})
		}
	}
	for _, j := range pending {
		if !planned(j) {
			continue
		}
		if j.Kind == api.KindPredict && len(idle) > 0 { // units need no ring: start with the nodes there are
			emit(CmdOpenGeneration, OpenGeneration{Job: j.ID, Gen: 1, Members: take(j.Cluster.Nodes), Reason: "start"})
			continue
		}
		if len(idle) >= j.Cluster.Nodes {
			emit(CmdOpenGeneration, OpenGeneration{Job: j.ID, Gen: 1, Members: take(j.Cluster.Nodes), Reason: "start"})
			continue
		}
		if reason := fmt.Sprintf("waiting for nodes: %d of %d idle", len(idle), j.Cluster.Nodes); reason != j.Reason {
			emit(CmdJobReason, JobReason{Job: j.ID, Reason: reason})
		}
	}
	for _, j := range running {
		if j.Kind == api.KindPredict {
			decidePredict(st, j, take, gone, emit)
			continue
		}
		if j.Waiting != nil || j.Reconfig != nil {
			continue
		}
		var dead []string
		for _, m := range members(j.Gen) {
			if gone(m) {
				why := "removed" // not seen: nodeRemove and check keep a running job's members; decide stays total
				if n := st.Nodes[m]; n != nil {
					why = string(n.Health)
				}
				dead = append(dead, m+" "+why)
			}
		}
		if len(dead) > 0 {
			emit(CmdBeginReconfig, BeginReconfig{Job: j.ID, Gen: j.Gen.Gen, Cause: strings.Join(dead, ", ")})
			continue
		}
		if drained := draining(st, members(j.Gen), len(idle), j.Cluster); len(drained) > 0 {
			emit(CmdBeginReconfig, BeginReconfig{Job: j.ID, Gen: j.Gen.Gen, Cause: strings.Join(drained, ", ") + " draining"})
			continue
		}
		if now.Before(j.Gen.Opened.Add(growthDelay(j))) {
			continue // let the generation train before it is disturbed again
		}
		if joining := take(j.Cluster.Nodes - j.Gen.Ranks()); len(joining) > 0 {
			emit(CmdBeginReconfig, BeginReconfig{Job: j.ID, Gen: j.Gen.Gen, Cause: strings.Join(joining, ", ") + " joining", Growth: true})
		}
	}
	return out
}

// draining are the drained nodes among kept that the job's next generation can do
// without: at least one other stays to hand the job's state on (else it would start
// over from its last checkpoint), and with the idle nodes it may take the job keeps
// min_nodes (else it would stop to wait). Until then a drained node trains on; when
// its job ends it takes no other.
func draining(st *State, kept []string, idle int, c api.ClusterSpec) []string {
	var out []string
	for _, m := range kept {
		if n := st.Nodes[m]; n != nil && n.Drain {
			out = append(out, m)
		}
	}
	stay := len(kept) - len(out)
	if len(out) == 0 || stay < 1 || stay+min(idle, c.Nodes-stay) < c.MinNodes {
		return nil
	}
	return out
}

// growthDelay is how long a generation trains before idle nodes are added to it: a node
// just left out of it (it went silent, or was cut off) may still look alive to gossip,
// and adding it back at once would stall the survivors' new ring until it answers.
func growthDelay(j *api.Job) time.Duration {
	return max(5*time.Second, 2*time.Duration(j.Cluster.RejoinWindow))
}

// SuspectGrace is how long a reconfiguration waits for its members to confirm before
// it may leave out those a ring error named: a live member's agent confirms as soon as
// its blocking watch returns, in milliseconds.
const SuspectGrace = 300 * time.Millisecond

// closable says whether j's reconfiguration can close: every member confirmed or is
// gone; or, after SuspectGrace, every member yet to confirm is one a confirmed member's
// ring error named (it died or went silent: a killed rank's neighbours name it at
// once); or the deadline passed.
func closable(j *api.Job, now time.Time, gone func(string) bool) bool {
	rc := j.Reconfig
	if !now.Before(rc.Deadline) {
		return true
	}
	graced := !now.Before(rc.Started.Add(min(SuspectGrace, rc.Deadline.Sub(rc.Started))))
	for _, m := range members(j.Gen) {
		if slices.Contains(rc.Confirmed, m) || gone(m) {
			continue
		}
		if !graced || !named(rc, m) {
			return false
		}
	}
	return true
}

// named says whether a confirmed member's ring error named m.
func named(rc *api.Reconfig, m string) bool {
	for reporter, s := range rc.Suspects {
		if s == m && slices.Contains(rc.Confirmed, reporter) {
			return true
		}
	}
	return false
}

func members(g *api.Generation) []string {
	out := make([]string, len(g.Members))
	for i, m := range g.Members {
		out[i] = m.Node
	}
	return out
}

func describeChange(lost, joined []string, cause string) string {
	var parts []string
	if len(lost) > 0 {
		parts = append(parts, strings.Join(lost, ", ")+" left out")
	}
	if len(joined) > 0 {
		parts = append(parts, strings.Join(joined, ", ")+" joined")
	}
	if len(parts) == 0 {
		parts = append(parts, "ring rebuilt")
	}
	return strings.Join(parts, "; ") + " (" + cause + ")"
}

// UnprovenGrace is how long a node left out of a generation that has not registered
// again stays out while gossip calls it alive: a killed node is called dead well
// within it, and a live one whose agent cannot register (an older version) comes back.
const UnprovenGrace = 30 * time.Second

// idleNodes are the alive nodes on no job and not drained, in ID order, but for those
// left out of a generation less than UnprovenGrace ago that have not registered again
// since.
func idleNodes(st *State, now time.Time) []string {
	var out []string
	for id, n := range st.Nodes {
		if n.Job == "" && n.Health == api.Alive && !n.Drain && (!n.Unproven || !now.Before(n.LeftOut.Add(UnprovenGrace))) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

func sortedJobs(st *State) []*api.Job {
	out := make([]*api.Job, 0, len(st.Jobs))
	for _, j := range st.Jobs {
		if !j.State.Done() {
			out = append(out, j)
		}
	}
	slices.SortFunc(out, func(a, b *api.Job) int { return jobNumber(a.ID) - jobNumber(b.ID) })
	return out
}
