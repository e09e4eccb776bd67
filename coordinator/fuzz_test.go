package coordinator

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/hashicorp/raft"
)

// fuzzStart is the time of the first command of a fuzzed log; each command comes a
// second after the one before, as from a leader's clock.
var fuzzStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// baseLog is the log a fuzzed one continues: a member, three nodes, stored blobs, a
// job running on n1 and n2 with a checkpoint result, and a pending job, so that the
// fuzzer's commands start from a deep state.
func baseLog() [][]byte {
	cl := api.ClusterSpec{Nodes: 2, MinNodes: 1}.WithDefaults()
	cmds := []struct {
		typ  string
		body any
	}{
		{CmdMemberJoin, api.JoinMember{ID: "c1", RaftAddr: "c1:1", APIAddr: "c1:2"}},
		{CmdNodeRegister, api.RegisterNode{ID: "n1", RingAddr: "n1:1"}},
		{CmdNodeRegister, api.RegisterNode{ID: "n2", RingAddr: "n2:1"}},
		{CmdNodeRegister, api.RegisterNode{ID: "n3", RingAddr: "n3:1"}},
		{CmdBlobStored, BlobStored{SHA: sha(1), Size: 10, Member: "c1", Upload: true}},
		{CmdBlobStored, BlobStored{SHA: sha(2), Size: 10, Member: "c1", Upload: true}},
		{CmdJobSubmit, JobSubmit{Job: api.Job{Spec: "task: classify", Cluster: cl,
			Train: &api.Dataset{Path: "blob:" + sha(1), Blob: sha(1)}, Eval: &api.Dataset{Path: "blob:" + sha(2), Blob: sha(2)}}}},
		{CmdBlobStored, BlobStored{SHA: sha(3), Size: 10, Member: "c1", Upload: true}},
		{CmdDatasetPlanned, DatasetPlanned{Job: "job-1", Which: "train", Plan: sha(3), Records: 3, Labels: []string{"ham", "spam"}}},
		{CmdDatasetPlanned, DatasetPlanned{Job: "job-1", Which: "eval", Plan: sha(3), Records: 3}},
		{CmdOpenGeneration, OpenGeneration{Job: "job-1", Gen: 1, Members: []string{"n1", "n2"}, Reason: "start"}},
		{CmdBlobStored, BlobStored{SHA: sha(4), Size: 20, Member: "c1", Upload: true}},
		{CmdResult, JobResult{Job: "job-1", Report: api.ResultReport{Node: "n1", Kind: "checkpoint", Blob: sha(4), Step: 5}}},
		{CmdJobSubmit, JobSubmit{Job: api.Job{Spec: "task: classify", Cluster: cl, Train: &api.Dataset{Path: "/shared/train.tsv"}}}},
	}
	var out [][]byte
	for i, c := range cmds {
		b, err := NewCommand(c.typ, fuzzStart.Add(time.Duration(i)*time.Second), c.body)
		if err != nil {
			panic(err)
		}
		out = append(out, b)
	}
	return out
}

// fuzzLog turns the fuzz input, lines of "<type> <body JSON>", into commands that
// continue baseLog. Lines whose body is not JSON, or whose type is none, are left out:
// only the leader makes commands, with NewCommand, of the types its FSM applies (an
// FSM halts on others: TestFSMHaltsOnNewerCommand).
func fuzzLog(data []byte, start int) [][]byte {
	var out [][]byte
	for line := range strings.Lines(string(data)) {
		typ, body, _ := strings.Cut(strings.TrimSpace(line), " ")
		if !json.Valid([]byte(body)) || !applies(typ, Protocol) {
			continue
		}
		b, err := NewCommand(typ, fuzzStart.Add(time.Duration(start+len(out))*time.Second), json.RawMessage(body))
		if err != nil {
			continue
		}
		out = append(out, b)
	}
	return out
}

// genLines are lines for fuzzLog made by gen: plausible sequences from the base state.
func genLines(seed uint64, n int) []byte {
	f := NewFSM()
	base := baseLog()
	for i, c := range base {
		f.Apply(&raft.Log{Index: uint64(i + 1), Data: c})
	}
	g := &gen{r: rand.New(rand.NewPCG(seed, 11)), now: fuzzStart, nodes: []string{"n1", "n2", "n3", "n4"}}
	var out bytes.Buffer
	for i := range n {
		var b []byte
		f.Read(func(s *State) { b = g.next(s) })
		var c Command
		if err := json.Unmarshal(b, &c); err != nil {
			panic(err)
		}
		out.WriteString(c.Type + " " + string(c.Body) + "\n")
		f.Apply(&raft.Log{Index: uint64(len(base) + i + 1), Data: b})
	}
	return out.Bytes()
}

// snapshotBytes is f's state as its snapshot holds it.
func snapshotBytes(t testing.TB, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	return sink.Bytes()
}

func restored(t *testing.T, snap []byte) *FSM {
	t.Helper()
	f := NewFSM()
	if err := f.Restore(readCloser{bytes.NewBuffer(slices.Clone(snap))}); err != nil {
		t.Fatalf("restoring a snapshot: %v", err)
	}
	return f
}

// failedByChecksums says whether c is a checkpoint report whose job the replicas'
// differing checksums failed: the one rejected command that changes the state.
func failedByChecksums(s *State, c *Command) bool {
	var b JobCheckpoint
	if c.Type != CmdCheckpoint || json.Unmarshal(c.Body, &b) != nil {
		return false
	}
	j := s.Jobs[b.Job]
	return j != nil && j.State == api.Failed && strings.Contains(j.Reason, "the replicas differ")
}

// FuzzApply applies the fuzzed commands, and after each the leader's decisions and node
// GC on the state, to an FSM holding baseLog's state. After every command: it did not
// panic; a rejected one changed nothing but the index; an FSM restored from the
// snapshot taken just before answers the command the same and ends in the same state;
// the state keeps checkInvariants; and the leader's decisions and removals are
// accepted. At the end an FSM fed the whole log from scratch holds the same state.
func FuzzApply(f *testing.F) {
	for seed := range uint64(4) {
		f.Add(genLines(seed, 20))
	}
	f.Add([]byte("progress {\"job\":\"job-1\",\"report\":{\"node\":\"n1\",\"gen\":1,\"step\":3,\"eval\":{\"f1\":0.5},\"eval_step\":3}}\n" +
		"checkpoint {\"job\":\"job-1\",\"report\":{\"node\":\"n1\",\"gen\":1,\"step\":10,\"checksum\":\"aa\"}}\n" +
		"checkpoint {\"job\":\"job-1\",\"report\":{\"node\":\"n2\",\"gen\":1,\"step\":10,\"checksum\":\"bb\"}}\n"))
	f.Add([]byte("health {\"updates\":[{\"id\":\"n2\",\"health\":\"dead\"}]}\n" +
		"failure {\"job\":\"job-1\",\"report\":{\"node\":\"n1\",\"gen\":1,\"error\":\"peer lost\",\"suspect\":\"n2\"}}\n" +
		"job_submit {\"job\":{\"cluster\":{\"nodes\":1,\"min_nodes\":1},\"eval\":{\"path\":\"e\"}}}\n" +
		"cancel {\"job\":\"job-1\"}\njob_delete {\"job\":\"job-1\"}\nblobs_collect {\"before\":\"2026-01-01T00:00:30Z\"}\n" +
		"deleted_trim {\"before\":\"2026-01-01T00:00:30Z\"}\nmember_remove {\"id\":\"c1\"}\n"))
	f.Add([]byte("health {\"updates\":[{\"id\":\"n3\",\"health\":\"dead\"},{\"id\":\"n1\",\"health\":\"left\"}]}\n" +
		"node_remove {\"node\":\"n1\"}\nnode_remove {\"node\":\"n3\",\"before\":\"2026-01-01T00:00:20Z\"}\nnode_remove {\"node\":\"n3\"}\n" +
		"done {\"job\":\"job-1\",\"report\":{\"node\":\"n1\",\"gen\":1}}\nnode_remove {\"node\":\"n1\"}\n" +
		"node_register {\"id\":\"n1\",\"ring_addr\":\"n1:9\"}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		base := baseLog()
		a := NewFSM()
		for i, c := range base {
			if r := a.Apply(&raft.Log{Index: uint64(i + 1), Data: c}).(ApplyResult); r.Err != nil {
				t.Fatalf("base log, command %d: %v", i+1, r.Err)
			}
		}
		run := &fuzzRun{t: t, f: a, log: slices.Clone(base)}
		for i, c := range fuzzLog(data, len(base)) {
			if i == 40 {
				break
			}
			run.apply(c)
			// The leader's next passes: each decision is committed, and accepted, as
			// the state it was made from is the state it applies to.
			for range 3 {
				now := fuzzStart.Add(time.Duration(len(run.log)) * time.Second)
				var ds []decision
				a.Read(func(s *State) { ds = decide(s, now) })
				if len(ds) == 0 {
					break
				}
				for _, d := range ds {
					a.Read(func(s *State) { checkDecision(t, s, d) })
					b, err := NewCommand(d.typ, now, d.body)
					if err != nil {
						t.Fatal(err)
					}
					if r := run.apply(b); r.Err != nil {
						t.Fatalf("command %d: the leader's decision %s is rejected: %v", len(run.log), b, r.Err)
					}
				}
			}
			// The leader's node GC, with a threshold of fuzzGC of the log's time: each
			// removal it proposes is accepted.
			now := fuzzStart.Add(time.Duration(len(run.log)) * time.Second)
			var reap []string
			a.Read(func(s *State) { reap = s.reapable(now.Add(-fuzzGC)) })
			for _, id := range reap {
				b, err := NewCommand(CmdNodeRemove, now, NodeRemove{Node: id, Before: now.Add(-fuzzGC)})
				if err != nil {
					t.Fatal(err)
				}
				if r := run.apply(b); r.Err != nil {
					t.Fatalf("command %d: the node GC's removal %s is rejected: %v", len(run.log), b, r.Err)
				}
			}
		}
		replay := NewFSM()
		for i, c := range run.log {
			if r := replay.Apply(&raft.Log{Index: uint64(i + 1), Data: c}).(ApplyResult); i >= len(base) && !reflect.DeepEqual(r, run.results[i-len(base)]) {
				t.Fatalf("command %d %s: answered %+v, then %+v replayed", i+1, c, run.results[i-len(base)], r)
			}
		}
		if a, b := snapshotBytes(t, a), snapshotBytes(t, replay); !bytes.Equal(a, b) {
			t.Fatalf("the same log applied twice ends in different states:\n%s\n%s", a, b)
		}
	})
}

// fuzzGC is the node GC threshold FuzzApply's leader uses, in the log's time (a second
// a command).
const fuzzGC = 20 * time.Second

// checkDecision fails when the leader decides to put a drained node in a generation it
// was not already in.
func checkDecision(t *testing.T, s *State, d decision) {
	t.Helper()
	og, ok := d.body.(OpenGeneration)
	if !ok {
		return
	}
	for _, m := range og.Members {
		if n := s.Nodes[m]; n != nil && n.Drain && n.Job != og.Job {
			t.Fatalf("the leader puts drained node %s in generation %d of %s", m, og.Gen, og.Job)
		}
	}
}

// fuzzRun is an FSM fed a log, command by command, checked after each.
type fuzzRun struct {
	t       *testing.T
	f       *FSM
	log     [][]byte
	results []ApplyResult
}

func (r *fuzzRun) apply(c []byte) ApplyResult {
	t := r.t
	t.Helper()
	r.log = append(r.log, c)
	idx := uint64(len(r.log))
	prev := r.f.Index()
	before := snapshotBytes(t, r.f)
	res := r.f.Apply(&raft.Log{Index: idx, Data: c}).(ApplyResult)
	r.results = append(r.results, res)
	after := snapshotBytes(t, r.f)

	other := restored(t, before)
	if o := other.Apply(&raft.Log{Index: idx, Data: c}).(ApplyResult); !reflect.DeepEqual(res, o) {
		t.Fatalf("command %d %s: answered %+v, but %+v from the state restored from a snapshot", idx, c, res, o)
	}
	if o := snapshotBytes(t, other); !bytes.Equal(after, o) {
		t.Fatalf("command %d %s: applied to the state restored from a snapshot, it ends in another state:\n%s\n%s", idx, c, after, o)
	}

	var cmd Command
	if err := json.Unmarshal(c, &cmd); err != nil {
		t.Fatal(err)
	}
	if res.Err != nil && !failedByChecksums(r.f.state, &cmd) {
		r.f.state.Index = prev
		unchanged := snapshotBytes(t, r.f)
		r.f.state.Index = idx
		if !bytes.Equal(before, unchanged) {
			t.Fatalf("command %d %s: rejected (%v), but it changed the state:\n%s\n%s", idx, c, res.Err, before, unchanged)
		}
	}
	r.f.Read(func(s *State) { checkInvariants(t, s, int(idx)) })
	return res
}

// FuzzRestore restores arbitrary bytes as a snapshot. Either Restore fails, or halts
// (bytes that claim a newer build wrote them) leaving the state empty, or the state it
// restored snapshots to bytes that restore to the same state again, and
// serves the leader, the queries and every command on each of its jobs, nodes and
// members without a panic.
func FuzzRestore(f *testing.F) {
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"index":3,"next_job":0}`))
	for seed := range uint64(3) {
		fsm := NewFSM()
		for i, c := range append(baseLog(), fuzzLog(genLines(seed, 30), len(baseLog()))...) {
			fsm.Apply(&raft.Log{Index: uint64(i + 1), Data: c})
		}
		f.Add(snapshotBytes(f, fsm))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fsm := NewFSM()
		h, err := restore(fsm, data)
		if h != "" {
			if !strings.HasPrefix(h, "coordinator: halted restoring") || fsm.Index() != 0 {
				t.Fatalf("a halt %q, state at index %d", h, fsm.Index())
			}
			return
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fsm restore: ") {
				t.Fatalf("error %q does not say what failed", err)
			}
			return
		}
		snap := snapshotBytes(t, fsm)
		if again := snapshotBytes(t, restored(t, snap)); !bytes.Equal(snap, again) {
			t.Fatalf("a restored state snapshots differently once restored again:\n%s\n%s", snap, again)
		}
		var ids struct{ jobs, nodes, members []string }
		fsm.Read(func(s *State) {
			ids.jobs, ids.nodes, ids.members = sortedKeys(s.Jobs), sortedKeys(s.Nodes), sortedKeys(s.Members)
			now := fuzzStart.Add(time.Hour)
			decide(s, now)
			s.collectable(now)
			s.trimmable(now)
			s.reapable(now)
			nodeList(s)
			jobList(s)
			for _, n := range ids.nodes {
				if _, err := s.Assignment(n); err != nil {
					t.Fatalf("assignment of node %s: %v", n, err)
				}
			}
		})
		if len(ids.jobs) > 4 || len(ids.nodes) > 4 {
			ids.jobs, ids.nodes = ids.jobs[:min(4, len(ids.jobs))], ids.nodes[:min(4, len(ids.nodes))]
		}
		var cmds []struct {
			typ  string
			body any
		}
		add := func(typ string, body any) {
			cmds = append(cmds, struct {
				typ  string
				body any
			}{typ, body})
		}
		for _, id := range ids.members {
			add(CmdHealth, HealthUpdates{Updates: []HealthUpdate{{ID: id, Member: true, Health: api.Suspect}}})
			add(CmdBlobStored, BlobStored{SHA: sha(9), Size: 1, Member: id, Upload: true})
		}
		for _, j := range ids.jobs {
			for _, n := range ids.nodes {
				add(CmdNodeRegister, api.RegisterNode{ID: n, RingAddr: n + ":1"})
				add(CmdNodeDrain, NodeDrain{Node: n, Drain: true})
				for gen := range uint32(3) {
					add(CmdProgress, JobProgress{Job: j, Report: api.ProgressReport{Node: n, Gen: gen, Step: 1, Eval: map[string]float64{"f1": 1}, EvalStep: 1}})
					add(CmdCheckpoint, JobCheckpoint{Job: j, Report: api.CheckpointReport{Node: n, Gen: gen, Step: 1, Checksum: "aa"}})
					add(CmdFailure, JobFailure{Job: j, Report: api.FailureReport{Node: n, Gen: gen, Error: "lost", Suspect: "x"}})
					add(CmdBeginReconfig, BeginReconfig{Job: j, Gen: gen, Cause: "test"})
					add(CmdWaitForNodes, WaitForNodes{Job: j, Gen: gen, Keep: []string{n}, Reason: "test"})
					add(CmdOpenGeneration, OpenGeneration{Job: j, Gen: gen + 1, Members: []string{n}, Reason: "test"})
				}
				add(CmdResult, JobResult{Job: j, Report: api.ResultReport{Node: n, Kind: "checkpoint", Blob: sha(9)}})
				add(CmdHealth, HealthUpdates{Updates: []HealthUpdate{{ID: n, Health: api.Dead}}})
				add(CmdNodeRemove, NodeRemove{Node: n})
				add(CmdDone, JobDone{Job: j, Report: api.DoneReport{Node: n}})
			}
			for _, which := range []string{"train", "eval"} {
				add(CmdDatasetPlanned, DatasetPlanned{Job: j, Which: which, Plan: sha(8)})
			}
			add(CmdJobReason, JobReason{Job: j, Reason: "test"})
			add(CmdCancel, JobCancel{Job: j})
			add(CmdJobDelete, JobDelete{Job: j})
		}
		for _, id := range ids.members {
			add(CmdMemberRemove, MemberRemove{ID: id})
		}
		add(CmdJobSubmit, JobSubmit{Job: api.Job{Cluster: api.ClusterSpec{}.WithDefaults(), Train: &api.Dataset{Path: "x"}}})
		add(CmdBlobsCollect, BlobsCollect{Before: fuzzStart})
		add(CmdDeletedTrim, DeletedTrim{Before: fuzzStart})
		idx := fsm.Index()
		for _, c := range cmds {
			b, err := NewCommand(c.typ, fuzzStart, c.body)
			if err != nil {
				t.Fatal(err)
			}
			idx++
			fsm.Apply(&raft.Log{Index: idx, Data: b})
			fsm.Read(func(s *State) { decide(s, fuzzStart) })
		}
	})
}

// A job submitted with eval data but no train data (the HTTP layer never proposes
// one, apply must not rely on it) answers its eval plan without a panic.
func TestPlanEvalOfJobWithoutTrain(t *testing.T) {
	r := newLogRun(t)
	id := r.apply(time.Second, CmdJobSubmit, JobSubmit{Job: api.Job{Cluster: api.ClusterSpec{}.WithDefaults(), Eval: &api.Dataset{Path: "e"}}}).(string)
	r.apply(time.Second, CmdDatasetPlanned, DatasetPlanned{Job: id, Which: "eval", Plan: sha(1), Records: 3})
	if res := r.try(time.Second, CmdDatasetPlanned, DatasetPlanned{Job: id, Which: "train", Plan: sha(2)}); res.Err == nil {
		t.Fatal("planned the train data of a job without any")
	}
}

// Restore refuses the snapshots whose state apply or the leader would panic on.
func TestRestoreRefusesBrokenStates(t *testing.T) {
	for _, c := range []struct{ snap, want string }{
		{`{"jobs":{"job-1":null}}`, `jobs["job-1"] is null`},
		{`{"nodes":{"n1":{"id":"n2"}}}`, `nodes["n1"] has ID "n2"`},
		{`{"blobs":{"x":null}}`, `blobs["x"] is null`},
		{`{"jobs":{"job-1":{"id":"job-1","state":"running"}}}`, `jobs["job-1"] is running without a generation`},
		{`{"jobs":{"job-1":{"id":"job-1","state":"running","generation":{"gen":1,"members":[{"node":"n9"}]}}}}`, `member "n9", which is no node`},
	} {
		err := NewFSM().Restore(readCloser{bytes.NewBufferString(c.snap)})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error saying %s", c.snap, err, c.want)
		}
	}
	// Null maps are empty ones: commands that add to them apply.
	f := NewFSM()
	if err := f.Restore(readCloser{bytes.NewBufferString(`{"jobs":null,"nodes":null,"members":null,"blobs":null,"events":null,"topics":null,"deleted":null,"deleted_at":null}`)}); err != nil {
		t.Fatal(err)
	}
	for i, c := range baseLog() {
		if r := f.Apply(&raft.Log{Index: uint64(i + 1), Data: c}).(ApplyResult); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
}
