package coordinator_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/coordinator"
	"github.com/bertnode/bertnode/coordinator/coordtest"
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
	recorded := func(want int) {
		t.Helper()
		c.WaitFor(fmt.Sprintf("member 2 recorded at protocol %d", want), func() bool {
			ms, err := c.Client().Members(ctx(t))
			if err != nil {
				return false
			}
			for _, m := range ms {
				if m.ID == old && m.Protocol != want || m.ID != old && m.Protocol != coordinator.Protocol {
					return false
				}
			}
			return true
		})
	}
	upgrade := func(to int) {
		t.Helper()
		// It restarts from a snapshot holding its old record, as a member long in a
		// cluster does: its state has it at once, and its addresses are the same.
		if err := c.Servers[2].Raft().Snapshot().Error(); err != nil {
			t.Fatal(err)
		}
		c.Stop(2)
		protocols[2] = to
		c.Start(2)
		recorded(to)
	}
	recorded(6)

	cl := c.Client()
	n := nodes(c, "n1")[0]
	spec := "kind: predict\ntask: classify\nmodel: " + putData(t, cl, "a model") + "\ninput: " + putData(t, cl, trainData) +
		"\nbatch_size: 2\ncluster: {nodes: 1, block_records: 2}\n"
	_, err := cl.Submit(ctx(t), api.SubmitRequest{Spec: spec})
	conflict(t, err, "a predict job needs coordinator protocol 7")
	conflict(t, err, old+" (protocol 6)")

	upgrade(7)
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

	upgrade(8)
	r, err := cl.RenewLease(ctx(t), id, "n1", 0)
	if err != nil || !r.Expires.Equal(l.Expires.Add(time.Minute)) {
		t.Fatalf("renewal once every member speaks protocol 8: %+v, %v (leased until %v)", r, err, l.Expires)
	}
}
