package coordinator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/hashicorp/raft"
)

// memSink is a raft.SnapshotSink in memory.
type memSink struct{ bytes.Buffer }

func (*memSink) ID() string    { return "mem" }
func (*memSink) Cancel() error { return nil }
func (*memSink) Close() error  { return nil }

func stateJSON(t *testing.T, f *FSM) string {
	t.Helper()
	var b []byte
	f.Read(func(s *State) {
		var err error
		if b, err = json.Marshal(s); err != nil {
			t.Fatal(err)
		}
	})
	return string(b)
}

func sha(i int) string { return fmt.Sprintf("%064x", i) }

// gen makes random commands, mostly plausible given the state so far, some not.
type gen struct {
	r     *rand.Rand
	now   time.Time
	nodes []string
}

func (g *gen) pick(xs []string) string {
	if len(xs) == 0 {
		return "nobody"
	}
	return xs[g.r.IntN(len(xs))]
}

func (g *gen) next(s *State) []byte {
	g.now = g.now.Add(time.Duration(g.r.IntN(2000)) * time.Millisecond)
	var jobs, running []string
	for id, j := range s.Jobs {
		jobs = append(jobs, id)
		if j.State == api.Running {
			running = append(running, id)
		}
	}
	slices.Sort(jobs)
	slices.Sort(running)
	job := g.pick(jobs)
	if len(running) > 0 && g.r.IntN(4) > 0 {
		job = g.pick(running)
	}
	j := s.Jobs[job]
	var gen uint32
	var members []string
	if j != nil && j.Gen != nil {
		gen = j.Gen.Gen
		for _, m := range j.Gen.Members {
			members = append(members, m.Node)
		}
	}
	if g.r.IntN(10) == 0 {
		gen++ // a stale or future generation
	}
	node := g.pick(g.nodes)
	if len(members) > 0 && g.r.IntN(3) > 0 {
		node = g.pick(members)
	}
	var t string
	var body any
	// Weights: the commands that move a running job along come often, the ones that
	// end or start jobs rarely, so that sequences reach deep states.
	weights := []int{1, 1, 3, 2, 1, 4, 1, 4, 2, 1, 8, 6, 8, 2, 1, 1, 2, 1, 1, 2}
	k, w := 0, g.r.IntN(52)
	for w >= weights[k] {
		w -= weights[k]
		k++
	}
	switch k {
	case 0:
		id := fmt.Sprintf("c%d", g.r.IntN(3))
		t, body = CmdMemberJoin, api.JoinMember{ID: id, RaftAddr: id + ":1", APIAddr: id + ":2"}
	case 1:
		t, body = CmdMemberRemove, MemberRemove{ID: fmt.Sprintf("c%d", g.r.IntN(3))}
	case 2:
		t, body = CmdNodeRegister, api.RegisterNode{ID: node, RingAddr: node + ":7000"}
	case 3:
		h := []api.Health{api.Alive, api.Suspect, api.Dead, api.Left}[g.r.IntN(4)]
		t, body = CmdHealth, HealthUpdates{Updates: []HealthUpdate{{ID: node, Health: h}, {ID: "c1", Member: true, Health: h}}}
	case 4:
		n := 1 + g.r.IntN(4)
		job := api.Job{Spec: "task: classify", Cluster: api.ClusterSpec{Nodes: n, MinNodes: 1 + g.r.IntN(n)}.WithDefaults(),
			Train: &api.Dataset{Path: "blob:" + sha(1), Blob: sha(1)}}
		if g.r.IntN(2) == 0 {
			job.Eval = &api.Dataset{Path: "blob:" + sha(2), Blob: sha(2)}
		}
		t, body = CmdJobSubmit, JobSubmit{Job: job}
	case 5:
		which := []string{"train", "eval"}[g.r.IntN(2)]
		b := DatasetPlanned{Job: job, Which: which, Plan: sha(g.r.IntN(100)), Records: 100, Labels: []string{"a", "b"}}
		if g.r.IntN(8) == 0 {
			b.Error = "line 3: bad record"
		}
		t, body = CmdDatasetPlanned, b
	case 6:
		t, body = CmdJobReason, JobReason{Job: job, Reason: fmt.Sprintf("waiting %d", g.r.IntN(3))}
	case 7:
		ms := slices.Clone(members)
		for range g.r.IntN(3) {
			if n := g.pick(g.nodes); !slices.Contains(ms, n) && s.Nodes[n] != nil && s.Nodes[n].Job == "" {
				ms = append(ms, n)
			}
		}
		if g.r.IntN(8) == 0 {
			ms = append(ms, g.pick(g.nodes)) // perhaps busy, unknown or twice
		}
		if len(ms) > 1 && g.r.IntN(2) == 0 {
			ms = ms[1:]
		}
		t, body = CmdOpenGeneration, OpenGeneration{Job: job, Gen: gen + 1 - uint32(g.r.IntN(8)/7), Members: ms, Reason: "test"}
	case 8:
		t, body = CmdBeginReconfig, BeginReconfig{Job: job, Gen: gen, Cause: "growth"}
	case 9:
		keep := []string{}
		if len(members) > 0 {
			keep = members[:g.r.IntN(len(members))]
		}
		t, body = CmdWaitForNodes, WaitForNodes{Job: job, Gen: gen, Keep: keep, Reason: "waiting for nodes"}
	case 10:
		e := ""
		if g.r.IntN(2) == 0 {
			e = "ring: peer closed"
		}
		t, body = CmdFailure, JobFailure{Job: job, Report: api.FailureReport{Node: node, Gen: gen, Applied: int64(g.r.IntN(100)), Error: e}}
	case 11:
		r := api.ProgressReport{Node: node, Gen: gen, Step: int64(g.r.IntN(100)), TotalSteps: 100, Loss: g.r.Float64(), SamplesPerSec: 10}
		if g.r.IntN(4) == 0 {
			r.Eval, r.EvalStep = map[string]float64{"f1": g.r.Float64()}, r.Step
		}
		t, body = CmdProgress, JobProgress{Job: job, Report: r}
	case 12:
		sum := "aa"
		if g.r.IntN(10) == 0 {
			sum = "bb"
		}
		t, body = CmdCheckpoint, JobCheckpoint{Job: job, Report: api.CheckpointReport{Node: node, Gen: gen, Step: int64(10 * g.r.IntN(8)), Checksum: sum}}
	case 13:
		t, body = CmdResult, JobResult{Job: job, Report: api.ResultReport{Node: node, Kind: []string{"final", "best", "checkpoint", "bogus"}[g.r.IntN(4)], Blob: sha(g.r.IntN(3))}}
	case 14:
		e := ""
		if g.r.IntN(3) == 0 {
			e = "out of memory"
		}
		t, body = CmdDone, JobDone{Job: job, Report: api.DoneReport{Node: node, Gen: gen, Error: e}}
	case 15:
		t, body = CmdCancel, JobCancel{Job: job}
	case 16:
		t, body = CmdBlobStored, BlobStored{SHA: sha(g.r.IntN(3)), Size: 10, Member: fmt.Sprintf("c%d", g.r.IntN(3))}
	case 17:
		t, body = CmdBlobsCollect, BlobsCollect{Before: g.now.Add(-time.Duration(g.r.IntN(20)) * time.Second)}
	case 18:
		t, body = CmdNodeDrain, NodeDrain{Node: node, Drain: g.r.IntN(3) > 0}
	case 19:
		// Any node, often not a member: most members are alive or on their job.
		b := NodeRemove{Node: g.pick(g.nodes)}
		if g.r.IntN(3) == 0 {
			b.Before = g.now.Add(-time.Duration(g.r.IntN(20)) * time.Second) // the leader's GC
		}
		t, body = CmdNodeRemove, b
	}
	b, err := NewCommand(t, g.now, body)
	if err != nil {
		panic(err)
	}
	return b
}

// checkInvariants fails when the state breaks a rule every command must keep.
func checkInvariants(t *testing.T, s *State, step int) {
	t.Helper()
	for _, n := range s.Nodes {
		if n.Job == "" {
			continue
		}
		if n.Unproven {
			t.Fatalf("step %d: node %s is on job %s but unproven", step, n.ID, n.Job)
		}
		j := s.Jobs[n.Job]
		switch {
		case j == nil:
			t.Fatalf("step %d: node %s on unknown job %s", step, n.ID, n.Job)
		case j.State != api.Running:
			t.Fatalf("step %d: node %s on %s job %s", step, n.ID, j.State, j.ID)
		case j.Waiting == nil && j.Gen.Rank(n.ID) < 0:
			t.Fatalf("step %d: node %s on job %s but not in generation %d", step, n.ID, j.ID, j.Gen.Gen)
		case j.Waiting != nil && !slices.Contains(j.Waiting, n.ID):
			t.Fatalf("step %d: node %s on waiting job %s but not kept", step, n.ID, j.ID)
		}
	}
	for _, j := range s.Jobs {
		for _, r := range j.Results {
			if s.Blobs[r.Blob] == nil {
				t.Fatalf("step %d: job %s's result %s is not listed", step, j.ID, r.Blob)
			}
		}
		if j.State != api.Running {
			if j.Reconfig != nil || j.Waiting != nil {
				t.Fatalf("step %d: %s job %s has a reconfig or waiting list", step, j.State, j.ID)
			}
			continue
		}
		if j.Gen == nil {
			t.Fatalf("step %d: running job %s without a generation", step, j.ID)
		}
		for _, m := range append(members(j.Gen), j.Waiting...) {
			if s.Nodes[m] == nil {
				t.Fatalf("step %d: running job %s names %s, which is no node", step, j.ID, m)
			}
		}
		if j.Waiting == nil {
			for _, m := range j.Gen.Members {
				if s.Nodes[m.Node].Job != j.ID {
					t.Fatalf("step %d: %s in generation %d of %s is on %q", step, m.Node, j.Gen.Gen, j.ID, s.Nodes[m.Node].Job)
				}
			}
		}
		if j.Reconfig != nil && j.Reconfig.Gen != j.Gen.Gen {
			t.Fatalf("step %d: job %s reconfigures generation %d at %d", step, j.ID, j.Reconfig.Gen, j.Gen.Gen)
		}
		if len(j.Checkpoints) > keepCheckpoints || len(s.Events[j.ID]) > MaxEvents {
			t.Fatalf("step %d: job %s keeps too much", step, j.ID)
		}
	}
}

// TestFSMSnapshotRestore: for random command sequences, snapshotting after any prefix
// and restoring into a fresh FSM, then applying the rest, ends in the state of
// applying everything; and the state keeps its invariants after every command.
func TestFSMSnapshotRestore(t *testing.T) {
	for seed := range uint64(40) {
		g := &gen{r: rand.New(rand.NewPCG(seed, 7)), now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
			nodes: []string{"n1", "n2", "n3", "n4", "n5"}}
		all := NewFSM()
		var cmds [][]byte
		for i := range 400 {
			var c []byte
			all.Read(func(s *State) { c = g.next(s) })
			cmds = append(cmds, c)
			all.Apply(&raft.Log{Index: uint64(i + 1), Data: c})
			all.Read(func(s *State) { checkInvariants(t, s, i) })
			if i%4 == 0 {
				// A snapshot taken here restores to the same values, nil and empty told
				// apart: apply's logic may tell them apart.
				if r := roundTrip(t, all); !reflect.DeepEqual(all.state, r.state) {
					t.Fatalf("seed %d, step %d: a snapshot restores another state: %s", seed, i, firstDiff("state", reflect.ValueOf(all.state), reflect.ValueOf(r.state)))
				}
			}
		}
		cut := g.r.IntN(len(cmds))
		part := NewFSM()
		for i, c := range cmds[:cut] {
			part.Apply(&raft.Log{Index: uint64(i + 1), Data: c})
		}
		snap, err := part.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		var sink memSink
		if err := snap.Persist(&sink); err != nil {
			t.Fatal(err)
		}
		restored := NewFSM()
		var hooked uint64
		restored.OnApply(func(idx uint64) { hooked = idx })
		if err := restored.Restore(readCloser{&sink.Buffer}); err != nil {
			t.Fatal(err)
		}
		if hooked != uint64(cut) || restored.Index() != uint64(cut) {
			t.Fatalf("seed %d: restore at %d: hook saw %d, index %d", seed, cut, hooked, restored.Index())
		}
		for i, c := range cmds[cut:] {
			restored.Apply(&raft.Log{Index: uint64(cut + i + 1), Data: c})
		}
		if a, b := stateJSON(t, all), stateJSON(t, restored); a != b {
			t.Fatalf("seed %d, cut %d: restored state differs:\n%s\n%s", seed, cut, a, b)
		}
	}
}

type readCloser struct{ *bytes.Buffer }

func (readCloser) Close() error { return nil }

// TestFSMCoverage: the random sequences reach the states the tests above are about,
// so that the property is not vacuous.
func TestFSMCoverage(t *testing.T) {
	seen := map[string]int{}
	for seed := range uint64(40) {
		g := &gen{r: rand.New(rand.NewPCG(seed, 7)), now: time.Now(), nodes: []string{"n1", "n2", "n3", "n4", "n5"}}
		f := NewFSM()
		for i := range 400 {
			var c []byte
			f.Read(func(s *State) { c = g.next(s) })
			r := f.Apply(&raft.Log{Index: uint64(i + 1), Data: c}).(ApplyResult)
			var cmd Command
			if json.Unmarshal(c, &cmd) == nil && cmd.Type == CmdNodeRemove && r.Err == nil {
				var b NodeRemove
				json.Unmarshal(cmd.Body, &b)
				seen["node removed"]++
				f.Read(func(s *State) {
					for _, j := range s.Jobs {
						if j.Gen.Rank(b.Node) >= 0 {
							seen["node removed of a finished job"]++ // running ones refuse it
						}
					}
				})
			}
		}
		f.Read(func(s *State) {
			for _, evs := range s.Events {
				for _, e := range evs {
					seen[e.Kind]++
				}
			}
		})
	}
	t.Logf("events and removals: %v", seen)
	for _, k := range []string{"submitted", "planned", "generation", "reconfig", "failure", "confirm", "waiting", "checkpoint", "eval", "succeeded", "failed", "cancelled",
		"node removed", "node removed of a finished job"} {
		if seen[k] == 0 {
			t.Errorf("no %q event in any sequence: %v", k, seen)
		}
	}
}

// roundTrip snapshots f and restores the snapshot into a new FSM.
func roundTrip(t *testing.T, f *FSM) *FSM {
	t.Helper()
	return restored(t, snapshotBytes(t, f))
}

// firstDiff names the first place where a and b differ, nil and empty told apart.
func firstDiff(path string, a, b reflect.Value) string {
	if a.Kind() != b.Kind() {
		return path + ": kind"
	}
	switch a.Kind() {
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() != b.IsNil() {
			return fmt.Sprintf("%s: nil %v vs %v", path, a.IsNil(), b.IsNil())
		}
		if a.IsNil() {
			return ""
		}
		return firstDiff(path, a.Elem(), b.Elem())
	case reflect.Struct:
		for i := range a.NumField() {
			if d := firstDiff(path+"."+a.Type().Field(i).Name, a.Field(i), b.Field(i)); d != "" {
				return d
			}
		}
	case reflect.Slice:
		if a.IsNil() != b.IsNil() {
			return fmt.Sprintf("%s: nil %v vs %v (len %d %d)", path, a.IsNil(), b.IsNil(), a.Len(), b.Len())
		}
		if a.Len() != b.Len() {
			return path + ": len"
		}
		for i := range a.Len() {
			if d := firstDiff(fmt.Sprintf("%s[%d]", path, i), a.Index(i), b.Index(i)); d != "" {
				return d
			}
		}
	case reflect.Map:
		if a.IsNil() != b.IsNil() {
			return fmt.Sprintf("%s: nil map %v vs %v", path, a.IsNil(), b.IsNil())
		}
		for _, k := range a.MapKeys() {
			if d := firstDiff(fmt.Sprintf("%s[%v]", path, k), a.MapIndex(k), b.MapIndex(k)); d != "" {
				return d
			}
		}
	default:
		if a.CanInterface() && !reflect.DeepEqual(a.Interface(), b.Interface()) {
			return fmt.Sprintf("%s: %v vs %v", path, a.Interface(), b.Interface())
		}
		if !a.CanInterface() && fmt.Sprint(a) != fmt.Sprint(b) {
			return fmt.Sprintf("%s: %v vs %v", path, a, b)
		}
	}
	return ""
}

// TestEventLogKeepsWhatMatters: past MaxEvents a long job's log drops its oldest
// routine events (evals here), not its submission and generations. Eval events carry
// their step and metrics.
func TestEventLogKeepsWhatMatters(t *testing.T) {
	f := NewFSM()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	idx := uint64(0)
	apply := func(typ string, body any) {
		t.Helper()
		idx++
		b, _ := NewCommand(typ, now, body)
		if r := f.Apply(&raft.Log{Index: idx, Data: b}).(ApplyResult); r.Err != nil {
			t.Fatalf("%s: %v", typ, r.Err)
		}
	}
	apply(CmdNodeRegister, api.RegisterNode{ID: "n1", RingAddr: "n1:1"})
	apply(CmdJobSubmit, JobSubmit{Job: api.Job{Cluster: api.ClusterSpec{}.WithDefaults(), Train: &api.Dataset{Path: "x"}}})
	apply(CmdDatasetPlanned, DatasetPlanned{Job: "job-1", Which: "train", Plan: sha(1), Records: 10})
	apply(CmdOpenGeneration, OpenGeneration{Job: "job-1", Gen: 1, Members: []string{"n1"}, Reason: "start"})
	for step := range int64(2 * MaxEvents) {
		apply(CmdProgress, JobProgress{Job: "job-1", Report: api.ProgressReport{Node: "n1", Gen: 1, Step: step,
			Eval: map[string]float64{"f1": 0.5}, EvalStep: step + 1}})
	}
	f.Read(func(s *State) {
		ev := s.Events["job-1"]
		if len(ev) != MaxEvents || ev[0].Kind != "submitted" || ev[1].Kind != "planned" || ev[2].Kind != "generation" ||
			ev[len(ev)-1].Seq != 2*MaxEvents+3 || ev[3].Message != "eval at step 504: f1=0.5" ||
			ev[3].Step != 504 || ev[3].Metrics["f1"] != 0.5 || ev[2].Metrics != nil {
			t.Fatalf("%d events: %+v ... %+v", len(ev), ev[:4], ev[len(ev)-1])
		}
	})
}
