package coordinator_test

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/coordinator"
	"github.com/bertnode/bertnode/coordinator/coordtest"
	"github.com/bertnode/bertnode/internal/syncbuf"
	"github.com/hashicorp/raft"
)

// TestRollingUpgrade: a 3-member cluster whose third member runs a build of protocol 6
// (before predict jobs), upgraded one step at a time by restarting it from its data
// directory. Each member's record says its protocol, and a restart records the new
// one (from a snapshot with the old record: the addresses alone look recorded). While the member is at 6 the leader refuses a predict job, and at 7 (leases,
// no renewals) it runs one but refuses a lease renewal, each with a 409 naming what
// and the member; at 8 the renewal goes through.
func TestRollingUpgrade(t *testing.T) {
	protocols := []int{0, 0, 6} // 0: this build's
	c := coordtest.New(t, coordtest.Options{Members: 3, Tweak: func(i int, cfg *coordinator.Config) { cfg.Protocol = protocols[i] }})
	old := c.Servers[2].ID()
	recorded(c, protocols)

	cl := c.Client()
	n := nodes(c, "n1")[0]
	spec := "kind: predict\ntask: classify\nmodel: " + putData(t, cl, "a model") + "\ninput: " + putData(t, cl, trainData) +
		"\nbatch_size: 2\ncluster: {nodes: 1, block_records: 2}\n"
	_, err := cl.Submit(ctx(t), api.SubmitRequest{Spec: spec})
	conflict(t, err, "a predict job needs coordinator protocol 7")
	conflict(t, err, old+" (protocol 6)")

	upgrade(c, protocols, 2, 7)
	id := submit(c, spec)
	n.await("the predict job", func(a *api.Assignment) bool { return a.Job != nil && a.Job.ID == id && a.Job.State == api.Running })
	l, err := cl.Lease(ctx(t), id, "n1")
	if err != nil || l.Unit != 0 {
		t.Fatalf("lease: %+v, %v", l, err)
	}
	c.Clock.Advance(time.Minute)
	_, err = cl.RenewLease(ctx(t), id, "n1", 0)
	conflict(t, err, "command renew needs coordinator protocol 8")
	conflict(t, err, old+" (protocol 7)")

	upgrade(c, protocols, 2, 8)
	r, err := cl.RenewLease(ctx(t), id, "n1", 0)
	if err != nil || !r.Expires.Equal(l.Expires.Add(time.Minute)) {
		t.Fatalf("renewal once every member speaks protocol 8: %+v, %v (leased until %v)", r, err, l.Expires)
	}
}

// TestRollbackHaltsOnNewerSnapshot: a member of a cluster that holds a predict job,
// restarted from its snapshot on protocol 6 (before predict jobs), does not start: it
// says to run it on protocol 7 or later, rather than drop the job's work from its state
// without a word. Started on 7 with its data directory as it was, it restores the
// snapshot and has the job, as the others do.
func TestRollbackHaltsOnNewerSnapshot(t *testing.T) {
	protocols := []int{0, 0, 0}
	c := coordtest.New(t, coordtest.Options{Members: 3, Tweak: func(i int, cfg *coordinator.Config) { cfg.Protocol = protocols[i] }})
	cl := c.Client()
	id := submit(c, "kind: predict\ntask: classify\nmodel: "+putData(t, cl, "a model")+"\ninput: "+putData(t, cl, trainData)+
		"\nbatch_size: 2\ncluster: {nodes: 1, block_records: 2}\n")
	c.WaitFor("the job planned on member 2", func() bool {
		planned := false
		c.Servers[2].Read(func(st *coordinator.State) { planned = st.Jobs[id] != nil && st.Jobs[id].Work != nil })
		return planned
	})
	c.WaitFor("a snapshot", func() bool { return c.Servers[2].Raft().Snapshot().Error() == nil })
	c.Stop(2)

	protocols[2] = 6
	s, err := coordinator.New(c.Config(2, false))
	if err == nil {
		s.Close()
		t.Fatal("a member of protocol 6 started from a snapshot holding a predict job")
	}
	for _, want := range []string{"coordinator: halted restoring the snapshot", "needs coordinator protocol 7, newer than this member's protocol 6",
		"Upgrade this member to a build of protocol 7 or later", "data directory as it is"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("starting on protocol 6: %v, want it to say %s", err, want)
		}
	}

	protocols[2] = 7
	c.Start(2)
	recorded(c, protocols)
	c.Servers[2].Read(func(st *coordinator.State) {
		if j := st.Jobs[id]; j == nil || j.Work == nil {
			t.Fatalf("member 2 upgraded to protocol 7 has job %s as %+v, want its work", id, j)
		}
	})
}

// loggedCluster is a 3-member cluster whose members run protocols (read at each
// start), and member 2's log since its latest start.
func loggedCluster(t *testing.T, protocols []int) (*coordtest.Cluster, func() *syncbuf.Buffer) {
	var log2 *syncbuf.Buffer
	c := coordtest.New(t, coordtest.Options{Members: 3, Tweak: func(i int, cfg *coordinator.Config) {
		cfg.Protocol = protocols[i]
		if i == 2 {
			log2 = &syncbuf.Buffer{}
			cfg.Logger = slog.New(slog.NewTextHandler(log2, nil))
		}
	}})
	return c, func() *syncbuf.Buffer { return log2 }
}

// errorLines are log's ERROR lines.
func errorLines(log *syncbuf.Buffer) []string {
	return slices.DeleteFunc(strings.Split(log.String(), "\n"), func(l string) bool { return !strings.Contains(l, "level=ERROR") })
}

// TestOlderMemberHaltsOnTheLeadersNewerSnapshot: a member rolled back to protocol 6
// (before predict jobs) while down, its log behind the others' compacted logs, is sent
// the leader's snapshot, which holds a predict job. It applies nothing: its state stays
// as it was, it logs one error saying to upgrade it, its raft stops (/metrics says so),
// its /v1/self says why and its API answers 503 (a client goes on to the others), while
// the other two go on committing. Restarted on 6 with its data directory it does not start; on this
// build it restores the snapshot raft stored and catches up, the job and what the
// others committed meanwhile in its state, and records itself at this build's protocol
// again, though its record was this build's in the snapshot, and 6 in the log after.
// (Before, the restore's panic ended the process from raft's goroutine.)
func TestOlderMemberHaltsOnTheLeadersNewerSnapshot(t *testing.T) {
	protocols := []int{0, 0, 0}
	c, log2 := loggedCluster(t, protocols)
	c.Stop(2)
	cl := c.Client()
	id := submit(c, "kind: predict\ntask: classify\nmodel: "+putData(t, cl, "a model")+"\ninput: "+putData(t, cl, trainData)+
		"\nbatch_size: 2\ncluster: {nodes: 1, block_records: 2}\n")
	// The others' logs keep no entry past their snapshots: the leader can bring member
	// 2 up to date only with its snapshot.
	for _, s := range c.Servers[:2] {
		rc := s.Raft().ReloadableConfig()
		rc.TrailingLogs = 0
		if err := s.Raft().ReloadConfig(rc); err != nil {
			t.Fatal(err)
		}
		if err := s.Raft().Snapshot().Error(); err != nil {
			t.Fatal(err)
		}
	}

	protocols[2] = 6
	old := c.Start(2)
	var index uint64
	old.Read(func(st *coordinator.State) { index = st.Index })
	// Server.halt shuts raft down once the FSM has halted.
	c.WaitFor("member 2 halted, its raft shut down", func() bool {
		m, err := selfOf(c, old)
		return err == nil && m.Halted != "" && old.Raft().State() == raft.Shutdown
	})
	nodes(c, "n1") // the other two commit; the client goes past member 2's 503
	status, _, body := raw(t, http.MethodGet, old.APIAddr(), "/v1/jobs?stale=1", c.Secret.Token(), nil)
	m, err := selfOf(c, old)
	if err != nil {
		t.Fatal(err)
	}
	settle() // the leader tries again meanwhile
	errs := errorLines(log2())
	for what, got := range map[string]string{"GET /v1/jobs?stale=1": fmt.Sprintf("%d %s", status, body), "/v1/self": m.Halted, "its log": strings.Join(errs, "\n")} {
		for _, want := range []string{"halted restoring the snapshot", "needs coordinator protocol 7, newer than this member's protocol 6",
			"Upgrade this member to a build of protocol 7 or later"} {
			if !strings.Contains(got, want) {
				t.Fatalf("member 2's %s: %s, want it to say %s", what, got, want)
			}
		}
	}
	if status != http.StatusServiceUnavailable || len(errs) != 1 {
		t.Fatalf("the halted member answered a read %d; logged %d errors, want one:\n%s", status, len(errs), log2())
	}
	if status, _, body := raw(t, http.MethodGet, old.APIAddr(), "/metrics", c.Secret.Token(), nil); status != http.StatusOK ||
		!strings.Contains(string(body), `bertnode_raft_state{state="Shutdown"} 1`) {
		t.Fatalf("the halted member's /metrics: %d, want raft's state Shutdown:\n%s", status, body)
	}
	old.Read(func(st *coordinator.State) {
		if st.Index != index || st.Jobs[id] != nil {
			t.Fatalf("the halted member applied: index %d (was %d), job %+v", st.Index, index, st.Jobs[id])
		}
	})

	// Its record says protocol 6, as its announce may have made it before the halt; the
	// snapshot raft stored holds the record from before (this build's).
	cfg := c.Config(2, false)
	join := api.JoinMember{ID: old.ID(), RaftAddr: old.RaftAddr(), APIAddr: old.APIAddr(), GossipAddr: cfg.GossipAddr, Protocol: 6}
	if err := cl.JoinMember(ctx(t), join); err != nil {
		t.Fatal(err)
	}
	c.Stop(2)
	if s, err := coordinator.New(cfg); err == nil || !strings.Contains(err.Error(), "needs coordinator protocol 7, newer than this member's protocol 6") {
		if s != nil {
			s.Close()
		}
		t.Fatalf("member 2 restarted on protocol 6: %v, want it to refuse, saying why", err)
	}
	protocols[2] = 0
	upgraded := c.Start(2)
	c.WaitFor("member 2 caught up", func() bool {
		ok := false
		upgraded.Read(func(st *coordinator.State) {
			ok = st.Jobs[id] != nil && st.Jobs[id].Work != nil && st.Nodes["n1"] != nil
		})
		return ok
	})
	recorded(c, protocols)
}

// TestOlderMemberHaltsOnANewerCommand: a member of protocol 4 (before drains) meets a
// drain in the log, proposed through the leader's raft past its refusal (as a leader
// does whose record of a member rolled back still says the protocol it ran before).
// The process does not end: the member applies nothing of it, logs one error saying
// to upgrade it, stops its raft, its /v1/self says why and its API answers 503, while
// the other two go on committing. Restarted on 4 it halts again; recovered on 4
// (--recover) it does not start, and the recovery writes no snapshot past the drain
// (the halted FSM refuses it) that would count it applied. Restarted on this build
// with its data directory, it applies the drain from its log and catches up: its
// state is the leader's. (Before, Apply's panic ended the process from raft's goroutine.)
func TestOlderMemberHaltsOnANewerCommand(t *testing.T) {
	protocols := []int{0, 0, 4}
	c, log2 := loggedCluster(t, protocols)
	recorded(c, protocols)
	nodes(c, "n1")
	b, err := coordinator.NewCommand(coordinator.CmdNodeDrain, c.Clock.Now(), coordinator.NodeDrain{Node: "n1", Drain: true})
	if err != nil {
		t.Fatal(err)
	}
	f := c.Leader().Raft().Apply(b, 10*time.Second)
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	if r := f.Response().(coordinator.ApplyResult); r.Err != nil {
		t.Fatalf("the leader's drain: %v", r.Err)
	}
	// What the member says, as its log quotes it too.
	wants := []string{fmt.Sprintf("halted at raft index %d: command ", f.Index()), "node_drain",
		"needs coordinator protocol 5, newer than this member's protocol 4", "Upgrade this member to a build of protocol 5 or later"}
	// halts waits until member 2 halts, and checks that it says why, once, and stops.
	halts := func() {
		t.Helper()
		old := c.Servers[2]
		c.WaitFor("member 2 halted, its raft shut down", func() bool {
			m, err := selfOf(c, old)
			return err == nil && m.Halted != "" && old.Raft().State() == raft.Shutdown
		})
		status, _, body := raw(t, http.MethodGet, old.APIAddr(), "/v1/nodes?stale=1", c.Secret.Token(), nil)
		var answer struct{ Error string }
		_ = json.Unmarshal(body, &answer) // a body that is no error says so below
		m, err := selfOf(c, old)
		if err != nil {
			t.Fatal(err)
		}
		errs := errorLines(log2())
		for what, got := range map[string]string{"GET /v1/nodes?stale=1": answer.Error, "/v1/self": m.Halted, "its log": strings.Join(errs, "\n")} {
			for _, want := range wants {
				if !strings.Contains(got, want) {
					t.Fatalf("member 2's %s: %s, want it to say %s", what, got, want)
				}
			}
		}
		if status != http.StatusServiceUnavailable || len(errs) != 1 {
			t.Fatalf("the halted member answered a read %d %s; logged %d errors, want one:\n%s", status, body, len(errs), log2())
		}
		old.Read(func(st *coordinator.State) {
			if st.Index >= f.Index() || st.Nodes["n1"].Drain {
				t.Fatalf("the halted member applied: index %d (the drain's %d), n1 %+v", st.Index, f.Index(), st.Nodes["n1"])
			}
		})
	}
	halts()
	nodes(c, "n2") // the other two commit; the client goes past member 2's 503

	c.Stop(2)
	c.Start(2)
	halts()
	c.Stop(2)
	cfg := c.Config(2, false)
	cfg.Recover = true
	if s, err := coordinator.New(cfg); err == nil || !strings.HasPrefix(err.Error(), "coordinator: "+wants[0]+`"node_drain" `+wants[2]) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("member 2 recovered on protocol 4: %v, want it to refuse, saying why", err)
	}

	protocols[2] = 0
	upgraded := c.Start(2)
	var got, want []byte
	c.WaitFor("member 2's state the leader's", func() bool {
		upgraded.Read(func(st *coordinator.State) { got, _ = json.Marshal(st) })
		c.Leader().Read(func(st *coordinator.State) { want, _ = json.Marshal(st) })
		return string(got) == string(want)
	})
	upgraded.Read(func(st *coordinator.State) {
		if n := st.Nodes["n1"]; n == nil || !n.Drain || st.Nodes["n2"] == nil {
			t.Fatalf("member 2 upgraded: nodes %+v, want n1 draining and n2", st.Nodes)
		}
	})
	recorded(c, protocols)
}

// selfOf is member s's GET /v1/self, from a client anew: one follows the leader that
// an answer names, and would ask it instead from then on.
func selfOf(c *coordtest.Cluster, s *coordinator.Server) (*api.Self, error) {
	return (&api.Client{Addrs: []string{s.APIAddr()}, Token: c.Secret.Token()}).Self(c.Context())
}

// recorded waits until the member list records member i at protocols[i] (0: this
// build's).
func recorded(c *coordtest.Cluster, protocols []int) {
	c.T.Helper()
	c.WaitFor(fmt.Sprintf("the members recorded at protocols %v", protocols), func() bool {
		ms, err := c.Client().Members(c.Context())
		if err != nil {
			return false
		}
		for _, m := range ms {
			i := slices.IndexFunc(c.Servers, func(s *coordinator.Server) bool { return s != nil && s.ID() == m.ID })
			if i < 0 || m.Protocol != cmp.Or(protocols[i], coordinator.Protocol) {
				return false
			}
		}
		return true
	})
}

// upgrade restarts member i of c, whose Tweak reads protocols, on protocol to, and
// waits until the state records it. It restarts from a snapshot holding its old
// record, as a member long in a cluster does: its state has it at once, and its
// addresses are the same.
func upgrade(c *coordtest.Cluster, protocols []int, i, to int) {
	c.T.Helper()
	c.WaitFor("a snapshot (refused until the member has applied the latest configuration)", func() bool {
		err := c.Servers[i].Raft().Snapshot().Error()
		return err == nil || errors.Is(err, raft.ErrNothingNewToSnapshot)
	})
	c.Stop(i)
	protocols[i] = to
	c.Start(i)
	recorded(c, protocols)
}

// TestGrowthBeforeProtocol2: while a member speaks protocol 1, some of whose builds
// came before BeginReconfig.Growth and would open a growth as a plain reconfiguration,
// the leader opens a node's joining as a plain one on every member: a member silent
// at its deadline is left out, as before growths (a growth keeps it,
// TestGrowthKeepsSlowMembers).
func TestGrowthBeforeProtocol2(t *testing.T) {
	c, ns, id := growing(t, coordtest.Options{Members: 3, Tweak: func(i int, cfg *coordinator.Config) {
		if i == 2 {
			cfg.Protocol = 1
		}
	}}, false)
	ns[0].fail(id, 2, "") // n2 stays silent
	c.Clock.Advance(2 * time.Second)
	ns[0].awaitGen(id, 3, 0)
	ns[2].awaitGen(id, 3, 1)
	if got := genMembers(job(c, id)); !slices.Equal(got, []string{"n1", "n3"}) {
		t.Fatalf("generation 3: %v, want n1 and n3", got)
	}
}

// TestCopyRecordBeforeProtocol5: a member's late record of its copy of a blob the
// state no longer lists. While a member speaks protocol 4, some of whose builds list
// the blob again (and protocol 2's before BlobStored.Upload renew its grace), the
// leader records the copy as an upload, which every FSM applies alike: the blob is
// listed. Once every member speaks 5 or later, the copy's record leaves it unlisted.
func TestCopyRecordBeforeProtocol5(t *testing.T) {
	protocols := []int{0, 0, 4}
	c := coordtest.New(t, coordtest.Options{Members: 3, Tweak: func(i int, cfg *coordinator.Config) { cfg.Protocol = protocols[i] }})
	recorded(c, protocols)
	// lateCopy writes text's blob into member 1's store, as a copy finished after the
	// blob was dropped, records that copy, and says whether the state lists the blob.
	lateCopy := func(text string) bool {
		t.Helper()
		sum := sha256.Sum256([]byte(text))
		sha := hex.EncodeToString(sum[:])
		holder := c.Servers[1]
		if err := os.WriteFile(holder.BlobPath(sha), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(api.BlobHolder{Member: holder.ID(), Size: int64(len(text))})
		resp, err := c.Client().Do(ctx(t), http.MethodPost, "/v1/blobs/"+sha+"/holders", nil, b)
		if err != nil {
			t.Fatalf("recording the copy: %v", err)
		}
		resp.Body.Close()
		listed := false
		c.Leader().Read(func(st *coordinator.State) { listed = st.Blobs[sha] != nil })
		return listed
	}
	if !lateCopy("a blob copied, then dropped") {
		t.Fatal("with a member at protocol 4, a copy's record did not list its blob: not recorded as an upload")
	}
	upgrade(c, protocols, 2, 5)
	if lateCopy("another blob copied, then dropped") {
		t.Fatal("with every member at protocol 5 or later, a late copy's record listed its blob")
	}
}

// TestReportsBeforeProtocol2: while a member speaks protocol 1, some of whose builds
// came before a failure report's suspect was recorded and before a done report carried
// the last evaluation, the leader drops both from the reports, so that every member
// applies them as those builds do: no member records whom the ring errors named, and
// the reconfiguration waits for its rejoin window rather than SuspectGrace; the job
// ends without the done report's evaluation. (With every member on 2 or later,
// TestReconfigLeavesOutTheNamedAfterGrace and TestDoneAndCancelReleaseNodes.)
func TestReportsBeforeProtocol2(t *testing.T) {
	protocols := []int{0, 0, 1}
	c := coordtest.New(t, coordtest.Options{Members: 3, Tweak: func(i int, cfg *coordinator.Config) { cfg.Protocol = protocols[i] }})
	recorded(c, protocols)
	ns, id := startThree(c)
	for _, n := range ns[:2] {
		n.name(id, 1, "n3")
	}
	settle()
	for i, s := range c.Servers {
		s.Read(func(st *coordinator.State) {
			if rc := st.Jobs[id].Reconfig; rc == nil || len(rc.Suspects) > 0 {
				t.Fatalf("member %d's reconfiguration: %+v, want one without suspects", i, rc)
			}
		})
	}
	c.Clock.Advance(coordinator.SuspectGrace)
	settle()
	if g := job(c, id).Gen.Gen; g != 1 {
		t.Fatalf("generation %d after SuspectGrace, within the rejoin window", g)
	}
	c.Clock.Advance(2 * time.Second)
	ns[0].awaitGen(id, 2, 0)

	err := c.Client().Done(ctx(t), id, api.DoneReport{Node: "n1", Gen: 2, Step: 9, Eval: map[string]float64{"accuracy": 0.9}, EvalStep: 9})
	if err != nil {
		t.Fatal(err)
	}
	c.WaitFor("every member's job succeeded", func() bool {
		ok := true
		for _, s := range c.Servers {
			s.Read(func(st *coordinator.State) { ok = ok && st.Jobs[id].State == api.Succeeded })
		}
		return ok
	})
	for i, s := range c.Servers {
		s.Read(func(st *coordinator.State) {
			if p := st.Jobs[id].Progress; p.Eval != nil {
				t.Fatalf("member %d's job ended with the done report's evaluation %v at step %d", i, p.Eval, p.EvalStep)
			}
		})
	}
}

// TestUploadsBeforeProtocol3: while a member speaks protocol 2, some of whose builds
// came before Job.Uploads (and would unlist the uploaded model's blob while the job
// runs), the leader refuses a job with an uploaded model, naming the member; one with
// a model from the hub goes through. At 3 the uploaded model's job goes through too.
func TestUploadsBeforeProtocol3(t *testing.T) {
	protocols := []int{0, 0, 2}
	c := coordtest.New(t, coordtest.Options{Members: 3, Tweak: func(i int, cfg *coordinator.Config) { cfg.Protocol = protocols[i] }})
	recorded(c, protocols)
	cl := c.Client()
	data, model := putData(t, cl, trainData), putData(t, cl, "a model's tar")
	_, err := cl.Submit(ctx(t), api.SubmitRequest{Spec: "train: " + data + "\nmodel: " + model})
	conflict(t, err, "a job with an uploaded model or tokenizer needs coordinator protocol 3")
	conflict(t, err, c.Servers[2].ID()+" (protocol 2)")
	submit(c, "train: "+data+"\nmodel: bert-base-uncased")

	upgrade(c, protocols, 2, 3)
	if got := job(c, submit(c, "train: "+data+"\nmodel: "+model)).Uploads; got["model"] != strings.TrimPrefix(model, "blob:") {
		t.Fatalf("uploads %v once every member speaks protocol 3", got)
	}
}

// TestMembersWaitForAVersionedLeader: a leader of a build before protocol versions
// records members without the protocol they announce themselves with. The members of
// this build then wait rather than ask it again (each ask was an entry in the log,
// every 2 s from each member); once a member of this build leads, every member is
// recorded with its protocol.
func TestMembersWaitForAVersionedLeader(t *testing.T) {
	unversioned := true
	c := coordtest.New(t, coordtest.Options{Members: 3, Tweak: func(i int, cfg *coordinator.Config) {
		switch {
		case i == 0 && unversioned:
			cfg.Protocol = 7
			coordinator.PlayUnversioned(cfg)
		case i > 0:
			// Slow to call an election: the old leader stays one on a loaded machine.
			cfg.Heartbeat, cfg.Election = 5*time.Second, 5*time.Second
		}
	}})
	if l := c.Leader(); l != c.Servers[0] {
		t.Fatalf("%s leads, want the bootstrapped member %s", l.ID(), c.Servers[0].ID())
	}
	ms, err := c.Client().Members(ctx(t))
	if err != nil || len(ms) != 3 || slices.ContainsFunc(ms, func(m api.Member) bool { return m.Protocol != 0 }) {
		t.Fatalf("members %+v, %v: want 3 recorded without a protocol", ms, err)
	}
	// The commands the leader applies (its state's index), not raft's entries: under
	// load the leader can lose its lease and win again, each time a no-op and a barrier.
	applied := func() (i uint64) {
		c.Servers[0].Read(func(st *coordinator.State) { i = st.Index })
		return i
	}
	time.Sleep(time.Second) // a record's last asks settle
	last := applied()
	time.Sleep(4500 * time.Millisecond) // two of the members' 2 s retries
	if i := applied(); i != last {
		t.Fatalf("commands applied in 4.5 s of an idle cluster under a leader before protocol versions: index %d, was %d", i, last)
	}

	c.Stop(0) // it hands its leadership to a member of this build, which records itself
	unversioned = false
	c.Start(0)
	recorded(c, []int{0, 0, 0})
}

// TestLossScaleBeforeProtocol9: while a member speaks protocol 8, whose FSM ignores a
// progress report's loss scale and skipped steps (its state has no place for them),
// the leader drops them from the report, so that every member records the same
// progress: none with a loss scale. Once every member speaks 9, every member records
// them.
func TestLossScaleBeforeProtocol9(t *testing.T) {
	protocols := []int{0, 0, 8}
	c := coordtest.New(t, coordtest.Options{Members: 3, Tweak: func(i int, cfg *coordinator.Config) { cfg.Protocol = protocols[i] }})
	recorded(c, protocols)
	n := nodes(c, "n1")[0]
	id := submit(c, jobSpecText(putData(t, c.Client(), trainData), 1, 1))
	n.awaitGen(id, 1, 0)
	// report sends a progress report of step at a loss scale of 32768 after 3 skipped
	// steps, and says what each member recorded of them once all have applied it.
	report := func(step int64) []string {
		t.Helper()
		if err := n.cl.Progress(ctx(t), id, api.ProgressReport{Node: "n1", Gen: 1, Step: step, TotalSteps: 10,
			LossScale: 32768, Skipped: 3}); err != nil {
			t.Fatal(err)
		}
		var got []string
		c.WaitFor(fmt.Sprintf("every member's progress at step %d", step), func() bool {
			got = got[:0]
			for _, s := range c.Servers {
				s.Read(func(st *coordinator.State) {
					if p := st.Jobs[id].Progress; p.Step == step {
						got = append(got, fmt.Sprintf("scale %v, %d skipped", p.LossScale, p.Skipped))
					}
				})
			}
			return len(got) == len(c.Servers)
		})
		return got
	}
	if got := report(1); !slices.Equal(got, slices.Repeat([]string{"scale 0, 0 skipped"}, 3)) {
		t.Fatalf("with a member at protocol 8, the members recorded %q: want the loss scale dropped", got)
	}
	upgrade(c, protocols, 2, 9)
	if got := report(2); !slices.Equal(got, slices.Repeat([]string{"scale 32768, 3 skipped"}, 3)) {
		t.Fatalf("with every member at protocol 9, the members recorded %q", got)
	}
}
