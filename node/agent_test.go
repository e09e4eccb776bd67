package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bertnode/bertnode/allreduce"
	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/internal/lossscale"
	"github.com/bertnode/bertnode/report"
	"github.com/bertnode/bertnode/shard"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"gopkg.in/yaml.v3"
)

// These tests play the coordinator's part by hand (coord below) and run real agents
// with the Toy model over real TCP rings on loopback.

// coord is the test's coordinator: it hands out the assignments the test decides and
// records what the nodes report.
type coord struct {
	mu       sync.Mutex
	index    uint64
	changed  chan struct{}
	job      api.Job
	ranks    map[string]int // node -> rank in the current generation; absent: not assigned
	addrs    map[string]string
	unproven map[string]bool // nodes asked to register again
	removed  map[string]bool // nodes the catalog no longer holds: 404 until they register
	drained  map[string]bool // nodes drained (by themselves: the fake leaves them in place)
	regs     map[string]int  // registrations by node
	deleted  map[string]time.Time
	failures chan api.FailureReport
	done     chan api.DoneReport
	results  map[string]api.ResultReport
	blobs    map[string][]byte
	ckpts    []api.CheckpointReport
	progress []api.ProgressReport
	prev     api.Job // a finished job, for Job
	// refuse, when set, may refuse a checkpoint or done report (called with mu held).
	refuse func(kind string, node string, gen uint32, failed bool) error
	// unanswered, when set, says how long a checkpoint report waits for its answer (a
	// leader cut off the network answers nothing).
	unanswered func(api.CheckpointReport) time.Duration
	// unnoticed: a restarted node keeps its rank in the current generation, as with a
	// real leader that saw no death (every process lost power at once).
	unnoticed bool
}

func newCoord(spec string) *coord {
	return &coord{changed: make(chan struct{}), job: api.Job{ID: "job-1", Spec: spec, State: api.Running},
		ranks: map[string]int{}, addrs: map[string]string{}, unproven: map[string]bool{}, removed: map[string]bool{}, drained: map[string]bool{}, regs: map[string]int{}, failures: make(chan api.FailureReport, 100),
		done: make(chan api.DoneReport, 10), results: map[string]api.ResultReport{}, blobs: map[string][]byte{}}
}

func (c *coord) bump() {
	c.index++
	close(c.changed)
	c.changed = make(chan struct{})
}

// open starts generation gen with members in rank order; assigned nodes not in it
// wait with rank -1.
func (c *coord) open(gen uint32, members ...string) { c.openRestoring(gen, "", members...) }

// openRestoring opens a generation whose members load the checkpoint blob restore.
func (c *coord) openRestoring(gen uint32, restore string, members ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := &api.Generation{Gen: gen, Opened: time.Now(), Restore: restore}
	for n := range c.ranks {
		c.ranks[n] = -1
	}
	for i, m := range members {
		g.Members = append(g.Members, api.RingMember{Node: m, Addr: c.addrs[m]})
		c.ranks[m] = i
	}
	c.job.Gen, c.job.Reconfig = g, nil
	c.bump()
}

// reconfig opens a membership change of the current generation, as the leader does
// when a node joins.
func (c *coord) reconfig(cause string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.job.Reconfig = &api.Reconfig{Gen: c.job.Gen.Gen, Started: time.Now(), Cause: cause}
	c.bump()
}

// Lease, RenewLease and UnitDone: this coordinator plays training jobs only (predict jobs run
// against a real one in cmd/bertnode's tests).
func (c *coord) Lease(ctx context.Context, job, node string) (api.Lease, error) {
	return api.Lease{Unit: -1}, &api.Error{Status: 409, Message: "not a predict job"}
}

func (c *coord) RenewLease(ctx context.Context, job, node string, unit int) (api.Lease, error) {
	return api.Lease{Unit: -1}, &api.Error{Status: 409, Message: "not a predict job"}
}

func (c *coord) UnitDone(ctx context.Context, job string, r api.UnitReport) error {
	return &api.Error{Status: 409, Message: "not a predict job"}
}

func (c *coord) DeletedJobs(ctx context.Context) (map[string]time.Time, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.deleted), nil
}

func (c *coord) Drain(ctx context.Context, node string, on bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.drained[node] = on
	return nil
}

func (c *coord) RegisterNode(ctx context.Context, r api.RegisterNode) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addrs[r.ID] = r.RingAddr
	c.regs[r.ID]++
	delete(c.removed, r.ID)
	if c.unproven[r.ID] {
		delete(c.unproven, r.ID)
		c.bump()
	}
	return nil
}

func (c *coord) Assignment(ctx context.Context, node string, index uint64, wait time.Duration) (*api.Assignment, error) {
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		c.mu.Lock()
		if c.removed[node] {
			defer c.mu.Unlock()
			return nil, &api.Error{Status: http.StatusNotFound, Message: fmt.Sprintf("no node %q (register first)", node)}
		}
		if c.index > index {
			defer c.mu.Unlock()
			a := &api.Assignment{Index: c.index, Rank: -1, Reregister: c.unproven[node]}
			if r, ok := c.ranks[node]; ok {
				j := c.job
				if j.Reconfig != nil {
					rc := *j.Reconfig
					j.Reconfig = &rc
				}
				a.Job, a.Rank = &j, r
				if j.Gen != nil {
					a.Gen = j.Gen.Gen
				}
			}
			return a, nil
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-t.C:
			c.mu.Lock()
			defer c.mu.Unlock()
			return nil, errors.New("no change")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (c *coord) Progress(ctx context.Context, job string, r api.ProgressReport) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.progress = append(c.progress, r)
	return nil
}

func (c *coord) Failure(ctx context.Context, job string, r api.FailureReport) error {
	c.failures <- r
	return nil
}

func (c *coord) Checkpoint(ctx context.Context, job string, r api.CheckpointReport) error {
	if c.unanswered != nil {
		if !sleep(ctx, c.unanswered(r)) {
			return ctx.Err()
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refuse != nil {
		if err := c.refuse("checkpoint", r.Node, r.Gen, false); err != nil {
			return err
		}
	}
	c.ckpts = append(c.ckpts, r)
	// The manifest, as the FSM keeps it: copied, as assignments share the job's.
	cps := slices.Clone(c.job.Checkpoints)
	i := slices.IndexFunc(cps, func(x api.Checkpoint) bool { return x.Step == r.Step })
	if i < 0 {
		cps, i = append(cps, api.Checkpoint{Step: r.Step, Gen: r.Gen}), len(cps)
	}
	cps[i].Checksums = maps.Clone(cps[i].Checksums)
	if cps[i].Checksums == nil {
		cps[i].Checksums = map[string]string{}
	}
	cps[i].Checksums[r.Node] = r.Checksum
	c.job.Checkpoints = cps
	return nil
}

func (c *coord) Result(ctx context.Context, job string, r api.ResultReport) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.blobs[r.Blob]; !ok {
		return &api.Error{Message: "no such blob"}
	}
	c.results[r.Kind] = r
	return nil
}

func (c *coord) Done(ctx context.Context, job string, r api.DoneReport) error {
	c.mu.Lock()
	if c.refuse != nil {
		if err := c.refuse("done", r.Node, r.Gen, r.Error != ""); err != nil {
			c.mu.Unlock()
			return err
		}
	}
	if r.Error == "" {
		c.job.State = api.Succeeded
	} else {
		c.job.State = api.Failed
	}
	c.bump()
	c.mu.Unlock()
	c.done <- r
	return nil
}

func (c *coord) PutBlob(ctx context.Context, r io.Reader, size int64) (string, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return "", err
	}
	if int64(len(b)) != size {
		return "", fmt.Errorf("blob: %d bytes, announced %d", len(b), size)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	sha := fmt.Sprintf("blob-%d", len(c.blobs))
	c.blobs[sha] = b
	return sha, nil
}

func (c *coord) GetBlob(ctx context.Context, sha string) (io.ReadCloser, int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.blobs[sha]
	if !ok {
		return nil, 0, &api.Error{Message: "no such blob"}
	}
	return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
}

func (c *coord) Job(ctx context.Context, id string) (*api.Job, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if id != c.prev.ID {
		return nil, &api.Error{Message: "no such job"}
	}
	j := c.prev
	return &j, nil
}

// memData is the SMS spam data in memory: every fifth record held out for evaluation.
type memData struct {
	train []shard.Record
	seed  uint64
}

func (d *memData) Records() int { return len(d.train) }

func (d *memData) Order(epoch int) []int32 {
	o := shard.Order(len(d.train), d.seed, epoch, 0)
	out := make([]int32, len(o))
	for i, v := range o {
		out[i] = int32(v)
	}
	return out
}

func (d *memData) Read(ctx context.Context, ids []int32) ([]shard.Record, error) {
	out := make([]shard.Record, len(ids))
	for i, id := range ids {
		out[i] = d.train[id]
	}
	return out, nil
}

var smsOnce struct {
	sync.Once
	train, eval []shard.Record
	err         error
}

func smsData(t *testing.T) (train, eval []shard.Record) {
	smsOnce.Do(func() {
		r, err := shard.OpenFile(shard.Spec{Format: shard.LabelText, Delimiter: "\t"}, "../data/sms_spam/SMSSpamCollection")
		if err != nil {
			smsOnce.err = err
			return
		}
		defer r.Close()
		for i := 0; ; i++ {
			var rec shard.Record
			if err := r.Next(&rec); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				smsOnce.err = err
				return
			}
			if i%5 == 4 {
				smsOnce.eval = append(smsOnce.eval, rec)
			} else {
				smsOnce.train = append(smsOnce.train, rec)
			}
		}
	})
	if smsOnce.err != nil {
		t.Fatal(smsOnce.err)
	}
	return smsOnce.train, smsOnce.eval
}

const toySpec = `
model: toy
train: sms.txt
batch_size: 64
epochs: 2
lr: 0.05
eval_steps: 20
save_steps: 25
metric: accuracy
cluster: {nodes: 3, ring_timeout: 3s}
`

// toySetup builds Toy jobs on the SMS data; seeds differ per node so that only the
// state transfer can make the replicas equal.
func toySetup(t *testing.T, seed int64) Setup {
	train, eval := smsData(t)
	return func(ctx context.Context, job *api.Job) (*Env, error) {
		spec, err := api.ParseSpec(job.Spec)
		if err != nil {
			return nil, err
		}
		var mp struct {
			MixedPrecision string `yaml:"mixed_precision"`
		}
		if err := yaml.Unmarshal([]byte(job.Spec), &mp); err != nil {
			return nil, err
		}
		// With fp16, a range small for the Toy's gradients: its loss scale falls from 2^16
		// in the first steps, as a BERT's does.
		m, err := NewToy(ToyConfig{Labels: []string{"ham", "spam"}, LR: spec.LR, ClipNorm: spec.ClipNorm, Seed: seed, Eval: eval,
			FP16: mp.MixedPrecision == "fp16", FP16Max: 100})
		if err != nil {
			return nil, err
		}
		return &Env{Spec: spec, Replica: m, Data: &memData{train: train, seed: uint64(spec.Seed)}, HasEval: true}, nil
	}
}

// testNode is an agent running in the test process.
type testNode struct {
	id     string
	dir    string
	agent  *Agent
	ln     net.Listener
	cancel context.CancelFunc
	exited chan error
}

func startNode(t *testing.T, c *coord, id string, seed int64) *testNode {
	t.Helper()
	return startNodeIn(t, c, id, seed, t.TempDir())
}

// startNodeIn starts a node keeping its data in dir (a restart when dir is a dead
// node's).
func startNodeIn(t *testing.T, c *coord, id string, seed int64, dir string) *testNode {
	t.Helper()
	c.mu.Lock()
	addr := "127.0.0.1:0"
	if c.unnoticed { // as a real node, on its ring port of before
		addr = c.addrs[id]
	}
	c.addrs[id] = ""
	if _, ok := c.ranks[id]; ok && !c.unnoticed {
		// A restarted node: its rank in the generation it died in is not its own any
		// more (a real leader that noticed the death reconfigures). Kept, its first assignment sends it into
		// that generation, towards its peers' dead addresses, until the test opens the
		// next. (A clean clone's make test once hung so in
		// TestNodesResumeFromTheirCheckpointsAfterAWholeClusterRestart, both nodes out of
		// generation 2, which this coordinator never replaces: the old generation's
		// cancelled setup cut the next one's short on the shared listener, since fixed in
		// allreduce, TestCancelledSetupLeavesTheListenerToTheNext.)
		c.ranks[id] = -1
	}
	c.mu.Unlock()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	n := &testNode{id: id, dir: dir, ln: ln, exited: make(chan error, 1)}
	var logw io.Writer = io.Discard
	if testing.Verbose() {
		logw = os.Stderr
	}
	n.agent = New(Config{ID: id, Dir: n.dir, RingAddr: ln.Addr().String(), Coordinator: c, Setup: toySetup(t, seed),
		Listener: ln.(*net.TCPListener), RingSecret: []byte("node-test-secret-0123456789abcdef"), Watch: 2 * time.Second, Prune: 100 * time.Millisecond,
		Log: log.New(logw, id+" ", log.Lmicroseconds)})
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() { n.exited <- n.agent.Run(ctx) }()
	t.Cleanup(n.kill)
	waitFor(t, "registration of "+id, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.addrs[id] != "" })
	c.mu.Lock()
	c.ranks[id] = -1
	c.mu.Unlock()
	return n
}

// kill stops the node as a crash would: its context ends and its sockets close.
func (n *testNode) kill() {
	n.cancel()
	n.ln.Close()
	<-n.exited
	n.exited <- nil
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (n *testNode) final(t *testing.T) []byte { return n.finalOf(t, "job-1") }

func (n *testNode) finalOf(t *testing.T, job string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(n.dir, "jobs", job, "final", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (n *testNode) audit(t *testing.T) []AuditEntry { return n.auditOf(t, "job-1") }

func (n *testNode) auditOf(t *testing.T, job string) []AuditEntry {
	t.Helper()
	es, err := ReadAudit(filepath.Join(n.dir, "jobs", job, "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func awaitDone(t *testing.T, c *coord) api.DoneReport {
	t.Helper()
	select {
	case d := <-c.done:
		if d.Error != "" {
			t.Fatalf("the job failed: %s", d.Error)
		}
		return d
	case <-time.After(120 * time.Second):
		c.mu.Lock()
		t.Logf("coordinator's view: generation %+v, ranks %v, addresses %v", c.job.Gen, c.ranks, c.addrs)
		c.mu.Unlock()
		logStacks(t)
		t.Fatal("the job did not end")
	}
	return api.DoneReport{}
}

// logStacks logs the goroutines running bertnode code: where a hung job waits.
func logStacks(t *testing.T) {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "bertnode/node.") || strings.Contains(g, "bertnode/allreduce.") {
			t.Log(g)
		}
	}
}

func checkAudit(t *testing.T, records int, wantEpochs int, nodes ...*testNode) AuditReport {
	t.Helper()
	var all []AuditEntry
	for _, n := range nodes {
		all = append(all, n.audit(t)...)
	}
	r, err := Audit(all, allIDs(records))
	if err != nil {
		t.Fatal(err)
	}
	if r.Lost != 0 || r.Repeated != 0 {
		t.Fatalf("audit: %d samples lost, %d repeated (%+v)", r.Lost, r.Repeated, r)
	}
	if r.Epochs != wantEpochs || r.PerEpoch[wantEpochs-1] != records {
		t.Fatalf("audit: %d epochs, last one %d of %d samples; want %d full epochs", r.Epochs, r.PerEpoch[r.Epochs-1], records, wantEpochs)
	}
	return r
}

func TestThreeNodesTrainIdentically(t *testing.T) {
	c := newCoord(toySpec + "report_to: [tensorboard]\n")
	train, _ := smsData(t)
	nodes := []*testNode{startNode(t, c, "n1", 1), startNode(t, c, "n2", 2), startNode(t, c, "n3", 3)}
	c.open(1, "n1", "n2", "n3")
	d := awaitDone(t, c)
	spec, _ := api.ParseSpec(toySpec)
	if want := spec.TotalSteps(len(train)); d.Step != want {
		t.Fatalf("done at step %d, want %d", d.Step, want)
	}
	for _, n := range nodes[1:] {
		waitFor(t, "final model of "+n.id, func() bool {
			_, err := os.Stat(filepath.Join(n.dir, "jobs", "job-1", "final", "model.safetensors"))
			return err == nil
		})
		if !bytes.Equal(n.final(t), nodes[0].final(t)) {
			t.Fatalf("%s's final model differs from n1's", n.id)
		}
	}
	checkAudit(t, len(train), 2, nodes...)
	// The job asked for TensorBoard: rank 0's final model holds the event file, with
	// every step's loss.
	evs, _ := filepath.Glob(filepath.Join(nodes[0].dir, "jobs", "job-1", "final", "events.out.tfevents.*"))
	if len(evs) != 1 {
		t.Fatalf("event files in the final model: %v", evs)
	}
	f, err := os.Open(evs[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	events, err := report.ReadEvents(f, evs[0])
	if err != nil {
		t.Fatal(err)
	}
	losses := 0
	for _, e := range events {
		for _, v := range e.Scalars {
			if v.Tag == "train/loss" {
				losses++
			}
		}
	}
	if want := int(spec.TotalSteps(len(train))); losses != want {
		t.Fatalf("%d train/loss scalars in the event file, want %d", losses, want)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, kind := range []string{"final", "best", "checkpoint"} {
		if _, ok := c.results[kind]; !ok {
			t.Errorf("no %s result uploaded", kind)
		}
	}
	if acc := c.results["best"].Metrics["accuracy"]; acc < 0.9 {
		t.Errorf("best accuracy %.3f: the toy model did not learn", acc)
	}
	// Every rank's checksum at every save step agrees.
	sums := map[int64]map[string]bool{}
	for _, r := range c.ckpts {
		if sums[r.Step] == nil {
			sums[r.Step] = map[string]bool{}
		}
		sums[r.Step][r.Checksum] = true
	}
	if len(sums) == 0 {
		t.Fatal("no checkpoint reports")
	}
	for step, s := range sums {
		if len(s) != 1 {
			t.Errorf("step %d: %d different checksums", step, len(s))
		}
	}
}

// A checkpoint report that goes unanswered for longer than the ring's timeout (sent
// to a leader just cut off the network) holds no step: the ring trains on in its
// generation to the end (the toy job's 140 steps take well under the 6 s it waits).
func TestUnansweredCheckpointReportHoldsNoStep(t *testing.T) {
	c := newCoord(toySpec)
	var held atomic.Bool
	c.unanswered = func(r api.CheckpointReport) time.Duration {
		if r.Node == "n2" && !held.Swap(true) { // its first (step 25's, unless 50's replaced it)
			return 2 * 3 * time.Second // twice toySpec's ring timeout
		}
		return 0
	}
	n1, n2 := startNode(t, c, "n1", 1), startNode(t, c, "n2", 2)
	c.open(1, "n1", "n2")
	select {
	case f := <-c.failures:
		t.Fatalf("failure report %+v: the unanswered report broke the ring", f)
	case d := <-c.done:
		if d.Error != "" || d.Gen != 1 {
			t.Fatalf("the job ended in generation %d (error %q)", d.Gen, d.Error)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the job did not end")
	}
	if !held.Load() {
		t.Fatal("no checkpoint report from n2")
	}
	waitFor(t, "n2's final model", func() bool { return n2.hasFinal("job-1") })
	if !bytes.Equal(n1.final(t), n2.final(t)) {
		t.Fatal("the final models differ")
	}
}

// The last checkpoint's report, slow to be answered, is answered before rank 0 reports
// the end: the coordinator compares the replicas at every step they saved, the last
// one included (the toy job saves at 125 of its 140 steps, and rank 0 ran the 15 after
// it and reported the end in well under the second the report waits).
func TestLastCheckpointReportIsAnsweredBeforeTheEnd(t *testing.T) {
	c := newCoord(toySpec)
	c.unanswered = func(r api.CheckpointReport) time.Duration {
		if r.Node == "n2" && r.Step == 125 {
			return time.Second // under the wait's bound, half toySpec's 3 s ring timeout
		}
		return 0
	}
	startNode(t, c, "n1", 1)
	startNode(t, c, "n2", 2)
	c.open(1, "n1", "n2")
	select {
	case d := <-c.done:
		if d.Error != "" || d.Step != 140 {
			t.Fatalf("the job ended at step %d (error %q), want 140", d.Step, d.Error)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the job did not end")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !slices.ContainsFunc(c.ckpts, func(r api.CheckpointReport) bool { return r.Node == "n2" && r.Step == 125 }) {
		t.Fatalf("the end was reported before n2's checkpoint report of step 125 was answered (answered: %+v)", c.ckpts)
	}
}

// A rank lost while the others wait at the end's barrier (here n2, killed while its
// last checkpoint report waits for an answer) is a failure like any: n1 reports its
// generation broken, and in the next, alone, it finishes the job at once.
func TestRankLostAtTheEndsBarrier(t *testing.T) {
	c := newCoord(toySpec)
	held := make(chan struct{})
	c.unanswered = func(r api.CheckpointReport) time.Duration {
		if r.Node == "n2" && r.Step == 125 {
			close(held)
			return time.Minute
		}
		return 0
	}
	startNode(t, c, "n1", 1)
	n2 := startNode(t, c, "n2", 2)
	c.open(1, "n1", "n2")
	select {
	case <-held:
	case <-time.After(60 * time.Second):
		t.Fatal("no checkpoint report of step 125 from n2")
	}
	waitFor(t, "n2's final model", func() bool { return n2.hasFinal("job-1") }) // it waits at the barrier
	n2.kill()
	select {
	case f := <-c.failures:
		if f.Node != "n1" || f.Gen != 1 {
			t.Fatalf("failure report %+v, want n1's of generation 1", f)
		}
	case d := <-c.done:
		t.Fatalf("the job ended (step %d, %q) without n2's report answered", d.Step, d.Error)
	case <-time.After(30 * time.Second):
		t.Fatal("n1 did not report the generation broken")
	}
	c.open(2, "n1")
	if d := awaitDone(t, c); d.Gen != 2 || d.Step != 140 {
		t.Fatalf("done in generation %d at step %d, want 2 and 140", d.Gen, d.Step)
	}
}

// With mixed_precision fp16 the ranks scale the loss, skip together the steps whose
// summed gradient overflowed, and carry the scale in the position: a node that joins
// mid-job receives it with the rest, every sample is trained once, the replicas end
// equal, a skipped step logs no metrics, as bertnode train's, and the progress reports
// tell the coordinator the scale and the steps skipped.
func TestFP16LossScaleIsKeptAcrossTheRing(t *testing.T) {
	c := newCoord(toySpec + "mixed_precision: fp16\n")
	train, _ := smsData(t)
	n1, n2, n3, d := joinMidJob(t, c, 30)
	for _, n := range []*testNode{n2, n3} {
		waitFor(t, n.id+"'s final model", func() bool { return n.hasFinal("job-1") })
		if !bytes.Equal(n1.final(t), n.final(t)) {
			t.Fatalf("%s's final model differs from n1's", n.id)
		}
	}
	checkAudit(t, len(train), 2, n1, n2, n3)
	c.mu.Lock()
	acc := c.results["best"].Metrics["accuracy"]
	c.mu.Unlock()
	if acc < 0.9 {
		t.Errorf("best accuracy %.3f: the toy model did not learn", acc)
	}
	var last Position
	for _, n := range []*testNode{n1, n2, n3} {
		var p Position
		if err := readJSON(filepath.Join(n.dir, "jobs", "job-1", fmt.Sprintf("%s%d", ckptPrefix, 125), positionFile), &p); err != nil {
			t.Fatal(err)
		}
		if p.Skipped == 0 || p.LossScale <= 0 || p.LossScale >= lossscale.Initial || p.LossScale != lossscale.Initial/math.Pow(2, float64(p.Skipped)) {
			t.Fatalf("%s at step 125: %d steps skipped, loss scale %v: want some, and the scale halved for each", n.id, p.Skipped, p.LossScale)
		}
		if last.Step != 0 && (p.LossScale != last.LossScale || p.Skipped != last.Skipped) {
			t.Fatalf("%s's loss scale %v after %d skipped steps, the previous node's %v after %d", n.id, p.LossScale, p.Skipped, last.LossScale, last.Skipped)
		}
		last = p
	}
	b, err := os.ReadFile(filepath.Join(n1.dir, "jobs", "job-1", "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	logged := map[int64]bool{} // a step trained again after a failure is logged again
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var m struct {
			Step int64    `json:"step"`
			Loss *float64 `json:"loss"`
		}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		if m.Loss != nil {
			logged[m.Step] = true
		}
	}
	if want := int(d.Step) - int(last.Skipped); len(logged) != want {
		t.Errorf("%d steps logged of %d with %d skipped, want %d", len(logged), d.Step, last.Skipped, want)
	}
	// The progress reports carry the scale and the steps skipped as of their step: each
	// rank's scale is halved once a skip, and n1's count its steps to theirs that logged
	// nothing.
	c.mu.Lock()
	reports := slices.Clone(c.progress)
	c.mu.Unlock()
	n1Reports, skipping := 0, 0
	for _, r := range reports {
		if r.LossScale != lossscale.Initial/math.Pow(2, float64(r.Skipped)) {
			t.Fatalf("%s reported step %d at loss scale %v after %d skipped steps", r.Node, r.Step, r.LossScale, r.Skipped)
		}
		if r.Skipped > 0 {
			skipping++
		}
		if r.Node == "n1" {
			n1Reports++
			unlogged := r.Step
			for s := range logged {
				if s <= r.Step {
					unlogged--
				}
			}
			if r.Skipped != unlogged {
				t.Fatalf("n1 reported %d steps skipped at step %d, where its metrics logged all but %d", r.Skipped, r.Step, unlogged)
			}
		}
	}
	if n1Reports == 0 || skipping == 0 {
		t.Fatalf("%d progress reports, %d of n1, %d with steps skipped: want some of each", len(reports), n1Reports, skipping)
	}
	// n1 trained from the first step to the last: its series count every skip.
	value := func(m prometheus.Metric) float64 {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		return d.GetCounter().GetValue() + d.GetGauge().GetValue()
	}
	if got := value(n1.agent.m.skipped); got != float64(last.Skipped) {
		t.Errorf("n1's skipped_steps_total is %v, want %d", got, last.Skipped)
	}
	if got := value(n1.agent.m.lossScale); got != last.LossScale {
		t.Errorf("n1's loss_scale gauge is %v, want %v", got, last.LossScale)
	}
	t.Logf("%d of %d steps skipped; loss scale %v", last.Skipped, d.Step, last.LossScale)
}

// A node dies mid-training: the survivors report, form the next generation, and go
// on from the last applied step; every sample is trained exactly once.
func TestSurvivorsContinueAfterANodeDies(t *testing.T) {
	c := newCoord(toySpec)
	train, _ := smsData(t)
	n1, n2, n3 := startNode(t, c, "n1", 1), startNode(t, c, "n2", 2), startNode(t, c, "n3", 3)
	c.open(1, "n1", "n2", "n3")
	waitFor(t, "step 30", func() bool { return n1.agent.applied.Load() >= 30 })
	n2.kill()
	seen := map[string]bool{}
	for len(seen) < 2 {
		select {
		case f := <-c.failures:
			if f.Gen != 1 || f.Node == "n2" {
				t.Fatalf("unexpected failure report %+v", f)
			}
			seen[f.Node] = true
		case <-time.After(30 * time.Second):
			t.Fatalf("failure reports from %v only", seen)
		}
	}
	c.open(2, "n1", "n3")
	awaitDone(t, c)
	waitFor(t, "n3's final model", func() bool {
		_, err := os.Stat(filepath.Join(n3.dir, "jobs", "job-1", "final", "model.safetensors"))
		return err == nil
	})
	if !bytes.Equal(n1.final(t), n3.final(t)) {
		t.Fatal("the survivors' final models differ")
	}
	r := checkAudit(t, len(train), 2, n1, n2, n3)
	t.Logf("audit: %+v", r)
}

// A node joins mid-training: it receives the weights, optimizer state and position
// from a live peer and trains on. It receives them exactly also when the job's
// gradient codec is lossy (state transfers and agreements use exact all-reduces).
func TestJoinerReceivesStateFromPeer(t *testing.T) {
	for _, codec := range []string{"none", "bf16"} {
		t.Run(codec, func(t *testing.T) {
			c := newCoord(strings.Replace(toySpec, "ring_timeout: 3s}", "ring_timeout: 3s, codec: "+codec+"}", 1))
			train, _ := smsData(t)
			n1, n2, n3, _ := joinMidJob(t, c, 20)
			for _, n := range []*testNode{n2, n3} {
				waitFor(t, n.id+"'s final model", func() bool {
					_, err := os.Stat(filepath.Join(n.dir, "jobs", "job-1", "final", "model.safetensors"))
					return err == nil
				})
				if !bytes.Equal(n1.final(t), n.final(t)) {
					t.Fatalf("%s's final model differs from n1's", n.id)
				}
			}
			checkAudit(t, len(train), 2, n1, n2, n3)
			if applied := n3.audit(t); len(applied) == 0 || applied[0].Step < 20 {
				t.Fatalf("the joiner's first step is %d: it did not start from its peer's position", applied[0].Step)
			}
		})
	}
}

// joinMidJob trains c's job on n1 and n2 to step at, has n3 join (generation 2: all
// three), and waits for the job to end.
func joinMidJob(t *testing.T, c *coord, at int64) (n1, n2, n3 *testNode, d api.DoneReport) {
	t.Helper()
	n1, n2 = startNode(t, c, "n1", 1), startNode(t, c, "n2", 2)
	c.open(1, "n1", "n2")
	waitFor(t, fmt.Sprintf("step %d", at), func() bool { return n1.agent.applied.Load() >= at })
	n3 = startNode(t, c, "n3", 3)
	c.reconfig("n3 joining")
	awaitConfirmations(t, c, 1, "n1", "n2")
	c.open(2, "n1", "n2", "n3")
	return n1, n2, n3, awaitDone(t, c)
}

// awaitConfirmations reads reports until each of want confirmed generation gen, and
// fails on a confirmation of another generation or from another node. Failure reports
// (the ring's errors) are skipped.
func awaitConfirmations(t *testing.T, c *coord, gen uint32, want ...string) {
	t.Helper()
	confirmed := map[string]bool{}
	for len(confirmed) < len(want) {
		select {
		case f := <-c.failures:
			if f.Error != "" {
				continue
			}
			if f.Gen != gen || !slices.Contains(want, f.Node) {
				t.Fatalf("want a confirmation of generation %d from %v, got %+v", gen, want, f)
			}
			confirmed[f.Node] = true
		case <-time.After(30 * time.Second):
			t.Fatalf("confirmations from %v only", confirmed)
		}
	}
}

// A report refused because the coordinator opened a new generation meanwhile (the
// fault suite's growth during a checkpoint) ends the node's generation, not its part in
// the job: it confirms and trains on in the next one.
func TestReportRacingAGenerationChangeIsNotFatal(t *testing.T) {
	c := newCoord(toySpec)
	n1, n2 := startNode(t, c, "n1", 1), startNode(t, c, "n2", 2)
	refused := false
	c.refuse = func(kind, node string, gen uint32, _ bool) error {
		if kind != "checkpoint" || node != "n2" || refused {
			return nil
		}
		refused = true
		c.job.Reconfig = &api.Reconfig{Gen: c.job.Gen.Gen, Started: time.Now(), Cause: "growth"}
		c.bump()
		return &api.Error{Status: 409, Message: "generation 1 of job job-1 is over: it is at generation 2", Superseded: true}
	}
	c.open(1, "n1", "n2")
	awaitConfirmations(t, c, 1, "n1", "n2")
	c.open(2, "n1", "n2")
	awaitDone(t, c)
	waitFor(t, "n2's final model", func() bool { return n2.hasFinal("job-1") })
	if !bytes.Equal(n1.final(t), n2.final(t)) {
		t.Fatal("the final models differ")
	}
}

// A node whose session ended while the job goes on (its failure report refused) does
// not confirm reconfigurations: confirming would place it in a ring it never joins. A
// later generation that includes it starts a new session, which trains to the end.
func TestNodeWithoutASessionDoesNotConfirm(t *testing.T) {
	c := newCoord(toySpec)
	n1, n2 := startNode(t, c, "n1", 1), startNode(t, c, "n2", 2)
	c.refuse = func(kind, node string, gen uint32, failed bool) error {
		switch {
		case kind == "checkpoint" && node == "n2" && gen == 1:
			return &api.Error{Status: 409, Message: "checkpoint at step 25: the replicas differ"}
		case kind == "done" && failed:
			return &api.Error{Status: 409, Message: "generation 1 of job job-1 is over: it is at generation 2", Superseded: true}
		}
		return nil
	}
	c.open(1, "n1", "n2")
	waitFor(t, "n2's session to end", func() bool { return n2.agent.applied.Load() >= 25 && n2.agent.active.Load() == nil })
	c.reconfig("n2's ring failed")
	awaitConfirmations(t, c, 1, "n1")
	for quiet := time.After(3 * time.Second); ; {
		select {
		case f := <-c.failures:
			if f.Node == "n2" && f.Error == "" {
				t.Fatalf("n2 confirmed generation %d without a session", f.Gen)
			}
			continue
		case <-quiet:
		}
		break
	}
	c.open(2, "n1", "n2")
	awaitDone(t, c)
	waitFor(t, "n2's final model", func() bool { return n2.hasFinal("job-1") })
	if !bytes.Equal(n1.final(t), n2.final(t)) {
		t.Fatal("the final models differ")
	}
}

// TestLeftOutNodeRegistersAgain: a node left out of a generation is idle and gets no
// work until it registers again; its agent does as soon as its assignment asks, once.
func TestLeftOutNodeRegistersAgain(t *testing.T) {
	c := newCoord(toySpec)
	startNode(t, c, "n1", 1)
	c.mu.Lock()
	delete(c.ranks, "n1") // released
	c.unproven["n1"] = true
	c.bump()
	c.mu.Unlock()
	waitFor(t, "n1 to register again", func() bool { c.mu.Lock(); defer c.mu.Unlock(); return !c.unproven["n1"] })
	time.Sleep(500 * time.Millisecond)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.regs["n1"] != 2 {
		t.Fatalf("n1 registered %d times, want twice (at start, and once when asked)", c.regs["n1"])
	}
}

// TestRemovedNodeRegistersAgain: a live node the catalog no longer holds (removed
// while it was cut off) registers again when its assignment answers 404, and watches
// its assignment again.
func TestRemovedNodeRegistersAgain(t *testing.T) {
	c := newCoord(toySpec)
	startNode(t, c, "n1", 1)
	c.mu.Lock()
	delete(c.ranks, "n1")
	c.removed["n1"] = true
	c.bump()
	c.mu.Unlock()
	waitFor(t, "n1 to register again", func() bool { c.mu.Lock(); defer c.mu.Unlock(); return !c.removed["n1"] })
	time.Sleep(500 * time.Millisecond)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.regs["n1"] != 2 {
		t.Fatalf("n1 registered %d times, want twice (at start, and once when its assignment was a 404)", c.regs["n1"])
	}
}

func (n *testNode) hasFinal(job string) bool {
	_, err := os.Stat(filepath.Join(n.dir, "jobs", job, "final", "model.safetensors"))
	return err == nil
}

// awaitEqualFinals waits for the job's end and every node's final model, and checks
// the models are the same bytes as the first node's (rank 0's).
func awaitEqualFinals(t *testing.T, c *coord, nodes ...*testNode) {
	t.Helper()
	awaitDone(t, c)
	for _, n := range nodes[1:] {
		waitFor(t, n.id+"'s final model", func() bool { return n.hasFinal("job-1") })
		if !bytes.Equal(nodes[0].final(t), n.final(t)) {
			t.Fatalf("%s's final model differs from %s's", n.id, nodes[0].id)
		}
	}
}

// twoNodesKilledAt starts n1 and n2 on c's job in generation 1, lets them train to
// step, and kills both (their failure reports, if any got out, drained).
func twoNodesKilledAt(t *testing.T, c *coord, step int64) (n1, n2 *testNode) {
	t.Helper()
	n1, n2 = startNode(t, c, "n1", 1), startNode(t, c, "n2", 2)
	c.open(1, "n1", "n2")
	waitFor(t, fmt.Sprintf("step %d", step), func() bool { return n1.agent.applied.Load() >= step })
	n1.kill()
	n2.kill()
	for len(c.failures) > 0 {
		<-c.failures
	}
	return n1, n2
}

// The whole cluster restarts (every node process dies): the nodes come back, each
// resumes from its latest checkpoint with the exact data position, and the job ends as
// if nothing happened to the samples: each trained once in the final model's lineage.
func TestNodesResumeFromTheirCheckpointsAfterAWholeClusterRestart(t *testing.T) {
	c := newCoord(toySpec)
	train, _ := smsData(t)
	n1, n2 := twoNodesKilledAt(t, c, 60)
	// Under load the nodes may have passed another checkpoint before they were killed:
	// generation 2 starts from the newest either holds.
	var want int64 = -1
	for _, n := range []*testNode{n1, n2} {
		dirs, err := CheckpointDirs(filepath.Join(n.dir, "jobs", "job-1"))
		if err != nil || len(dirs) == 0 {
			t.Fatalf("%s's checkpoint: %q %v", n.id, dirs, err)
		}
		step, _ := strconv.ParseInt(strings.TrimPrefix(filepath.Base(dirs[0]), ckptPrefix), 10, 64)
		want = max(want, step)
	}
	if want < 50 {
		t.Fatalf("newest checkpoint at step %d after step 60; want 50 or later (save_steps 25)", want)
	}
	n1 = startNodeIn(t, c, "n1", 11, n1.dir)
	n2 = startNodeIn(t, c, "n2", 12, n2.dir)
	c.open(2, "n1", "n2")
	awaitDone(t, c)
	waitFor(t, "n2's final model", func() bool { return n2.hasFinal("job-1") })
	if !bytes.Equal(n1.final(t), n2.final(t)) {
		t.Fatal("the final models differ")
	}
	r := checkAudit(t, len(train), 2, n1, n2)
	first := n1.audit(t)
	var resumed int64 = -1
	for _, e := range first {
		if e.Gen == 2 && !e.Applied {
			resumed = e.Step - 1
			break
		}
	}
	if resumed != want {
		t.Fatalf("generation 2 started after step %d; want %d, the newest checkpoint", resumed, want)
	}
	t.Logf("audit %+v", r)
}

// Every node restarts at once while the coordinator still shows their generation (a
// power loss: nobody was left to report the ring broken). A restarted node never joins
// the generation its earlier process was in: each reports it broken, and the job goes
// on in the next from the newest checkpoint, each sample trained once in the final
// model's lineage (the audit tells generations apart: steps trained again under the
// same generation would show as a rank contributing twice).
func TestRestartedNodesDoNotRejoinTheirGeneration(t *testing.T) {
	c := newCoord(toySpec)
	train, _ := smsData(t)
	n1, n2 := twoNodesKilledAt(t, c, 60)
	c.mu.Lock()
	c.unnoticed = true
	c.mu.Unlock()
	n1 = startNodeIn(t, c, "n1", 11, n1.dir)
	n2 = startNodeIn(t, c, "n2", 12, n2.dir)
	reported := map[string]bool{}
	for len(reported) < 2 {
		select {
		case f := <-c.failures:
			if f.Gen == 1 && strings.Contains(f.Error, "restarted") {
				reported[f.Node] = true
			}
		case d := <-c.done:
			t.Fatalf("the job ended at step %d in generation %d: the restarted nodes joined their old generation", d.Step, d.Gen)
		case <-time.After(30 * time.Second):
			t.Fatalf("generation 1 reported broken by %v only", reported)
		}
	}
	c.open(2, "n1", "n2")
	awaitEqualFinals(t, c, n1, n2)
	checkAudit(t, len(train), 2, n1, n2)
}

// smallDisk mounts a tmpfs of size bytes on a new directory (root only: the test is
// skipped otherwise), unmounted when the test ends.
func smallDisk(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Skipf("no tmpfs to fill (root only): %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// fill writes into dir until its file system is full.
func fill(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "ballast"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}

// A node whose disk fills up mid-job drains itself and reports its generation broken,
// naming the disk: the job goes on without it (here the test, as the leader, opens the
// next generation of the two others), rather than failing for every node, and the node
// joins no later generation. Its audit log stays whole (a line is written whole or not
// at all), and with the others' shows every sample trained once.
func TestNodeWhoseDiskFillsDrainsItself(t *testing.T) {
	c := newCoord(toySpec)
	train, _ := smsData(t)
	disk := smallDisk(t, 16<<20)
	n1, n2, n3 := startNode(t, c, "n1", 1), startNodeIn(t, c, "n2", 2, disk), startNode(t, c, "n3", 3)
	c.open(1, "n1", "n2", "n3")
	waitFor(t, "step 30", func() bool { return n2.agent.applied.Load() >= 30 })
	fill(t, disk)
	var rep api.FailureReport
	for rep.Node != "n2" {
		select {
		case rep = <-c.failures:
		case d := <-c.done:
			t.Fatalf("the job ended at step %d: %q", d.Step, d.Error)
		case <-time.After(30 * time.Second):
			t.Fatal("no failure report from n2")
		}
	}
	c.mu.Lock()
	drained := c.drained["n2"]
	c.mu.Unlock()
	if !drained || rep.Gen != 1 || !strings.Contains(rep.Error, "no space left on device") {
		t.Fatalf("n2 drained itself: %v; its report: %+v", drained, rep)
	}
	os.Remove(filepath.Join(disk, "ballast")) // room again: still, n2 stays out
	c.open(2, "n1", "n3")
	awaitEqualFinals(t, c, n1, n3)
	checkAudit(t, len(train), 2, n1, n2, n3)
	for _, e := range n2.audit(t) {
		if e.Gen > 1 {
			t.Fatalf("n2 trained in generation %d after draining itself", e.Gen)
		}
	}
}

// Checkpoints damaged on disk are not resumed from: n2's newest has a flipped byte
// (bit rot: it loads, but its checksum is none of those the ranks reported at its
// step), n1's newest is cut short (it does not load). Each node sets its damaged one
// aside and resumes from the one before; the job ends as if nothing had happened to
// its samples. Before, n2's made the ring find the replicas different and fail the
// job, and n1's failed it at once.
func TestDamagedCheckpointsAreSetAside(t *testing.T) {
	c := newCoord(toySpec)
	train, _ := smsData(t)
	n1, n2 := twoNodesKilledAt(t, c, 60)
	newest := func(n *testNode) string {
		dirs, err := CheckpointDirs(filepath.Join(n.dir, "jobs", "job-1"))
		if err != nil || len(dirs) < 2 {
			t.Fatalf("%s's checkpoints: %q %v", n.id, dirs, err)
		}
		return dirs[0]
	}
	d1, d2 := newest(n1), newest(n2)
	if filepath.Base(d1) != filepath.Base(d2) {
		t.Fatalf("the nodes' newest checkpoints differ: %s, %s", d1, d2)
	}
	waitFor(t, "both reports of "+filepath.Base(d2), func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, cp := range c.job.Checkpoints {
			if filepath.Base(d2) == fmt.Sprintf("%s%d", ckptPrefix, cp.Step) {
				return len(cp.Checksums) == 2
			}
		}
		return false
	})
	b, err := os.ReadFile(filepath.Join(d2, StateFile))
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x40
	if err := os.WriteFile(filepath.Join(d2, StateFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(d1, StateFile), int64(len(b)/2)); err != nil {
		t.Fatal(err)
	}
	n1 = startNodeIn(t, c, "n1", 11, n1.dir)
	n2 = startNodeIn(t, c, "n2", 12, n2.dir)
	c.open(2, "n1", "n2")
	awaitEqualFinals(t, c, n1, n2)
	checkAudit(t, len(train), 2, n1, n2)
	for _, d := range []string{d1, d2} {
		if _, err := os.Stat(d + ".bad"); err != nil {
			t.Errorf("%s not set aside: %v", d, err)
		}
	}
}

// A job submitted to continue another (submit --resume) starts from the checkpoint the
// coordinator keeps of it, at its exact data position: trained to the same end, it
// reaches the very same weights.
func TestResumeOfAnotherJobReachesTheSameWeights(t *testing.T) {
	c := newCoord(toySpec)
	n1, n2 := startNode(t, c, "n1", 1), startNode(t, c, "n2", 2)
	c.open(1, "n1", "n2")
	awaitDone(t, c)
	waitFor(t, "n2's final model", func() bool { return n2.hasFinal("job-1") })
	c.mu.Lock()
	c.prev = c.job
	c.prev.Results = map[string]api.Artifact{}
	for k, r := range c.results {
		c.prev.Results[k] = api.Artifact{Blob: r.Blob, Size: r.Size, Step: r.Step}
	}
	ckpt := c.results["checkpoint"].Step
	c.job = api.Job{ID: "job-2", Spec: toySpec, State: api.Running, ResumeOf: "job-1"}
	c.results = map[string]api.ResultReport{}
	c.mu.Unlock()
	c.open(1, "n1", "n2")
	awaitDone(t, c)
	waitFor(t, "n2's final model of job-2", func() bool { return n2.hasFinal("job-2") })
	if !bytes.Equal(n1.finalOf(t, "job-2"), n1.finalOf(t, "job-1")) || !bytes.Equal(n2.finalOf(t, "job-2"), n1.final(t)) {
		t.Fatal("the resumed job's final weights differ from the original's")
	}
	es := n1.auditOf(t, "job-2")
	if len(es) == 0 || es[0].Step != ckpt+1 {
		t.Fatalf("job-2 started at step %d; want %d, after job-1's checkpoint", es[0].Step, ckpt+1)
	}
}

// With batch: shrink, each node keeps its batch: the global batch shrinks with the ring
// (and the learning rate with it), and the samples still go once each.
func TestShrinkingBatchAfterANodeDies(t *testing.T) {
	spec := strings.Replace(toySpec, "cluster: {nodes: 3, ring_timeout: 3s}", "cluster: {nodes: 3, batch: shrink, ring_timeout: 3s}", 1)
	c := newCoord(spec)
	train, _ := smsData(t)
	n1, n2, n3 := startNode(t, c, "n1", 1), startNode(t, c, "n2", 2), startNode(t, c, "n3", 3)
	c.open(1, "n1", "n2", "n3")
	waitFor(t, "step 10", func() bool { return n1.agent.applied.Load() >= 10 })
	n3.kill()
	for seen := map[string]bool{}; len(seen) < 2; {
		seen[(<-c.failures).Node] = true
	}
	c.open(2, "n1", "n2")
	awaitDone(t, c)
	waitFor(t, "n2's final model", func() bool { return n2.hasFinal("job-1") })
	var all []AuditEntry
	for _, n := range []*testNode{n1, n2, n3} {
		all = append(all, n.audit(t)...)
	}
	r, err := Audit(all, allIDs(len(train)))
	if err != nil {
		t.Fatal(err)
	}
	if r.Repeated != 0 || r.Lost != 0 {
		t.Fatalf("audit %+v", r)
	}
	perStep := map[uint32]map[int64]int{} // gen -> step -> samples
	for _, e := range all {
		if !e.Applied {
			if perStep[e.Gen] == nil {
				perStep[e.Gen] = map[int64]int{}
			}
			perStep[e.Gen][e.Step] += len(e.IDs)
		}
	}
	for gen, want := range map[uint32]int{1: 3 * 64, 2: 2 * 64} {
		full := 0
		for _, n := range perStep[gen] {
			if n == want {
				full++
			} else if n > want {
				t.Fatalf("generation %d: a step of %d samples, want at most %d", gen, n, want)
			}
		}
		if full == 0 {
			t.Fatalf("generation %d: no step of %d samples (%v)", gen, want, perStep[gen])
		}
	}
}

// slowToy is a Toy that takes its time over each record, as a node on a slower machine.
type slowToy struct {
	*Toy
	per time.Duration
}

func (s slowToy) Backward(recs []shard.Record, weight float64, seed int64) (float64, error) {
	time.Sleep(time.Duration(len(recs)) * s.per)
	return s.Toy.Backward(recs, weight, seed)
}

// With cluster.balance a node three times slower than the others gets smaller shares
// of each batch, and the samples still go once each.
func TestBalanceGivesTheSlowNodeLess(t *testing.T) {
	spec := strings.Replace(toySpec, "cluster: {nodes: 3, ring_timeout: 3s}", "cluster: {nodes: 3, balance: true, ring_timeout: 3s}", 1)
	spec = strings.Replace(spec, "epochs: 2", "max_steps: 30", 1)
	c := newCoord(spec)
	train, _ := smsData(t)
	n1, n2 := startNode(t, c, "n1", 1), startNode(t, c, "n2", 2)
	n3 := startNode(t, c, "n3", 3)
	slow := n3.agent.cfg.Setup
	n3.agent.cfg.Setup = func(ctx context.Context, job *api.Job) (*Env, error) {
		env, err := slow(ctx, job)
		if err == nil {
			env.Replica = slowToy{env.Replica.(*Toy), 300 * time.Microsecond}
		}
		return env, err
	}
	fast := func(n *testNode) {
		setup := n.agent.cfg.Setup
		n.agent.cfg.Setup = func(ctx context.Context, job *api.Job) (*Env, error) {
			env, err := setup(ctx, job)
			if err == nil {
				env.Replica = slowToy{env.Replica.(*Toy), 100 * time.Microsecond}
			}
			return env, err
		}
	}
	fast(n1)
	fast(n2)
	c.open(1, "n1", "n2", "n3")
	awaitDone(t, c)
	var all []AuditEntry
	for _, n := range []*testNode{n1, n2, n3} {
		all = append(all, n.audit(t)...)
	}
	if r, err := Audit(all, allIDs(len(train))); err != nil || r.Repeated != 0 {
		t.Fatalf("audit %+v, %v", r, err)
	}
	last := map[int]int{} // rank -> piece size at the last step
	for _, e := range all {
		if !e.Applied && e.Step == 30 {
			last[e.Rank] = len(e.IDs)
		}
	}
	t.Logf("the last step's pieces by rank: %v (batch 64)", last)
	if !(last[2] < last[0] && last[2] < last[1]) {
		t.Fatalf("the slow node's piece is not the smallest: %v", last)
	}
}

// Every node that held the job's state dies; a new node, in a generation of its own,
// goes on from the checkpoint the coordinator keeps (Generation.Restore) rather than
// starting the job over, and the samples still go once each in the lineage.
func TestNewNodesRestoreTheCoordinatorsCheckpoint(t *testing.T) {
	c := newCoord(toySpec)
	train, _ := smsData(t)
	n1, n2 := startNode(t, c, "n1", 1), startNode(t, c, "n2", 2)
	c.open(1, "n1", "n2")
	waitFor(t, "a checkpoint uploaded", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.results["checkpoint"].Blob != "" && n1.agent.applied.Load() >= 60
	})
	n1.kill()
	n2.kill()
	c.mu.Lock()
	ckpt := c.results["checkpoint"]
	c.mu.Unlock()
	n3 := startNode(t, c, "n3", 3)
	c.openRestoring(2, ckpt.Blob, "n3")
	awaitDone(t, c)
	es := n3.audit(t)
	if len(es) == 0 || es[0].Step != ckpt.Step+1 {
		t.Fatalf("n3 began at step %d; want %d, after the checkpoint", es[0].Step, ckpt.Step+1)
	}
	checkAudit(t, len(train), 2, n1, n2, n3)
}

// The attempt that counts is the latest generation's that applied the step: here
// generation 2 started from older state while the node holding step 2 was away,
// retried step 2 and was aborted; generation 3 went on from the applied step 2.
func TestAuditCountsTheAppliedAttempt(t *testing.T) {
	ids := allIDs(8)
	entries := []AuditEntry{
		{Gen: 1, Step: 1, Rank: 0, IDs: ids[0:2]}, {Gen: 1, Step: 1, Rank: 1, IDs: ids[2:4]},
		{Gen: 1, Step: 1, Applied: true},
		{Gen: 1, Step: 2, Rank: 0, IDs: ids[4:6]}, {Gen: 1, Step: 2, Rank: 1, IDs: ids[6:8]},
		{Gen: 1, Step: 2, Applied: true},
		{Gen: 2, Step: 2, Rank: 0, IDs: ids[0:4]}, // from step 1's state; never applied
		{Gen: 3, Step: 3, Epoch: 1, Rank: 0, IDs: ids[0:4]}, {Gen: 3, Step: 3, Epoch: 1, Rank: 1, IDs: ids[4:8]},
		{Gen: 3, Step: 3, Applied: true},
	}
	r, err := Audit(entries, ids)
	if err != nil {
		t.Fatal(err)
	}
	if r.Steps != 3 || r.Aborted != 1 || r.Lost != 0 || r.Repeated != 0 || r.Trained != 16 {
		t.Fatalf("audit %+v: want 3 steps, 1 aborted attempt, 16 samples, none lost or repeated", r)
	}
	// Had generation 2 applied its step 2 (and its state gone on), its attempt would
	// count, and the epoch would repeat samples 0-3 and lose 4-7.
	r, err = Audit(append(entries, AuditEntry{Gen: 2, Step: 2, Applied: true}), ids)
	if err != nil || r.Lost != 4 || r.Repeated != 4 {
		t.Fatalf("with generation 2's step applied: %+v, %v", r, err)
	}
}

// Overlap stays on while it sends part of the gradient before backward returns, and a
// session turns it off after overlapProbeSteps steps that sent nothing early.
func TestOverlapTurnsOffWhenNothingGoesEarly(t *testing.T) {
	var logs bytes.Buffer
	a := &Agent{cfg: Config{Log: log.New(&logs, "", 0)}}
	idle := newSession(a, &api.Job{ID: "job-1"})
	paying := newSession(a, &api.Job{ID: "job-2"})
	for i := range overlapProbeSteps {
		idle.noteOverlap(GradStats{Overlapped: true, Lead: 40 * time.Millisecond})
		paying.noteOverlap(GradStats{Overlapped: true, SentEarly: int64(i % 2 * 4096)})
	}
	if !idle.noOverlap || !strings.Contains(logs.String(), "job job-1: overlap off") {
		t.Errorf("nothing sent early in %d steps: overlap still on (logs %q)", overlapProbeSteps, logs.String())
	}
	if paying.noOverlap {
		t.Error("overlap turned off although it sent bytes early")
	}
}

// loopbackRings connects n ranks over loopback with codec.
func loopbackRings(t *testing.T, n int, codec allreduce.Codec) []*allreduce.Ring {
	t.Helper()
	lns, addrs := make([]*net.TCPListener, n), make([]string, n)
	for i := range lns {
		ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		lns[i], addrs[i] = ln, ln.Addr().String()
	}
	rings, errs := make([]*allreduce.Ring, n), make([]error, n)
	var wg sync.WaitGroup
	for r := range n {
		wg.Go(func() {
			rings[r], errs[r] = allreduce.New(context.Background(), allreduce.Config{Peers: addrs, Rank: r, Generation: 1,
				Secret: []byte("0123456789abcdef"), Codec: codec, Listener: lns[r], Timeout: 10 * time.Second})
		})
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
		t.Cleanup(func() { rings[r].Close() })
	}
	return rings
}

// broadcast hands every rank the donor's buffers bit for bit and the agreement's
// integers exactly, on a ring whose gradient codec (bf16) would round them.
func TestBroadcastIsExactOnALossyRing(t *testing.T) {
	const n = 3
	rings := loopbackRings(t, n, allreduce.CodecBF16)
	rng := rand.New(rand.NewPCG(1, 2))
	state := make([]float32, 10_000)
	for i := range state {
		state[i] = float32(rng.NormFloat64() * 1e-3)
	}
	pos := Position{Step: 1_234_567, Epoch: 3, Pos: 777}
	got := make([][]float32, n)
	ags := make([]agreement, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for r, ring := range rings {
		wg.Go(func() {
			ctx := context.Background()
			var err error
			if ags[r], err = agree(ctx, ring, r == 1, pos.Step); err != nil {
				errs[r] = err
				return
			}
			got[r] = make([]float32, len(state))
			p := Position{}
			if r == 1 {
				copy(got[r], state)
				p = pos
			}
			if errs[r] = broadcast(ctx, ring, ags[r].donor, [][]float32{got[r]}, &p); errs[r] == nil && (p.Step != pos.Step || p.Epoch != pos.Epoch || p.Pos != pos.Pos) {
				errs[r] = fmt.Errorf("position %+v, want %+v", p, pos)
			}
		})
	}
	wg.Wait()
	for r := range n {
		if errs[r] != nil {
			t.Fatalf("rank %d: %v", r, errs[r])
		}
		if ags[r].donor != 1 || ags[r].target != pos.Step {
			t.Fatalf("rank %d agreed on donor %d at step %d, want rank 1 at %d", r, ags[r].donor, ags[r].target, pos.Step)
		}
		for i := range state {
			if math.Float32bits(got[r][i]) != math.Float32bits(state[i]) {
				t.Fatalf("rank %d: value %d is %v, the donor's %v", r, i, got[r][i], state[i])
			}
		}
	}
}

// A transfer cut short by the donor's death leaves each receiver's state and position
// as they were (the fault suite: a receiver at step 60 was the next generation's donor
// with a state half zeroed by the transfer that failed).
func TestBroadcastCutShortLeavesTheReceiversAsTheyWere(t *testing.T) {
	const n, size = 3, 1 << 22
	rings := loopbackRings(t, n, allreduce.CodecNone)
	bufs := make([][][]float32, n)
	for r := range n {
		bufs[r] = [][]float32{make([]float32, size), make([]float32, size)}
		for _, b := range bufs[r] {
			for i := range b {
				b[i] = float32(r + 1)
			}
		}
	}
	errs := make([]error, n)
	pos := make([]Position, n)
	var wg sync.WaitGroup
	for r, ring := range rings {
		pos[r] = Position{Step: int64(10 * (r + 1))}
		wg.Go(func() {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if r == 1 { // the donor dies once its first buffer has gone
				go func() {
					for ring.Stats().Ops < 1 && ctx.Err() == nil {
						time.Sleep(50 * time.Microsecond)
					}
					ring.Close()
				}()
			}
			errs[r] = broadcast(ctx, ring, 1, bufs[r], &pos[r])
		})
	}
	wg.Wait()
	for _, r := range []int{0, 2} {
		if errs[r] == nil {
			t.Fatalf("rank %d: the broadcast succeeded although the donor closed its ring", r)
		}
		if pos[r].Step != int64(10*(r+1)) {
			t.Errorf("rank %d: position %+v after the failed transfer", r, pos[r])
		}
		for k, b := range bufs[r] {
			for i, v := range b {
				if v != float32(r+1) {
					t.Fatalf("rank %d: buffer %d value %d is %v after the failed transfer, was %v", r, k, i, v, r+1)
				}
			}
		}
	}
}

// A node removes its files of a job bertnode delete removed, once its session ended:
// its directory and the uploads (models, tokenizers) only it used.
func TestNodeRemovesDeletedJobsFiles(t *testing.T) {
	c := newCoord(toySpec)
	c.job.Submitted = time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
	// An upload the job used, as FetchUpload leaves it (the toy model fetches none),
	// written before the node starts: it prunes whenever no session runs.
	nodeDir := t.TempDir()
	uploads, sha := filepath.Join(nodeDir, "uploads"), strings.Repeat("ab", 32)
	if err := os.MkdirAll(filepath.Join(uploads, sha), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := addUploadUser(uploads, sha, &c.job); err != nil {
		t.Fatal(err)
	}
	n1 := startNodeIn(t, c, "n1", 1, nodeDir)
	gone := func(p string) bool { _, err := os.Stat(p); return errors.Is(err, os.ErrNotExist) }
	// The session's setup fetches another upload, and holds it unpacked but not yet
	// listed (as FetchUpload does between the two) over several prunes: no prune may
	// take it for an upload from before lists.
	fetched := filepath.Join(uploads, strings.Repeat("cd", 32))
	var lostMidSession bool
	setup := n1.agent.cfg.Setup
	n1.agent.cfg.Setup = func(ctx context.Context, job *api.Job) (*Env, error) {
		if err := os.Mkdir(fetched, 0o755); err != nil {
			return nil, err
		}
		time.Sleep(3 * n1.agent.cfg.Prune)
		lostMidSession = gone(fetched)
		if err := addUploadUser(uploads, filepath.Base(fetched), job); err != nil {
			return nil, err
		}
		return setup(ctx, job)
	}
	c.open(1, "n1")
	awaitDone(t, c)
	if lostMidSession {
		t.Fatal("a prune removed an upload while the session that fetched it ran")
	}
	dir := filepath.Join(n1.dir, "jobs", "job-1")
	waitFor(t, "the final model", func() bool { return n1.hasFinal("job-1") })
	c.mu.Lock()
	c.deleted = map[string]time.Time{"job-1": c.job.Submitted.Add(time.Second)} // another job-1
	c.mu.Unlock()
	time.Sleep(3 * n1.agent.cfg.Prune)
	if gone(dir) || gone(filepath.Join(uploads, sha)) || gone(fetched) {
		t.Fatal("another job-1's deletion removed this one's files")
	}
	c.mu.Lock()
	c.deleted = map[string]time.Time{"job-1": c.job.Submitted}
	c.mu.Unlock()
	waitFor(t, "the deleted job's files to go", func() bool { return gone(dir) && gone(filepath.Join(uploads, sha)) && gone(fetched) })
}

// A node runs job after job for months (the soak in docs/cluster.md): what a session
// starts (its uploader, reporter, ring) must end with it. Each job here saves
// checkpoints, a best and a final model, so each session uploads.
func TestSessionsLeaveNoGoroutinesBehind(t *testing.T) {
	c := newCoord(toySpec)
	startNode(t, c, "n1", 1)
	idle := runtime.NumGoroutine()
	const jobs = 3
	for i := 1; i <= jobs; i++ {
		c.mu.Lock()
		c.job = api.Job{ID: fmt.Sprintf("job-%d", i), Spec: toySpec, State: api.Running}
		c.results = map[string]api.ResultReport{}
		c.mu.Unlock()
		c.open(1, "n1")
		awaitDone(t, c)
		waitFor(t, fmt.Sprintf("job-%d's final upload", i), func() bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			_, ok := c.results["final"]
			return ok
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > idle {
		if time.Now().After(deadline) {
			logStacks(t)
			t.Fatalf("%d goroutines after %d jobs, %d before: the sessions left some behind", runtime.NumGoroutine(), jobs, idle)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// failingToy is a Toy whose Backward fails from step at on, as a replica whose device
// runs out of memory on a long batch (train.Replica's error for libtorch's).
type failingToy struct {
	*Toy
	at, steps int
}

func (f *failingToy) Backward(recs []shard.Record, weight float64, seed int64) (float64, error) {
	if f.steps++; f.steps >= f.at {
		return 0, errors.New("libtorch: CUDA out of memory. Tried to allocate 2.00 GiB: the step does not fit in the memory of cuda:0")
	}
	return f.Toy.Backward(recs, weight, seed)
}

// A replica's error fails the job once, naming it: the node neither crashes nor
// reports its generation broken, so no other generation trains into the same step
// to fail again (a crash loop the job never reported).
func TestReplicaErrorFailsTheJob(t *testing.T) {
	c := newCoord(toySpec)
	n1, n2 := startNode(t, c, "n1", 1), startNode(t, c, "n2", 2)
	setup := n2.agent.cfg.Setup
	n2.agent.cfg.Setup = func(ctx context.Context, job *api.Job) (*Env, error) {
		env, err := setup(ctx, job)
		if err == nil {
			env.Replica = &failingToy{Toy: env.Replica.(*Toy), at: 12}
		}
		return env, err
	}
	c.open(1, "n1", "n2")
	select {
	case d := <-c.done:
		if d.Node != "n2" || !strings.Contains(d.Error, "out of memory") || d.Step != 11 {
			t.Fatalf("the job ended: %+v, want n2 to fail it at step 11 naming the error", d)
		}
	case f := <-c.failures:
		t.Fatalf("a generation reported broken: %+v", f)
	case <-time.After(60 * time.Second):
		t.Fatal("the job did not end")
	}
	if n1.agent.applied.Load() > 11 {
		t.Fatalf("n1 applied step %d past the failed one", n1.agent.applied.Load())
	}
}
