package coordinator

import (
	"bytes"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/hashicorp/raft"
)

// refused asserts that res is an error of status code whose message says want.
func refused(t *testing.T, what string, res ApplyResult, code int, want string) {
	t.Helper()
	var ae *api.Error
	if !errors.As(res.Err, &ae) || ae.Status != code || !strings.Contains(ae.Message, want) {
		t.Fatalf("%s: got %v, want a %d saying %q", what, res.Err, code, want)
	}
}

func (r *logRun) health(node string, h api.Health) {
	r.t.Helper()
	r.apply(time.Second, CmdHealth, HealthUpdates{Updates: []HealthUpdate{{ID: node, Health: h}}})
}

// TestNodeRemoveRefusals: a node gossip calls alive or suspect, one on a job, one a
// running job names in its generation (left out of a waiting job), and one dead only
// since the GC's cut-off stay, each with a 409 saying why; an unknown node is a 404.
// A refused removal changes nothing.
func TestNodeRemoveRefusals(t *testing.T) {
	r := newLogRun(t)
	r.apply(0, CmdNodeRegister, api.RegisterNode{ID: "n1", RingAddr: "n1:1"})
	refused(t, "an unknown node", r.try(time.Second, CmdNodeRemove, NodeRemove{Node: "n9"}), http.StatusNotFound, `no node "n9"`)
	refused(t, "an alive node", r.try(time.Second, CmdNodeRemove, NodeRemove{Node: "n1"}), http.StatusConflict, "node n1 is alive in gossip")
	r.health("n1", api.Suspect)
	refused(t, "a suspect node", r.try(time.Second, CmdNodeRemove, NodeRemove{Node: "n1"}), http.StatusConflict, "node n1 is suspect in gossip")

	// job-1 runs on n2 and n3 (min 2); n3 dies and the job waits, keeping n2: n2 stays
	// assigned, n3 is released but still in generation 1.
	r.apply(0, CmdNodeRegister, api.RegisterNode{ID: "n2", RingAddr: "n2:1"})
	r.apply(0, CmdNodeRegister, api.RegisterNode{ID: "n3", RingAddr: "n3:1"})
	id := r.apply(time.Second, CmdJobSubmit, JobSubmit{Job: api.Job{Cluster: api.ClusterSpec{Nodes: 2, MinNodes: 2}.WithDefaults(),
		Train: &api.Dataset{Path: "x"}}}).(string)
	r.apply(time.Second, CmdDatasetPlanned, DatasetPlanned{Job: id, Which: "train", Plan: sha(1), Records: 10})
	r.apply(time.Second, CmdOpenGeneration, OpenGeneration{Job: id, Gen: 1, Members: []string{"n2", "n3"}, Reason: "start"})
	r.health("n2", api.Dead)
	refused(t, "a dead node on a job", r.try(time.Second, CmdNodeRemove, NodeRemove{Node: "n2"}), http.StatusConflict, "node n2 is on job job-1")
	r.health("n2", api.Alive)
	r.health("n3", api.Dead)
	r.apply(time.Second, CmdWaitForNodes, WaitForNodes{Job: id, Gen: 1, Keep: []string{"n2"}, Reason: "waiting for nodes: 1 of min 2"})
	before := snapshotBytes(t, r.f)
	res := r.try(time.Second, CmdNodeRemove, NodeRemove{Node: "n3"})
	refused(t, "a member of a running job's generation", res, http.StatusConflict, "node n3 is in generation 1 of job job-1, which is running")
	r.f.state.Index--
	if after := snapshotBytes(t, r.f); !bytes.Equal(before, after) {
		t.Fatalf("a refused removal changed the state:\n%s\n%s", before, after)
	}
	r.f.state.Index++
	var reapable []string
	r.f.Read(func(s *State) { reapable = s.reapable(r.now.Add(time.Hour)) })
	if len(reapable) != 0 {
		t.Fatalf("reapable while job-1 needs them: %v", reapable)
	}

	// The GC's cut-off: dead since before it, and not after the command's time.
	r.apply(0, CmdNodeRegister, api.RegisterNode{ID: "n4", RingAddr: "n4:1"})
	r.health("n4", api.Left)
	since := r.now
	refused(t, "a node dead only since the cut-off", r.try(time.Second, CmdNodeRemove, NodeRemove{Node: "n4", Before: since}), http.StatusConflict, "node n4 is left only since")
	refused(t, "a cut-off in the future", r.try(time.Second, CmdNodeRemove, NodeRemove{Node: "n4", Before: r.now.Add(time.Hour)}), http.StatusBadRequest, "after the command's time")
	r.f.Read(func(s *State) { reapable = s.reapable(since.Add(time.Millisecond)) })
	if !slices.Equal(reapable, []string{"n4"}) {
		t.Fatalf("reapable: %v, want n4", reapable)
	}
	r.apply(time.Second, CmdNodeRemove, NodeRemove{Node: "n4", Before: since.Add(time.Millisecond)})

	// A restored state may keep a node on a waiting list that is on no job (no command
	// makes one): it stays too.
	s := NewState()
	s.Nodes["n5"] = &api.Node{ID: "n5", Health: api.Dead}
	s.Jobs["job-1"] = &api.Job{ID: "job-1", State: api.Running, Gen: &api.Generation{Gen: 2}, Waiting: []string{"n5"}}
	if err := s.nodeRemove(r.now, NodeRemove{Node: "n5"}); err == nil || !strings.Contains(err.Error(), "node n5 is kept for the next generation of job job-1") {
		t.Fatalf("removing a node kept on a waiting list: %v", err)
	}
}

// TestNodeRemoveAndComeBack: a dead node of a finished job goes; the job keeps naming
// it, a snapshot of that state restores (check accepts a finished job naming a removed
// node, and still refuses a running one), and the leader's decisions, the queries and
// the job's commands work on it. The node that comes back registers as a new one.
func TestNodeRemoveAndComeBack(t *testing.T) {
	r := newLogRun(t)
	id := r.job("n1", sha(1), sha(2))
	r.apply(time.Second, CmdNodeDrain, NodeDrain{Node: "n1", Drain: true})
	r.apply(time.Second, CmdProgress, JobProgress{Job: id, Report: api.ProgressReport{Node: "n1", Gen: 1, Step: 3, TotalSteps: 3, SamplesPerSec: 5}})
	r.apply(time.Second, CmdDone, JobDone{Job: id, Report: api.DoneReport{Node: "n1", Gen: 1, Step: 3}})
	r.health("n1", api.Dead)
	idx := r.idx + 1
	r.apply(time.Second, CmdNodeRemove, NodeRemove{Node: "n1"})
	r.f.Read(func(s *State) {
		if s.Nodes["n1"] != nil {
			t.Fatal("n1 is still in the state")
		}
		for _, topic := range []string{topicNode("n1"), topicNodes, topicAssign("n1")} {
			if s.Topics[topic] != idx {
				t.Errorf("topic %s at %d, want %d: its watchers would not wake", topic, s.Topics[topic], idx)
			}
		}
		if _, err := s.Assignment("n1"); err == nil || !strings.Contains(err.Error(), `no node "n1" (register first)`) {
			t.Errorf("assignment of a removed node: %v", err)
		}
		if j := s.Jobs[id]; j.State != api.Succeeded || j.Gen.Members[0].Node != "n1" {
			t.Errorf("the finished job: %+v", j)
		}
	})

	snap := snapshotBytes(t, r.f)
	f := restored(t, snap) // fails the test if check refuses it
	f.Read(func(s *State) {
		if ds := decide(s, r.now.Add(time.Hour)); len(ds) != 0 {
			t.Errorf("decisions on a finished job naming a removed node: %+v", ds)
		}
		nodeList(s)
		jobList(s)
		s.reapable(r.now)
	})
	for _, c := range []struct {
		typ  string
		body any
	}{
		{CmdProgress, JobProgress{Job: id, Report: api.ProgressReport{Node: "n1", Gen: 1, Step: 4}}},
		{CmdFailure, JobFailure{Job: id, Report: api.FailureReport{Node: "n1", Gen: 1, Error: "x"}}},
		{CmdResult, JobResult{Job: id, Report: api.ResultReport{Node: "n1", Kind: "final", Blob: sha(1)}}},
		{CmdDone, JobDone{Job: id, Report: api.DoneReport{Node: "n1", Gen: 1}}},
		{CmdNodeDrain, NodeDrain{Node: "n1", Drain: false}},
		{CmdHealth, HealthUpdates{Updates: []HealthUpdate{{ID: "n1", Health: api.Alive}}}},
	} {
		b, _ := NewCommand(c.typ, r.now, c.body)
		if res := f.Apply(&raft.Log{Index: f.Index() + 1, Data: b}).(ApplyResult); res.Err == nil && c.typ != CmdHealth {
			t.Errorf("%s from a removed node of a finished job: accepted", c.typ)
		}
	}

	// The same generation in a running job is refused, as before.
	broken := bytes.Replace(snap, []byte(`"state":"succeeded"`), []byte(`"state":"running"`), 1)
	if err := NewFSM().Restore(readCloser{bytes.NewBuffer(broken)}); err == nil || !strings.Contains(err.Error(), `member "n1", which is no node`) {
		t.Fatalf("restoring a running job whose member is no node: %v", err)
	}

	// It comes back: a new node, alive, not drained, registered now, and it takes work.
	r.apply(time.Minute, CmdNodeRegister, api.RegisterNode{ID: "n1", Name: "again", RingAddr: "n1:2"})
	r.f.Read(func(s *State) {
		n := s.Nodes["n1"]
		if n == nil || n.Health != api.Alive || n.Drain || !n.Registered.Equal(r.now) || n.Stats != nil || n.Name != "again" {
			t.Fatalf("n1 registered again: %+v", n)
		}
	})
	id2 := r.job("n1", sha(3), sha(4))
	r.f.Read(func(s *State) {
		if s.Nodes["n1"].Job != id2 {
			t.Fatalf("n1 is on %q, want %s", s.Nodes["n1"].Job, id2)
		}
	})
}
