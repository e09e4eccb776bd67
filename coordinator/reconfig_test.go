package coordinator_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/coordinator"
	"github.com/bertnode/bertnode/coordinator/coordtest"
)

// TestReconfigLeavesOutTheSilent: a failure report opens a reconfiguration; members
// confirm; after the rejoin window the next generation holds the confirmed members in
// their old order and the silent one is released. Reports from outside the generation
// are refused. The released node, alive and idle, then joins back by growth.
func TestReconfigLeavesOutTheSilent(t *testing.T) {
	c := coordtest.New(t, coordtest.Options{})
	ns, id := startThree(c)
	start := c.Clock.Now()
	if err := ns[1].fail(id, 1, "ring: n3 timed out"); err != nil {
		t.Fatal(err)
	}
	j := job(c, id)
	if j.Reconfig == nil || !slices.Equal(j.Reconfig.Confirmed, []string{"n2"}) || !j.Reconfig.Deadline.Equal(start.Add(2*time.Second)) {
		t.Fatalf("reconfig after the report: %+v", j.Reconfig)
	}
	ns[0].await("the reconfig", func(a *api.Assignment) bool { return a.Job.Reconfig != nil })
	if err := ns[0].fail(id, 1, ""); err != nil { // confirm
		t.Fatal(err)
	}
	if err := ns[0].fail(id, 1, ""); err != nil { // twice counts once
		t.Fatal(err)
	}
	settle()
	if j := job(c, id); j.Gen.Gen != 1 || !slices.Equal(j.Reconfig.Confirmed, []string{"n2", "n1"}) {
		t.Fatalf("before the deadline: gen %d, reconfig %+v", j.Gen.Gen, j.Reconfig)
	}
	c.Clock.Advance(2 * time.Second)
	ns[0].awaitGen(id, 2, 0)
	ns[1].awaitGen(id, 2, 1)
	j = job(c, id)
	if len(j.Gen.Members) != 2 || j.Progress.Recoveries != 1 || !strings.Contains(j.Gen.Reason, "n3 left out") {
		t.Fatalf("generation 2: %+v, recoveries %d", j.Gen, j.Progress.Recoveries)
	}
	if j.Gen.Members[0].Addr != "127.0.0.1:701" {
		t.Fatalf("ring address: %+v", j.Gen.Members[0])
	}
	conflict(t, ns[2].fail(id, 1, "late"), "generation 1 of job "+id+" is over")
	conflict(t, ns[2].fail(id, 2, "not mine"), "node n3 is not in generation 2")
	err := ns[0].cl.Progress(ctx(t), id, api.ProgressReport{Node: "n1", Gen: 1, Step: 3})
	conflict(t, err, "generation 1 of job "+id+" is over")
	// the node tells this from a failure of its own: its generation is over, not the job
	if ae := (*api.Error)(nil); !errors.As(err, &ae) || !ae.Superseded {
		t.Fatalf("a report for an old generation: %#v, want it marked superseded", err)
	}
	if ae := (*api.Error)(nil); !errors.As(ns[2].fail(id, 2, "not mine"), &ae) || ae.Superseded {
		t.Fatal("a report from a node outside the generation is marked superseded")
	}

	// n3 is idle and alive to gossip, but it was left out: it gets no work until it
	// registers again (a killed node never would), and its assignment asks it to.
	ns[2].await("the request to register again", func(a *api.Assignment) bool { return a.Job == nil && a.Reregister })
	c.Clock.Advance(5 * time.Second)
	settle()
	if j := job(c, id); j.Reconfig != nil {
		t.Fatalf("growth with an unproven node: %+v", j.Reconfig)
	}
	// Once it has, and generation 2 has trained a while, the job grows back to 3 when
	// its members confirm.
	ns[2].register()
	if a := ns[2].await("the registration", func(a *api.Assignment) bool { return true }); a.Reregister {
		t.Fatal("still asked to register again after registering")
	}
	a := ns[0].await("the growth", func(a *api.Assignment) bool { return a.Job.Reconfig != nil })
	if a.Job.Reconfig.Cause != "n3 joining" {
		t.Fatalf("growth cause %q", a.Job.Reconfig.Cause)
	}
	ns[0].fail(id, 2, "")
	ns[1].fail(id, 2, "")
	for r, n := range ns {
		n.awaitGen(id, 3, r)
	}
	logs, err := c.Client().Logs(ctx(t), id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range logs.Events {
		kinds = append(kinds, e.Kind)
	}
	want := []string{"submitted", "planned", "generation", "failure", "reconfig", "confirm", "generation", "reconfig", "confirm", "confirm", "generation"}
	if !slices.Equal(kinds, want) {
		t.Fatalf("log: %v, want %v", kinds, want)
	}
}

// TestReconfigLeavesOutTheNamedAfterGrace: when the members that confirmed name the one
// yet to confirm in their ring errors (its neighbours saw it die), the next generation
// opens once SuspectGrace has passed, without waiting for the rejoin window.
func TestReconfigLeavesOutTheNamedAfterGrace(t *testing.T) {
	c := coordtest.New(t, coordtest.Options{})
	ns, id := startThree(c)
	for _, n := range ns[:2] {
		n.name(id, 1, "n3")
	}
	settle()
	if j := job(c, id); j.Gen.Gen != 1 || j.Reconfig.Suspects["n1"] != "n3" {
		t.Fatalf("before the grace: gen %d, reconfig %+v", j.Gen.Gen, j.Reconfig)
	}
	c.Clock.Advance(coordinator.SuspectGrace) // well within the 2 s window
	ns[0].awaitGen(id, 2, 0)
	if j := job(c, id); len(j.Gen.Members) != 2 || !strings.Contains(j.Gen.Reason, "n3 left out") {
		t.Fatalf("generation 2: %+v", j.Gen)
	}
}

// TestLeftOutNodeWaitsUntilItRegisters is make chaos's run 4: n1 is killed, and its
// neighbours name it; a new node n4 joins, then n2 is killed too. Gossip still lists n1
// as alive all along (it takes seconds to call a killed node dead), but no generation
// takes it back until it registers again, which a killed node never does: a ring with
// it would wait for it until gossip gives up.
func TestLeftOutNodeWaitsUntilItRegisters(t *testing.T) {
	c := coordtest.New(t, coordtest.Options{})
	ns, id := startThree(c)
	lose := func(gen uint32, dead *scripted, survivors ...*scripted) {
		t.Helper()
		for _, n := range survivors {
			n.name(id, gen, dead.id)
		}
		c.Clock.Advance(coordinator.SuspectGrace)
	}
	lose(1, ns[0], ns[1], ns[2])
	ns[1].awaitGen(id, 2, 0)
	n4 := nodes(c, "n4")[0]
	c.Clock.Advance(5 * time.Second) // past the growth delay
	ns[1].await("the growth", func(a *api.Assignment) bool { return a.Job.Reconfig != nil })
	ns[1].fail(id, 2, "")
	ns[2].fail(id, 2, "")
	n4.awaitGen(id, 3, 2)
	if j := job(c, id); !slices.Equal(genMembers(j), []string{"n2", "n3", "n4"}) {
		t.Fatalf("generation 3: %v, want n2 n3 n4", genMembers(j))
	}
	lose(3, ns[1], ns[2], n4)
	n4.awaitGen(id, 4, 1)
	if j := job(c, id); !slices.Equal(genMembers(j), []string{"n3", "n4"}) {
		t.Fatalf("generation 4: %v, want n3 n4 (n1 is unproven, n2 was named)", genMembers(j))
	}
	// n1 was alive after all: its agent registers again, and the job grows back to 3.
	ns[0].register()
	c.Clock.Advance(5 * time.Second)
	ns[2].await("the growth", func(a *api.Assignment) bool { return a.Job.Reconfig != nil })
	ns[2].fail(id, 4, "")
	n4.fail(id, 4, "")
	ns[0].awaitGen(id, 5, 2)
}

// TestLeftOutNodeComesBackAfterGrace: a left-out node that never registers again (its
// agent is an older version) but that gossip keeps calling alive is taken again once
// UnprovenGrace has passed since it was left out.
func TestLeftOutNodeComesBackAfterGrace(t *testing.T) {
	c := coordtest.New(t, coordtest.Options{})
	ns, id := startThree(c)
	for _, n := range ns[:2] {
		n.name(id, 1, "n3")
	}
	c.Clock.Advance(coordinator.SuspectGrace)
	ns[0].awaitGen(id, 2, 0)
	c.Clock.Advance(coordinator.UnprovenGrace - time.Second) // since generation 2 left n3 out
	settle()
	if j := job(c, id); j.Reconfig != nil {
		t.Fatalf("growth with n3 before the grace: %+v", j.Reconfig)
	}
	c.Clock.Advance(time.Second)
	ns[0].await("the growth", func(a *api.Assignment) bool { return a.Job.Reconfig != nil })
	ns[0].fail(id, 2, "")
	ns[1].fail(id, 2, "")
	ns[2].awaitGen(id, 3, 2)
}

func genMembers(j *api.Job) []string {
	var out []string
	for _, m := range j.Gen.Members {
		out = append(out, m.Node)
	}
	return out
}

// growing runs three nodes' job on a cluster made with opts into a reconfiguration
// that adds a node, a growth unless growth is false: generation 2 left n3 out, n3
// registers again, and generation 2 has trained long enough to grow.
func growing(t *testing.T, opts coordtest.Options, growth bool) (*coordtest.Cluster, []*scripted, string) {
	c := coordtest.New(t, opts)
	ns, id := startThree(c)
	ns[0].fail(id, 1, "ring: n3 timed out")
	ns[1].fail(id, 1, "")
	c.Clock.Advance(2 * time.Second)
	ns[0].awaitGen(id, 2, 0)
	ns[2].register() // as its agent does when left out
	c.Clock.Advance(5 * time.Second)
	a := ns[0].await("the growth", func(a *api.Assignment) bool { return a.Job.Reconfig != nil })
	if a.Job.Reconfig.Cause != "n3 joining" || a.Job.Reconfig.Growth != growth {
		t.Fatalf("reconfig %+v, want n3 joining with growth %v", a.Job.Reconfig, growth)
	}
	return c, ns, id
}

// TestGrowthKeepsSlowMembers: a growth reconfiguration only adds nodes; a member that
// has not confirmed by the deadline is slow (say, its coordinator calls are failing
// over), not lost, and stays. A failure report during it makes it a failure one.
func TestGrowthKeepsSlowMembers(t *testing.T) {
	c, ns, id := growing(t, coordtest.Options{}, true)
	ns[0].fail(id, 2, "") // n2 stays silent
	c.Clock.Advance(2 * time.Second)
	for r, n := range ns {
		n.awaitGen(id, 3, r)
	}
}

// TestGrowthLeavesOutSuspectSilentMembers: a member that has not confirmed a growth by
// its deadline and that gossip suspects is cut off, not slow (chaos: a partition during
// a node's joining kept the cut-off member in the next ring, which stalled until gossip
// called it dead): the new generation leaves it out.
func TestGrowthLeavesOutSuspectSilentMembers(t *testing.T) {
	c, ns, id := growing(t, coordtest.Options{}, true)
	c.Gossip.SetHealth("n2", api.Suspect)
	ns[0].fail(id, 2, "") // n2 stays silent
	c.Clock.Advance(2 * time.Second)
	ns[0].awaitGen(id, 3, 0)
	ns[2].awaitGen(id, 3, 1)
	if got := genMembers(job(c, id)); !slices.Equal(got, []string{"n1", "n3"}) {
		t.Fatalf("generation 3: %v, want n1 and n3", got)
	}
}

// TestReconfigOnGossip: suspect alone changes nothing; dead starts a reconfiguration
// that closes as soon as the survivors confirmed.
func TestReconfigOnGossip(t *testing.T) {
	c := coordtest.New(t, coordtest.Options{})
	ns := nodes(c, "n1", "n2")
	id := submit(c, jobSpecText(putData(t, c.Client(), trainData), 2, 1))
	ns[0].awaitGen(id, 1, 0)
	c.Gossip.SetHealth("n2", api.Suspect)
	settle()
	if j := job(c, id); j.Reconfig != nil {
		t.Fatalf("a suspect member started a reconfig: %+v", j.Reconfig)
	}
	// Called dead and refuted within DeadConfirm (a healed partition's stale word): no
	// reconfig, and the state never says dead.
	c.Gossip.SetHealth("n2", api.Dead)
	settle()
	c.Gossip.SetHealth("n2", api.Alive)
	time.Sleep(coordinator.LoopbackTiming.DeadConfirm)
	if j := job(c, id); j.Reconfig != nil {
		t.Fatalf("a death refuted within DeadConfirm started a reconfig: %+v", j.Reconfig)
	}
	c.Gossip.SetHealth("n2", api.Dead)
	a := ns[0].await("the reconfig", func(a *api.Assignment) bool { return a.Job.Reconfig != nil })
	if a.Job.Reconfig.Cause != "n2 dead" {
		t.Fatalf("cause %q", a.Job.Reconfig.Cause)
	}
	ns[0].fail(id, 1, "")
	ns[0].awaitGen(id, 2, 0) // no deadline to wait for: n2 is dead
	if j := job(c, id); j.Gen.Ranks() != 1 {
		t.Fatalf("generation 2: %+v", j.Gen)
	}
	ns[1].awaitIdle()
}

// TestNewGenerationOfNewNodesRestoresTheCheckpoint: when no member of the previous
// generation is left, the next one names the job's latest checkpoint for its members to
// load; one that keeps a member does not.
func TestNewGenerationOfNewNodesRestoresTheCheckpoint(t *testing.T) {
	c := coordtest.New(t, coordtest.Options{})
	ns := nodes(c, "n1", "n2")
	id := submit(c, jobSpecText(putData(t, c.Client(), trainData), 1, 1))
	ns[0].awaitGen(id, 1, 0)
	blob := strings.TrimPrefix(putData(t, c.Client(), "a checkpoint"), "blob:")
	if err := ns[0].cl.Result(ctx(t), id, api.ResultReport{Node: "n1", Kind: "checkpoint", Blob: blob, Size: 12, Step: 20}); err != nil {
		t.Fatal(err)
	}
	c.Gossip.SetHealth("n1", api.Dead)
	ns[1].awaitGen(id, 2, 0)
	if j := job(c, id); j.Gen.Restore != blob {
		t.Fatalf("generation 2 of a new node: restore %q, want the checkpoint %s", j.Gen.Restore, blob)
	}
}

// TestWaitForNodesThenResume: below min_nodes the job keeps running with its
// survivor on standby (rank -1, still assigned) until a node joins.
func TestWaitForNodesThenResume(t *testing.T) {
	c := coordtest.New(t, coordtest.Options{})
	ns := nodes(c, "n1", "n2")
	id := submit(c, jobSpecText(putData(t, c.Client(), trainData), 2, 2))
	ns[0].awaitGen(id, 1, 0)
	ns[1].fail(id, 1, "ring: n1 closed the connection")
	c.Gossip.SetHealth("n1", api.Left)
	a := ns[1].awaitGen(id, 1, -1)
	if a.Job.State != api.Running || a.Job.Reason != "waiting for nodes: 1 of min 2" || !slices.Equal(a.Job.Waiting, []string{"n2"}) {
		t.Fatalf("waiting job: %s %q %v", a.Job.State, a.Job.Reason, a.Job.Waiting)
	}
	ns[0].awaitIdle()
	conflict(t, ns[1].cl.Progress(ctx(t), id, api.ProgressReport{Node: "n2", Gen: 1}), "waits for nodes")
	nodes(c, "n3")
	ns[1].awaitGen(id, 2, 0)
	if j := job(c, id); j.Reason != "" || j.Waiting != nil || j.Gen.Members[1].Node != "n3" {
		t.Fatalf("resumed: %+v", j)
	}
}

// TestChecksumMismatchFailsTheJob: manifests that agree are kept; one that does not
// fails the job, naming the step, the nodes and their checksums, and frees the nodes.
func TestChecksumMismatchFailsTheJob(t *testing.T) {
	c := coordtest.New(t, coordtest.Options{})
	ns := nodes(c, "n1", "n2")
	id := submit(c, jobSpecText(putData(t, c.Client(), trainData), 2, 2))
	ns[1].awaitGen(id, 1, 1)
	ck := func(n *scripted, step int64, sum string) error {
		return n.cl.Checkpoint(ctx(t), id, api.CheckpointReport{Node: n.id, Gen: 1, Step: step, Checksum: sum})
	}
	for step := int64(10); step <= 70; step += 10 {
		if err := ck(ns[0], step, "aa"); err != nil {
			t.Fatal(err)
		}
		if err := ck(ns[1], step, "aa"); err != nil {
			t.Fatal(err)
		}
	}
	if j := job(c, id); len(j.Checkpoints) != 5 || j.Checkpoints[0].Step != 30 || j.State != api.Running {
		t.Fatalf("manifests: %+v", j.Checkpoints)
	}
	ck(ns[0], 80, "aa")
	conflict(t, ck(ns[1], 80, "bb"), "checkpoint at step 80")
	j := job(c, id)
	if j.State != api.Failed || j.Reason != "checkpoint at step 80: the replicas differ: n1 aa, n2 bb" {
		t.Fatalf("after a mismatch: %s %q", j.State, j.Reason)
	}
	ns[0].awaitIdle()
	ns[1].awaitIdle()
}

// TestDoneAndCancelReleaseNodes: rank 0's done report ends the job in success with its
// results; another rank's error ends it in failure; a cancel ends it too; each frees
// the nodes for the next job.
func TestDoneAndCancelReleaseNodes(t *testing.T) {
	c := coordtest.New(t, coordtest.Options{})
	ns := nodes(c, "n1", "n2")
	cl := c.Client()
	data := putData(t, cl, trainData)
	id := submit(c, jobSpecText(data, 2, 2))
	ns[1].awaitGen(id, 1, 1)
	conflict(t, ns[1].cl.Done(ctx(t), id, api.DoneReport{Node: "n2", Gen: 1}), "only rank 0")
	model := putData(t, cl, "weights")[len("blob:"):]
	if err := cl.Result(ctx(t), id, api.ResultReport{Node: "n1", Kind: "final", Blob: model, Step: 40, Metrics: map[string]float64{"f1": 0.9}}); err != nil {
		t.Fatal(err)
	}
	var ae *api.Error
	if err := cl.Result(ctx(t), id, api.ResultReport{Node: "n1", Kind: "final", Blob: strings.Repeat("0", 64)}); !errors.As(err, &ae) || ae.Field != "blob" {
		t.Fatalf("result with an unknown blob: %v", err)
	}
	if err := cl.Progress(ctx(t), id, api.ProgressReport{Node: "n1", Gen: 1, Step: 20, Eval: map[string]float64{"f1": 0.5}, EvalStep: 20}); err != nil {
		t.Fatal(err)
	}
	// the last eval rides on the done report too: its own progress report can be refused
	// when a generation change comes between them
	if err := cl.Done(ctx(t), id, api.DoneReport{Node: "n1", Gen: 1, Step: 40, Eval: map[string]float64{"f1": 0.9}, EvalStep: 40}); err != nil {
		t.Fatal(err)
	}
	j := job(c, id)
	if j.State != api.Succeeded || j.Results["final"].Blob != model || j.Results["final"].Size != 7 || j.Progress.Step != 40 || j.Finished.IsZero() {
		t.Fatalf("succeeded job: %+v", j)
	}
	if j.Progress.Eval["f1"] != 0.9 || j.Progress.EvalStep != 40 {
		t.Fatalf("eval after done: %v at step %d", j.Progress.Eval, j.Progress.EvalStep)
	}
	ns[0].awaitIdle()
	ns[1].awaitIdle()

	id2 := submit(c, jobSpecText(data, 2, 2))
	ns[1].awaitGen(id2, 1, 1)
	if err := ns[1].cl.Done(ctx(t), id2, api.DoneReport{Node: "n2", Gen: 1, Error: "CUDA out of memory"}); err != nil {
		t.Fatal(err)
	}
	if j := job(c, id2); j.State != api.Failed || j.Reason != "n2: CUDA out of memory" {
		t.Fatalf("failed job: %s %q", j.State, j.Reason)
	}
	ns[0].awaitIdle()

	id3 := submit(c, jobSpecText(data, 2, 2))
	ns[0].awaitGen(id3, 1, 0)
	if err := cl.Cancel(ctx(t), id3); err != nil {
		t.Fatal(err)
	}
	ns[0].awaitIdle()
	ns[1].awaitIdle()
	conflict(t, cl.Cancel(ctx(t), id3), "already cancelled")
	if j := job(c, id3); j.State != api.Cancelled {
		t.Fatalf("cancelled job: %s", j.State)
	}
}

// TestPendingWaitsForNodes: a job needs cluster.nodes idle nodes to start.
func TestPendingWaitsForNodes(t *testing.T) {
	c := coordtest.New(t, coordtest.Options{})
	ns := nodes(c, "n1")
	id := submit(c, jobSpecText(putData(t, c.Client(), trainData), 2, 1))
	c.WaitFor("the reason", func() bool { return job(c, id).Reason == "waiting for nodes: 1 of 2 idle" })
	if j := job(c, id); j.State != api.Pending || j.Labels[0] != "ham" || j.Train.Plan == "" {
		t.Fatalf("pending job: %+v", j)
	}
	nodes(c, "n2")
	ns[0].awaitGen(id, 1, 0)
}
