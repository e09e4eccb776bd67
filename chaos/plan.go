// Package chaos is bertnode's fault suite (`make chaos`, `bertnode chaos`): it runs a
// training job on a local cluster of real processes (3 coordinators, 3 nodes), injects
// faults — nodes killed with SIGKILL mid-step and during the all-reduce, the raft leader
// killed, nodes stopped with SIGSTOP past the ring timeout, nodes cut off the network,
// replacement nodes joining mid-epoch, nodes drained and back, the coordinators
// restarted one by one as for an upgrade, every node but one killed at once, every
// process killed at once (a power loss), the coordinators' majority lost for a while,
// a node's disk filled, a node's checkpoint damaged — and checks after every run that the job finished, that every rank holds the same
// weights, that the audit logs show every sample trained exactly once, and how far the
// result is from a fault-free run's.
package chaos

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"
)

// Kind is a kind of fault.
type Kind string

const (
	// NodeKill: SIGKILL of a node mid-step (in its backward pass).
	NodeKill Kind = "node-kill"
	// AllReduceKill: SIGKILL of a node while its gradient all-reduce runs.
	AllReduceKill Kind = "allreduce-kill"
	// LeaderKill: SIGKILL of the raft leader; it restarts a few seconds later.
	LeaderKill Kind = "leader-kill"
	// NodeStop: SIGSTOP of a node past the ring timeout, then SIGCONT.
	NodeStop Kind = "node-stop"
	// Partition: a node's network cut (its namespace's link down), then healed.
	Partition Kind = "partition"
	// NodeJoin: a new node process joins the running job mid-epoch, replacing one that
	// was lost (a killed node's place is taken by a new process with a new ID).
	NodeJoin Kind = "node-join"
	// LeaderPartition: the raft leader cut off the network, then healed: the majority
	// elects another and goes on; the cut-off minority can decide nothing.
	LeaderPartition Kind = "leader-partition"
	// NodeDrain: a node drained (bertnode nodes drain) mid-epoch; once it has left the
	// job it is undrained, and joins back.
	NodeDrain Kind = "node-drain"
	// RollingRestart: every coordinator in turn stopped with SIGTERM and started again,
	// the next once the members list it alive: an upgrade's rolling restart.
	RollingRestart Kind = "rolling-restart"
	// NodesKill: SIGKILL of every node but one in the backward pass of the same step (a
	// rack losing power): the ring loses most of its ranks at once, and the survivor
	// alone holds the job's state until the others are back.
	NodesKill Kind = "nodes-kill"
	// PowerLoss: every process of the cluster, coordinators and nodes, SIGKILLed at
	// once, and all started again powerDown later: the job goes on from what the
	// coordinators' raft logs and the nodes' checkpoints kept.
	PowerLoss Kind = "power-loss"
	// QuorumLoss: the raft leader and another coordinator SIGKILLed at once, both
	// started again 6 s later: for that time the cluster has no majority and decides
	// nothing, while the ring trains on.
	QuorumLoss Kind = "quorum-loss"
	// DiskFull: a node's data directory, a disk of its own (a tmpfs: root only), filled
	// mid-job; the node drains itself at its next write and the job goes on without it.
	// Once it is out, the disk has room again and the node is undrained, and joins back.
	DiskFull Kind = "disk-full"
	// CheckpointRot: a node SIGKILLed, a byte of its newest checkpoint flipped (bit
	// rot), and the node started again: it must set the checkpoint aside, not resume
	// from it.
	CheckpointRot Kind = "checkpoint-rot"
)

// nodeDisk is the size of the disk a disk-full fault fills: room for a tiny BERT job's
// checkpoints and uploads.
const nodeDisk = 1 << 30

// powerDown is how long a power loss keeps the cluster down. Its recovery goal counts
// it: the restarted processes take over from there.
const powerDown = 3 * time.Second

// Kinds are all the kinds, in the order tables list them.
var Kinds = []Kind{NodeKill, AllReduceKill, LeaderKill, NodeStop, Partition, NodeJoin, LeaderPartition, NodeDrain, RollingRestart, NodesKill, PowerLoss, QuorumLoss, DiskFull, CheckpointRot}

// ParseKinds reads a comma-separated list of kinds.
func ParseKinds(s string) ([]Kind, error) {
	var out []Kind
	for _, f := range strings.Split(s, ",") {
		k := Kind(strings.TrimSpace(f))
		ok := false
		for _, v := range Kinds {
			ok = ok || v == k
		}
		if !ok {
			return nil, fmt.Errorf("fault kind %q: want one of %v", k, Kinds)
		}
		out = append(out, k)
	}
	return out, nil
}

// goal is the longest recovery the suite accepts from a fault of the kind.
func (k Kind) goal(ringTimeout time.Duration) (time.Duration, string) {
	switch {
	case k.silent():
		d := ringTimeout + 5*time.Second
		return d, fmt.Sprintf("< ring timeout + 5 s = %s", d)
	case k == PowerLoss:
		d := powerDown + 10*time.Second
		return d, fmt.Sprintf("< %s down + 10 s = %s", powerDown, d)
	}
	return 10 * time.Second, "< 10 s"
}

// silent says the fault leaves its victim alive but mute: the others find it only when
// the ring times out, so its recovery goal is the ring timeout plus 5 s.
func (k Kind) silent() bool { return k == NodeStop || k == Partition }

// Fault is one planned and injected fault.
type Fault struct {
	Kind   Kind   `json:"kind"`
	Target string `json:"target"` // the node (n1...), "leader", "coordinators" or "cluster"
	AtStep int64  `json:"at_step"`
	// Delay is how long a stop or partition lasts, or how long after the all-reduce
	// starts a kill lands.
	Delay time.Duration `json:"delay,omitempty"`
	// Injected is when it happened (zero: it did not: the job ended first), and Gen the
	// job's generation then: a kill, stop or partition is over when a later generation
	// applies a step; a leader kill, when any step is applied.
	Injected time.Time `json:"injected,omitzero"`
	Gen      uint32    `json:"gen"`
	// Recovery is the time from the fault to the next step the job applied.
	Recovery time.Duration `json:"recovery,omitempty"`
}

// plan picks a run's faults: one to three of the allowed kinds, each at a step of its
// own in [lo, hi). Node faults strike distinct nodes, at most nodes-1 of them, so the
// job always keeps a node that was never hit.
func plan(rng *rand.Rand, kinds []Kind, nodes int, lo, hi int64) []Fault {
	n := 1 + rng.IntN(3)
	victims := rng.Perm(nodes)[:nodes-1]
	var out []Fault
	for range n {
		f := Fault{Kind: kinds[rng.IntN(len(kinds))], AtStep: lo + rng.Int64N(hi-lo)}
		if f.Kind == LeaderKill || f.Kind == LeaderPartition || f.Kind == QuorumLoss {
			f.Target = "leader"
			f.Delay = 6 * time.Second
			out = append(out, f)
			continue
		}
		if f.Kind == RollingRestart || f.Kind == PowerLoss {
			f.Target = "coordinators"
			if f.Kind == PowerLoss {
				f.Target, f.Delay = "cluster", powerDown
			}
			out = append(out, f)
			continue
		}
		if len(victims) == 0 || f.Kind == NodesKill && len(victims) < 2 {
			continue
		}
		if f.Kind == NodesKill { // one fault a victim, all at the same step
			for _, v := range victims {
				f.Target = fmt.Sprintf("n%d", v+1)
				out = append(out, f)
			}
			victims = nil
			continue
		}
		f.Target, victims = fmt.Sprintf("n%d", victims[0]+1), victims[1:]
		switch f.Kind {
		case AllReduceKill:
			f.Delay = time.Duration(1+rng.IntN(8)) * time.Millisecond
		case NodeStop, Partition:
			f.Delay = time.Duration(2+rng.IntN(3)) * time.Second
		}
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].AtStep < out[j].AtStep })
	return out
}
