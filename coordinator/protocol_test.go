package coordinator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/hashicorp/raft"
)

// TestFSMHaltsOnNewerCommand: an FSM of protocol 7, before lease renewals, given a
// renewal halts (panics) at its index with the state as it was, where older builds
// answered "unknown command type" and went on without it; the FSM of this build
// applies the same entry, as an upgraded member does from its log. A type no build
// knows halts it too. Each halt says what the operator must do.
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
	halt := func(f *FSM, data []byte) (msg string) {
		defer func() { msg = fmt.Sprint(recover()) }()
		f.Apply(&raft.Log{Index: idx + 1, Data: data})
		return ""
	}
	msg := halt(old, renew)
	for _, want := range []string{`"renew"`, fmt.Sprintf("index %d", idx+1), "needs coordinator protocol 8", "protocol 7",
		"Upgrade this member to a build of protocol 8 or later", "data directory as it is"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("protocol 7's FSM on a renewal: %q, want a halt saying %s", msg, want)
		}
	}
	if p.s.Index != idx || !p.job().Work.Lease(0).Expires.Equal(expires) {
		t.Fatalf("the halted FSM changed the state: index %d (was %d), expiry %v (was %v)", p.s.Index, idx, p.job().Work.Lease(0).Expires, expires)
	}
	unknown, err := NewCommand("frobnicate", p.now, struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	// What an older build's FSM, which knows no newer type, halts with.
	if msg := halt(NewFSM(), unknown); !strings.Contains(msg, `"frobnicate" is unknown`) || !strings.Contains(msg, "Upgrade this member to the build the other members run") {
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
