package coordinator_test

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/coordinator/coordtest"
)

// TestDrainLeavesTheJobAndTakesNoOther: a drained member leaves its job through a
// reconfiguration at once (no wait for a timeout), the job goes on with the others,
// and the drained node gets no work, neither by growth nor a new job, until it is
// undrained; then it does.
func TestDrainLeavesTheJobAndTakesNoOther(t *testing.T) {
	c := coordtest.New(t, coordtest.Options{})
	ns, id := startThree(c)
	cl := c.Client()
	if err := cl.Drain(ctx(t), "n3", true); err != nil {
		t.Fatal(err)
	}
	a := ns[0].await("the reconfig", func(a *api.Assignment) bool { return a.Job.Reconfig != nil })
	if a.Job.Reconfig.Cause != "n3 draining" {
		t.Fatalf("reconfig cause %q", a.Job.Reconfig.Cause)
	}
	for _, n := range ns { // the drained one confirms too, as a live agent does
		if err := n.fail(id, 1, ""); err != nil {
			t.Fatal(err)
		}
	}
	ns[0].awaitGen(id, 2, 0)
	ns[1].awaitGen(id, 2, 1)
	ns[2].awaitIdle()
	j := job(c, id)
	if len(j.Gen.Members) != 2 || j.Gen.Reason != "n3 left out (n3 draining)" {
		t.Fatalf("generation 2: %+v", j.Gen)
	}
	if n, err := cl.Node(ctx(t), "n3"); err != nil || !n.Drain || n.Job != "" {
		t.Fatalf("n3 after its drain: %+v, %v", n, err)
	}
	if _, _, body := raw(t, "GET", c.Addrs()[0], "/metrics", c.Secret.Token(), nil); !strings.Contains(string(body), "bertnode_nodes_drained 1") {
		t.Error("/metrics does not count the drained node")
	}
	// Registering again (its agent does when left out) keeps the drain.
	ns[2].register()
	c.Clock.Advance(10 * time.Second) // past the growth delay
	id2 := submit(c, jobSpecText(putData(t, cl, trainData), 1, 1))
	c.WaitFor("the second job to wait", func() bool { return job(c, id2).Reason == "waiting for nodes: 0 of 1 idle" })
	if j := job(c, id); j.Reconfig != nil || j.Gen.Gen != 2 {
		t.Fatalf("the job grew back onto a drained node: gen %d, %+v", j.Gen.Gen, j.Reconfig)
	}

	if err := cl.Drain(ctx(t), "n3", false); err != nil {
		t.Fatal(err)
	}
	ns[2].awaitGen(id2, 1, 0)
	logs, err := cl.Logs(ctx(t), id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(logs.Events, func(e api.Event) bool {
		return e.Kind == "drain" && e.Node == "n3" && strings.Contains(e.Message, "draining")
	}) {
		t.Fatalf("no drain event in the job's log: %+v", logs.Events)
	}
}

// TestDrainWaitsUntilTheJobCanGoOn: a drained node stays in its job while the job needs
// it: min_nodes would not hold, or it is the only one left holding the job's state.
// An idle node then replaces it in one reconfiguration.
func TestDrainWaitsUntilTheJobCanGoOn(t *testing.T) {
	c := coordtest.New(t, coordtest.Options{})
	ns := nodes(c, "n1", "n2")
	cl := c.Client()
	data := putData(t, cl, trainData)
	id := submit(c, jobSpecText(data, 2, 2))
	ns[1].awaitGen(id, 1, 1)
	if err := cl.Drain(ctx(t), "n2", true); err != nil {
		t.Fatal(err)
	}
	settle()
	if j := job(c, id); j.Reconfig != nil || j.Gen.Gen != 1 {
		t.Fatalf("a drain below min_nodes reconfigured: gen %d, %+v", j.Gen.Gen, j.Reconfig)
	}
	ns = append(ns, nodes(c, "n3")...)
	ns[0].await("the reconfig", func(a *api.Assignment) bool { return a.Job.Reconfig != nil })
	for _, n := range ns[:2] {
		n.fail(id, 1, "")
	}
	ns[2].awaitGen(id, 2, 1)
	if j := job(c, id); j.Gen.Reason != "n2 left out; n3 joined (n2 draining)" {
		t.Fatalf("generation 2: %q", j.Gen.Reason)
	}
	ns[1].awaitIdle()

	// The only node of a job holds its state: draining it leaves the job as it is,
	// though idle nodes could replace it (they would start over from a checkpoint).
	if err := cl.Drain(ctx(t), "n2", false); err != nil {
		t.Fatal(err)
	}
	id2 := submit(c, jobSpecText(data, 1, 1))
	ns[1].register() // it was left out
	ns[1].awaitGen(id2, 1, 0)
	if err := cl.Cancel(ctx(t), id); err != nil {
		t.Fatal(err)
	}
	ns[0].awaitIdle()
	if err := cl.Drain(ctx(t), "n2", true); err != nil {
		t.Fatal(err)
	}
	settle()
	if j := job(c, id2); j.Reconfig != nil || j.Gen.Gen != 1 {
		t.Fatalf("the drain of a job's only node reconfigured it: gen %d, %+v", j.Gen.Gen, j.Reconfig)
	}
}

// TestDrainRequests: a drain names a registered node; the HTTP body is checked.
func TestDrainRequests(t *testing.T) {
	c := coordtest.New(t, coordtest.Options{})
	nodes(c, "n1")
	cl := c.Client()
	var ae *api.Error
	if err := cl.Drain(ctx(t), "n9", true); !errors.As(err, &ae) || ae.Status != http.StatusNotFound || !strings.Contains(ae.Message, `no node "n9"`) {
		t.Fatalf("drain of an unknown node: %v", err)
	}
	status, _, body := raw(t, "POST", c.Addrs()[0], "/v1/nodes/n1/drain", c.Secret.Token(), []byte(`{"drain": "yes"}`))
	if status != http.StatusBadRequest || !strings.Contains(string(body), "drain") {
		t.Fatalf("a drain body of the wrong type: %d %s", status, body)
	}
	for _, on := range []bool{true, true, false} { // twice is once
		if err := cl.Drain(ctx(t), "n1", on); err != nil {
			t.Fatal(err)
		}
		if n, err := cl.Node(ctx(t), "n1"); err != nil || n.Drain != on {
			t.Fatalf("after drain %v: %+v, %v", on, n, err)
		}
	}
}
