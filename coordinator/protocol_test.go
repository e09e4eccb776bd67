package coordinator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/hashicorp/raft"
)

// TestFSMHaltsOnNewerCommand: an FSM of protocol 7, before lease renewals, given a
// renewal halts at its index with the state as it was, where older builds answered
// "unknown command type" and went on without it: it answers the halt, closes stopped
// (Server.halt then stops raft), applies no later entry, even one of a type it has,
// and writes no snapshot, which raft would label past the renewal; the FSM of this
// build applies the same entry, as an upgraded member does from its log. A type no
// build knows halts it too. Each halt says what the operator must do.
func TestFSMHaltsOnNewerCommand(t *testing.T) {
	p := newPredictState(t, 10)
	p.lease("n1")
	renew, err := NewCommand(CmdRenew, p.now.Add(40*time.Second), RenewLease{Job: "job-1", Node: "n1", Unit: 0, For: api.Duration(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	expires, idx := p.job().Work.Lease(0).Expires, p.s.Index

	old := newFSM(7)
	old.state = p.s
	applied := 0
	old.OnApply(func(uint64) { applied++ })
	haltOn := func(f *FSM, data []byte) string {
		r := f.Apply(&raft.Log{Index: idx + 1, Data: data}).(ApplyResult)
		if _, ok := r.Err.(halt); !ok || r.Value != nil {
			t.Fatalf("%+v, want the halt", r)
		}
		return r.Err.Error()
	}
	msg := haltOn(old, renew)
	for _, want := range []string{`"renew"`, fmt.Sprintf("index %d", idx+1), "needs coordinator protocol 8", "protocol 7",
		"Upgrade this member to a build of protocol 8 or later", "data directory as it is"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("protocol 7's FSM on a renewal: %q, want a halt saying %s", msg, want)
		}
	}
	select {
	case <-old.stopped:
	default:
		t.Fatal("the halted FSM's stopped is open")
	}
	join, err := NewCommand(CmdMemberJoin, p.now, api.JoinMember{ID: "c9", RaftAddr: "c9:1", APIAddr: "c9:2"})
	if err != nil {
		t.Fatal(err)
	}
	if r := old.Apply(&raft.Log{Index: idx + 2, Data: join}).(ApplyResult); r.Err == nil || r.Err.Error() != msg {
		t.Fatalf("the halted FSM given a member's join: %+v, want the halt", r)
	}
	if _, err := old.Snapshot(); err == nil || err.Error() != msg {
		t.Fatalf("the halted FSM's snapshot: error %v, want the halt", err)
	}
	if h := old.Halted(); h == nil || h.Error() != msg {
		t.Fatalf("Halted: %v, want %q", h, msg)
	}
	if p.s.Index != idx || !p.job().Work.Lease(0).Expires.Equal(expires) || p.s.Members["c9"] != nil || applied != 0 {
		t.Fatalf("the halted FSM changed the state: index %d (was %d), expiry %v (was %v), member c9 %+v, %d applies",
			p.s.Index, idx, p.job().Work.Lease(0).Expires, expires, p.s.Members["c9"], applied)
	}
	unknown, err := NewCommand("frobnicate", p.now, struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	// What an older build's FSM, which knows no newer type, halts with.
	if msg := haltOn(NewFSM(), unknown); !strings.Contains(msg, `"frobnicate" is unknown`) || !strings.Contains(msg, "Upgrade this member to the build the other members run") {
		t.Fatalf("an unknown type: %q, want a halt saying to upgrade", msg)
	}

	upgraded := NewFSM()
	upgraded.state = p.s
	if r := upgraded.Apply(&raft.Log{Index: idx + 1, Data: renew}).(ApplyResult); r.Err != nil || !p.job().Work.Lease(0).Expires.Equal(p.now.Add(100*time.Second)) {
		t.Fatalf("the upgraded FSM's renewal: %v, expiry %v", r.Err, p.job().Work.Lease(0).Expires)
	}
}

// TestRestoreWithoutProtocol: a snapshot written before protocol versions, whose
// members have none, restores them as the oldest protocol, and the leader counts them
// too old for every command type added since; members recorded with theirs keep them.
func TestRestoreWithoutProtocol(t *testing.T) {
	f := NewFSM()
	for i, j := range []api.JoinMember{
		{ID: "c1", RaftAddr: "c1:1", APIAddr: "c1:2", Protocol: Protocol},
		{ID: "c2", RaftAddr: "c2:1", APIAddr: "c2:2", Protocol: 7},
	} {
		b, err := NewCommand(CmdMemberJoin, time.Now(), j)
		if err != nil {
			t.Fatal(err)
		}
		if r := f.Apply(&raft.Log{Index: uint64(i + 1), Data: b}).(ApplyResult); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	snap := `{"index":3,"next_job":0,"members":{` +
		`"c1":{"id":"c1","raft_addr":"c1:1","api_addr":"c1:2","gossip_addr":"","voter":true,"leader":false,"health":"alive"},` +
		`"c2":{"id":"c2","raft_addr":"c2:1","api_addr":"c2:2","gossip_addr":"","voter":true,"leader":false,"health":"alive"}},` +
		`"nodes":{},"jobs":{},"blobs":{},"events":{},"deleted":{},"deleted_at":{},"topics":{}}`
	servers := []raft.Server{{ID: "c1"}, {ID: "c2"}, {ID: "c3"}} // c3 joining, not recorded yet

	// Before the restore: c2 is too old only for renewals; c3 is unknown.
	var old []string
	f.Read(func(st *State) { old = st.tooOld(servers, "c0", Protocol, appliers[CmdRenew].since) })
	if want := []string{"c2 (protocol 7)", "c3 (protocol 1)"}; !slices.Equal(old, want) {
		t.Fatalf("too old for renewals: %q, want %q", old, want)
	}
	f.Read(func(st *State) { old = st.tooOld(servers, "c0", Protocol, appliers[CmdLease].since) })
	if want := []string{"c3 (protocol 1)"}; !slices.Equal(old, want) {
		t.Fatalf("too old for leases: %q, want %q", old, want)
	}

	if err := f.Restore(readCloser{bytes.NewBufferString(snap)}); err != nil {
		t.Fatal(err)
	}
	f.Read(func(st *State) {
		for _, id := range []string{"c1", "c2"} {
			if p := memberProtocol(st.Members[id]); p != ProtocolOldest {
				t.Errorf("%s restored as protocol %d, want the oldest, %d", id, p, ProtocolOldest)
			}
		}
		old = st.tooOld(servers, "c1", Protocol, appliers[CmdBlobsCollect].since)
	})
	if want := []string{"c2 (protocol 1)", "c3 (protocol 1)"}; !slices.Equal(old, want) {
		t.Fatalf("after the restore, too old for blob collection: %q, want %q", old, want)
	}
	// The restored state snapshots without the field, as it came.
	s, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var m struct{ Members map[string]map[string]any }
	if err := json.Unmarshal(s.(snapshot), &m); err != nil {
		t.Fatal(err)
	}
	if p, ok := m.Members["c2"]["protocol"]; ok {
		t.Fatalf("c2's protocol written as %v: an absent one must stay absent", p)
	}
}

// restore restores snapshot b into f: what it halted with, if it did, or its error.
func restore(f *FSM, b []byte) (string, error) {
	err := f.Restore(readCloser{bytes.NewBuffer(slices.Clone(b))})
	if h, ok := err.(halt); ok {
		return string(h), nil
	}
	return "", err
}

// TestSnapshotFromNewerBuild: a snapshot says which build wrote it and the oldest
// protocol that holds its state (7, with a predict job). This build restores it; an FSM
// of protocol 6 halts on it, as does this build's on one a newer build wrote with a
// field it does not know (not zero) or cannot decode, each saying what to run the
// member on, and the state stays as it was; halted, it restores no other snapshot
// either (raft, starting, would fall back to an older one and replay a log compacted
// since). A newer build's zero fields, and fields an older build wrote (ones since
// dropped), restore.
func TestSnapshotFromNewerBuild(t *testing.T) {
	p := newPredictState(t, 10)
	p.lease("n1")
	src := NewFSM()
	src.state = p.s
	snap := snapshotBytes(t, src)
	var claims map[string]any
	if err := json.Unmarshal(snap, &claims); err != nil {
		t.Fatal(err)
	}
	if claims["written_by_protocol"] != float64(Protocol) || claims["needs_protocol"] != float64(7) {
		t.Fatalf("snapshot claims written by %v, needs %v: want %d and 7 (a predict job)", claims["written_by_protocol"], claims["needs_protocol"], Protocol)
	}
	if got := stateJSON(t, restored(t, snap)); got != stateJSON(t, src) {
		t.Fatalf("this build's snapshot restored to another state:\n%s\n%s", got, stateJSON(t, src))
	}

	// An older member's FSM, with a state of its own: a halt leaves it as it was.
	older := func(protocol int) *FSM {
		f := newFSM(protocol)
		b, err := NewCommand(CmdMemberJoin, p.now, api.JoinMember{ID: "c9", RaftAddr: "c9:1", APIAddr: "c9:2"})
		if err != nil {
			t.Fatal(err)
		}
		f.Apply(&raft.Log{Index: 1, Data: b})
		return f
	}
	halts := func(f *FSM, b []byte, want ...string) {
		t.Helper()
		before, own := stateJSON(t, f), snapshotBytes(t, f)
		msg, err := restore(f, b)
		if err != nil {
			t.Fatalf("an error, %v, where a halt was due", err)
		}
		for _, w := range append(want, "coordinator: halted restoring the snapshot of raft index "+fmt.Sprint(p.s.Index),
			"data directory as it is: it restores the snapshot") {
			if !strings.Contains(msg, w) {
				t.Fatalf("restore: %q, want a halt saying %s", msg, w)
			}
		}
		if after := stateJSON(t, f); after != before {
			t.Fatalf("the halted FSM's state changed:\n%s\n%s", before, after)
		}
		if again, err := restore(f, own); again != msg || err != nil {
			t.Fatalf("the halted FSM restoring a snapshot of its own state: %q, %v; want the halt again", again, err)
		}
	}
	halts(older(6), snap, "needs coordinator protocol 7, newer than this member's protocol 6",
		"Upgrade this member to a build of protocol 7 or later")
	if msg, err := restore(older(7), snap); msg != "" || err != nil {
		t.Fatalf("protocol 7 on a snapshot of protocol %d that needs 7: %s%v", Protocol, msg, err)
	}

	// edit is snap with the writer of protocol writer, and what set adds.
	edit := func(writer int, set func(top, job map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(snap, &m); err != nil {
			t.Fatal(err)
		}
		m["written_by_protocol"] = writer
		set(m, m["jobs"].(map[string]any)["job-1"].(map[string]any))
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	newer := edit(Protocol+1, func(top, job map[string]any) {
		job["priority"] = 3
		top["quotas"] = map[string]any{"team-a": map[string]any{"gpus": 4}}
	})
	halts(older(Protocol), newer, fmt.Sprintf("does not know: jobs[\"job-1\"].priority, quotas, written by a build of protocol %d", Protocol+1),
		fmt.Sprintf("Upgrade this member to a build of protocol %d or later", Protocol+1))
	halts(older(Protocol), edit(Protocol+1, func(top, _ map[string]any) { top["next_job"] = "job-2" }),
		fmt.Sprintf("does not decode on this member's protocol %d", Protocol))

	for what, b := range map[string][]byte{
		"a newer build's zero fields": edit(Protocol+1, func(top, job map[string]any) {
			job["priority"], job["paused"], job["deadline"] = 0, false, "0001-01-01T00:00:00Z"
			top["quotas"] = map[string]any{"team-a": map[string]any{"gpus": 0}}
		}),
		"a field this build's protocol wrote":  edit(Protocol, func(_, job map[string]any) { job["priority"] = 3 }),
		"a field written before the protocols": edit(0, func(_, job map[string]any) { job["priority"] = 3 }),
	} {
		f := NewFSM()
		if msg, err := restore(f, b); msg != "" || err != nil {
			t.Fatalf("%s: %s%v", what, msg, err)
		}
		if got := stateJSON(t, f); got != stateJSON(t, src) {
			t.Fatalf("%s: restored to another state:\n%s", what, got)
		}
	}
}

// TestSnapshotKnowsItsFields: a snapshot of any state this build makes holds no field
// it does not know, which a newer build's snapshot that this build restores must not
// either.
func TestSnapshotKnowsItsFields(t *testing.T) {
	for seed := range uint64(10) {
		g := &gen{r: rand.New(rand.NewPCG(seed, 7)), now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
			nodes: []string{"n1", "n2", "n3", "n4", "n5"}}
		f := NewFSM()
		for i := range 400 {
			var c []byte
			f.Read(func(s *State) { c = g.next(s) })
			f.Apply(&raft.Log{Index: uint64(i + 1), Data: c})
		}
		var v any
		if err := json.Unmarshal(snapshotBytes(t, f), &v); err != nil {
			t.Fatal(err)
		}
		if u := unknownFields(v, reflect.TypeFor[snapshotState](), "", nil); len(u) > 0 {
			t.Fatalf("seed %d: this build's snapshot holds fields it does not know: %v", seed, u)
		}
	}
	p := newPredictState(t, 10) // the random states hold no predict job
	p.lease("n1")
	var v any
	if err := json.Unmarshal(snapshotBytes(t, &FSM{state: p.s, protocol: Protocol}), &v); err != nil {
		t.Fatal(err)
	}
	if u := unknownFields(v, reflect.TypeFor[snapshotState](), "", nil); len(u) > 0 {
		t.Fatalf("a predict job's snapshot holds fields this build does not know: %v", u)
	}
}

// TestSnapshotWithALossScaleNeeds9: a snapshot whose job's progress holds an fp16 loss
// scale needs protocol 9, as a build of 8 has no place for it: an FSM of protocol 8
// halts on it, naming 9, its state as it was, and this build restores it. The same
// job's progress without one needs no newer protocol than the first.
func TestSnapshotWithALossScaleNeeds9(t *testing.T) {
	r := newLogRun(t)
	id := r.job("n1", sha(1), sha(2))
	needs := func(snap []byte) any {
		var claims map[string]any
		if err := json.Unmarshal(snap, &claims); err != nil {
			t.Fatal(err)
		}
		return claims["needs_protocol"]
	}
	r.apply(time.Second, CmdProgress, JobProgress{Job: id, Report: api.ProgressReport{Node: "n1", Gen: 1, Step: 1, Loss: 0.5}})
	if n := needs(snapshotBytes(t, r.f)); n != float64(ProtocolOldest) {
		t.Fatalf("an fp32 job's snapshot needs protocol %v, want %d", n, ProtocolOldest)
	}
	r.apply(time.Second, CmdProgress, JobProgress{Job: id, Report: api.ProgressReport{Node: "n1", Gen: 1, Step: 2, Loss: 0.5,
		LossScale: 32768, Skipped: 1}})
	snap := snapshotBytes(t, r.f)
	if n := needs(snap); n != float64(9) {
		t.Fatalf("a snapshot holding a loss scale needs protocol %v, want 9", n)
	}
	old := newFSM(8)
	before := stateJSON(t, old)
	msg, err := restore(old, snap)
	for _, want := range []string{"needs coordinator protocol 9, newer than this member's protocol 8", "Upgrade this member to a build of protocol 9 or later"} {
		if err != nil || !strings.Contains(msg, want) {
			t.Fatalf("protocol 8 restoring it: %q, %v: want a halt saying %s", msg, err, want)
		}
	}
	if stateJSON(t, old) != before {
		t.Fatal("the halted FSM's state changed")
	}
	f := restored(t, snap)
	if got, want := stateJSON(t, f), stateJSON(t, r.f); got != want {
		t.Fatalf("restored to another state:\n%s\n%s", got, want)
	}
	f.Read(func(st *State) {
		if p := st.Jobs[id].Progress; p.LossScale != 32768 || p.Skipped != 1 {
			t.Fatalf("restored progress: scale %v, %d skipped", p.LossScale, p.Skipped)
		}
	})
}
