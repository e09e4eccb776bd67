package coordinator_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/coordinator"
	"github.com/bertnode/bertnode/coordinator/coordtest"
	"github.com/bertnode/bertnode/gossip"
)

// hasNode says whether every running member's state holds node id (have) or none's does.
func hasNode(c *coordtest.Cluster, id string, have bool) bool {
	for _, s := range c.Servers {
		if s == nil {
			continue
		}
		var got bool
		s.Read(func(st *coordinator.State) { got = st.Nodes[id] != nil })
		if got != have {
			return false
		}
	}
	return true
}

func nodeHealth(c *coordtest.Cluster, id string) api.Health {
	c.T.Helper()
	n, err := c.Client().Node(ctx(c.T), id)
	if err != nil {
		return ""
	}
	return n.Health
}

// TestNodeGC: on a 3-member cluster with a node GC threshold of an hour of the
// commands' time, the leader removes a node dead longer than that from every member's
// state, but not one a running job's generation names, nor one alive, nor one dead
// for less; it counts them in bertnode_nodes_reaped_total. The finished job naming a
// removed node reads as before and survives a member's restart from a snapshot. A
// removed node that comes back registers as a new one, and its absence from gossip
// counts from then, not from before its removal.
func TestNodeGC(t *testing.T) {
	c := coordtest.New(t, coordtest.Options{Members: 3, Tweak: func(_ int, cfg *coordinator.Config) { cfg.NodeGC = time.Hour }})
	cl := c.Client()
	data := putData(t, cl, trainData)

	// job-1 runs on n1 and succeeds; n1 dies.
	ns := nodes(c, "n1")
	j1 := submit(c, jobSpecText(data, 1, 1))
	ns[0].awaitGen(j1, 1, 0)
	if err := cl.Done(ctx(t), j1, api.DoneReport{Node: "n1", Gen: 1, Step: 3}); err != nil {
		t.Fatal(err)
	}
	ns[0].awaitIdle()
	c.Gossip.SetHealth("n1", api.Dead)
	// n4 registers but never shows up in gossip: the leader calls it dead after its
	// absence grace.
	n4 := &scripted{t: t, id: "n4", cl: cl}
	n4.register()
	// The leader notes n4's absence on a pass of its loop, which on a loaded machine may
	// come after the clock moved: a minute at a time (far below NodeGC's hour) until the
	// grace counted from that pass is over.
	dead := func() bool { return nodeHealth(c, "n1") == api.Dead && nodeHealth(c, "n4") == api.Dead }
	for minutes := 1; ; minutes++ {
		settle()
		c.Clock.Advance(time.Minute)
		if end := time.Now().Add(2 * time.Second); waitUntil(end, dead) {
			break
		}
		if minutes == 10 {
			t.Fatalf("n1 %s and n4 %s after %d minutes", nodeHealth(c, "n1"), nodeHealth(c, "n4"), minutes)
		}
	}

	// job-2 runs on n2 and n3 (min 2); n3 dies, and the job waits for nodes keeping
	// n2: n3 is on no job, but its generation names it.
	ns = append(ns, nodes(c, "n2", "n3")...)
	j2 := submit(c, jobSpecText(data, 2, 2))
	ns[1].awaitGen(j2, 1, 0)
	ns[2].awaitGen(j2, 1, 1)
	c.Gossip.SetHealth("n3", api.Dead)
	c.WaitFor("job-2 to wait", func() bool {
		j := job(c, j2)
		if j.Reconfig != nil && len(j.Reconfig.Confirmed) == 0 {
			ns[1].fail(j2, 1, "") // confirms, as its agent would
		}
		return j.Waiting != nil
	})
	settle()
	if !hasNode(c, "n1", true) || !hasNode(c, "n4", true) {
		t.Fatal("a node went before the threshold")
	}

	c.Clock.Advance(2 * time.Hour)
	c.WaitFor("n1 and n4 removed from every member", func() bool { return hasNode(c, "n1", false) && hasNode(c, "n4", false) })
	c.Gossip.SetHealth("n2", api.Dead) // dead from now: it stays its threshold
	c.WaitFor("n2 dead", func() bool { return nodeHealth(c, "n2") == api.Dead })
	settle()
	for _, id := range []string{"n2", "n3"} {
		if !hasNode(c, id, true) {
			t.Fatalf("%s went: job-2 is running and names it", id)
		}
	}
	_, _, body := raw(t, "GET", c.Leader().APIAddr(), "/metrics", c.Secret.Token(), nil)
	if !strings.Contains(string(body), "bertnode_nodes_reaped_total 2") {
		t.Fatalf("/metrics does not count 2 nodes reaped:\n%s", grepLines(string(body), "reaped"))
	}

	// The finished job names n1 as ever, through the API and after a member's restart
	// from a snapshot (whose restore checks the state).
	if j := job(c, j1); j.State != api.Succeeded || j.Gen.Members[0].Node != "n1" {
		t.Fatalf("job-1 after n1's removal: %+v", j)
	}
	if st, err := cl.Status(ctx(t)); err != nil || len(st.Nodes) != 2 {
		t.Fatalf("status: %+v, %v", st, err)
	}
	if _, err := cl.Node(ctx(t), "n1"); err == nil || !strings.Contains(err.Error(), `no node "n1"`) {
		t.Fatalf("reading a removed node: %v", err)
	}
	f := c.Follower()
	if err := f.Raft().Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	i := c.Index(f)
	c.Stop(i)
	back := c.Start(i)
	c.WaitFor("the restarted member to hold job-1", func() bool {
		ok := false
		back.Read(func(st *coordinator.State) { ok = st.Jobs[j1] != nil && st.Nodes["n1"] == nil && st.Nodes["n3"] != nil })
		return ok
	})

	// job-2 ends: n3 goes at the GC's next look, n2 once dead for the threshold.
	if err := cl.Cancel(ctx(t), j2); err != nil {
		t.Fatal(err)
	}
	c.Clock.Advance(2 * time.Minute)
	c.WaitFor("n3 removed", func() bool { return hasNode(c, "n3", false) })
	if !hasNode(c, "n2", true) {
		t.Fatal("n2 went before its threshold")
	}
	c.Clock.Advance(2 * time.Hour)
	c.WaitFor("n2 removed", func() bool { return hasNode(c, "n2", false) })

	// n1 and n4 come back: new nodes, alive. n4 is still not in gossip: its absence
	// counts from now.
	registered := c.Clock.Now()
	c.Gossip.SetHealth("n1", api.Alive)
	ns[0].register()
	n4.register()
	for _, id := range []string{"n1", "n4"} {
		n, err := cl.Node(ctx(t), id)
		if err != nil || n.Health != api.Alive || !n.Registered.Equal(registered) {
			t.Fatalf("%s registered again: %+v, %v", id, n, err)
		}
	}
	settle()
	if h := nodeHealth(c, "n4"); h != api.Alive {
		t.Fatalf("n4, registered again, is %s at once: its absence counted from before its removal", h)
	}
	j3 := submit(c, jobSpecText(data, 1, 1))
	ns[0].awaitGen(j3, 1, 0)
}

// TestNodeRemoveRequests: DELETE /v1/nodes/{id} removes a dead idle node, and answers
// a 409 saying why for an alive one or one a running job's generation names, and a
// 404 for an unknown one. With the GC off (Timing.NodeGC negative) a dead node stays.
func TestNodeRemoveRequests(t *testing.T) {
	c := coordtest.New(t, coordtest.Options{Tweak: func(_ int, cfg *coordinator.Config) { cfg.NodeGC = -1 }})
	cl := c.Client()
	ns := nodes(c, "n1", "n2", "n3")
	conflict(t, cl.RemoveNode(ctx(t), "n1"), "node n1 is alive in gossip: its agent would register it again")
	ro := &api.Client{Addrs: c.Addrs(), Token: c.Secret.ReadToken()}
	if err := ro.RemoveNode(ctx(t), "n1"); err == nil || !strings.Contains(err.Error(), "read-only token") {
		t.Fatalf("removing a node with the read-only token: %v", err)
	}
	id := submit(c, jobSpecText(putData(t, cl, trainData), 1, 1))
	ns[0].awaitGen(id, 1, 0)
	c.Gossip.SetHealth("n2", api.Dead)
	c.Gossip.SetHealth("n3", api.Dead)
	c.WaitFor("n2 and n3 dead", func() bool { return nodeHealth(c, "n2") == api.Dead && nodeHealth(c, "n3") == api.Dead })
	c.Gossip.SetHealth("n1", api.Dead)
	c.WaitFor("the job to wait", func() bool { return job(c, id).Waiting != nil })
	conflict(t, cl.RemoveNode(ctx(t), "n1"), "node n1 is in generation 1 of job job-1, which is running")
	if err := cl.RemoveNode(ctx(t), "n2"); err != nil {
		t.Fatal(err)
	}
	status, _, body := raw(t, "DELETE", c.Addrs()[0], "/v1/nodes/n2", c.Secret.Token(), nil)
	if status != http.StatusNotFound || !strings.Contains(string(body), `no node \"n2\"`) {
		t.Fatalf("removing it again: %d %s", status, body)
	}
	c.Clock.Advance(1000 * time.Hour)
	settle()
	if !hasNode(c, "n3", true) {
		t.Fatal("n3 went with the GC off")
	}
	// Nor does the leader propose a removal the state would refuse, pass after pass. (The
	// state's index counts commands; raft's, a leader's no-op and barrier after a lost
	// lease too.)
	l := c.Leader()
	applied := func() (i uint64) {
		l.Read(func(st *coordinator.State) { i = st.Index })
		return i
	}
	idx := applied()
	settle()
	if now := applied(); now != idx {
		t.Fatalf("the leader committed commands while nothing changed: index %d, was %d", now, idx)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// waitUntil polls cond until it holds or end passes, and says whether it held.
func waitUntil(end time.Time, cond func() bool) bool {
	for !cond() {
		if time.Now().After(end) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// TestUnjoinedLeaderCountsNoAbsence: a leader whose gossip lists none of the other
// coordinators (a restarted member that has not found them yet) sees no node either:
// it calls no node dead for its absence, however long; once gossip lists another
// coordinator, a node still missing is dead after AbsentGrace counted from then.
func TestUnjoinedLeaderCountsNoAbsence(t *testing.T) {
	c := coordtest.New(t, coordtest.Options{Members: 3})
	leader := c.Leader()
	var others []string
	for _, s := range c.Servers {
		if s != leader {
			c.Gossip.Remove(s.ID())
			others = append(others, s.ID())
		}
	}
	n1 := &scripted{t: t, id: "n1", cl: c.Client()}
	n1.register()
	for range 5 { // 5 minutes, 10 times AbsentGrace
		settle()
		c.Clock.Advance(time.Minute)
		if waitUntil(time.Now().Add(500*time.Millisecond), func() bool { return nodeHealth(c, "n1") == api.Dead }) {
			t.Fatal("an unjoined leader called n1 dead for its absence from gossip")
		}
	}
	c.Gossip.Set(gossip.Member{Name: others[0], Addr: "127.0.0.1:2", Health: api.Alive, Meta: gossip.Meta{Role: gossip.Coordinator}})
	for minutes := 1; nodeHealth(c, "n1") != api.Dead; minutes++ {
		settle()
		c.Clock.Advance(time.Minute)
		waitUntil(time.Now().Add(2*time.Second), func() bool { return nodeHealth(c, "n1") == api.Dead })
		if minutes == 10 {
			t.Fatalf("n1 %s %d minutes after gossip listed another coordinator", nodeHealth(c, "n1"), minutes)
		}
	}
}

// TestMemberMissingFromGossipIsDead: a member that the leader's gossip does not list
// (one stopped before the others' gossip knew it: just after it bootstrapped the
// cluster) is dead, "not in gossip", AbsentGrace after the leader first missed it, as a
// node is; before, it stayed alive, as it joined, for good. Listed again, it is alive,
// and its next absence counts anew.
func TestMemberMissingFromGossipIsDead(t *testing.T) {
	c := coordtest.New(t, coordtest.Options{Members: 3})
	c.Leader()
	gone := c.Follower()
	health := func() api.Health {
		ms, err := c.Client().Members(ctx(t))
		if err != nil {
			return ""
		}
		for _, m := range ms {
			if m.ID == gone.ID() {
				return m.Health
			}
		}
		return ""
	}
	c.Gossip.Remove(gone.ID())
	settle()
	c.Clock.Advance(29 * time.Second)
	if waitUntil(time.Now().Add(500*time.Millisecond), func() bool { return health() != api.Alive }) {
		t.Fatalf("%s %s 29 s after gossip lost it, within AbsentGrace", gone.ID(), health())
	}
	c.Clock.Advance(2 * time.Second)
	if !waitUntil(time.Now().Add(5*time.Second), func() bool { return health() == api.Dead }) {
		t.Fatalf("%s %s 31 s after gossip lost it, past AbsentGrace", gone.ID(), health())
	}
	c.Gossip.Set(gossip.Member{Name: gone.ID(), Addr: "127.0.0.1:2", Health: api.Alive,
		Meta: gossip.Meta{Role: gossip.Coordinator, API: gone.APIAddr(), Raft: gone.RaftAddr()}})
	if !waitUntil(time.Now().Add(5*time.Second), func() bool { return health() == api.Alive }) {
		t.Fatalf("%s %s once gossip lists it again", gone.ID(), health())
	}
	// Missing again, its absence counts anew.
	c.Gossip.Remove(gone.ID())
	settle()
	c.Clock.Advance(29 * time.Second)
	if waitUntil(time.Now().Add(500*time.Millisecond), func() bool { return health() != api.Alive }) {
		t.Fatalf("%s %s 29 s after gossip lost it again", gone.ID(), health())
	}
}
