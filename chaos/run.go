package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/coordinator"
	"github.com/bertnode/bertnode/gossip"
	"github.com/bertnode/bertnode/internal/netlab"
	"github.com/bertnode/bertnode/localcluster"
	"github.com/bertnode/bertnode/node"
)

// Options shape a suite.
type Options struct {
	Runs  int
	Seed  int64
	Dir   string // each run's cluster in Dir/run-N
	Exe   string // the bertnode binary (default this process's)
	Kinds []Kind
	// Spec is the job (YAML); Train its training file, for the audit.
	Spec      string
	Train     string
	EvalSplit float64
	Steps     int64 // the job's max_steps
	Nodes     int   // the cluster's nodes (default 3), the job's cluster.nodes
	// RingTimeout is the job's cluster.ring_timeout (the silent faults last longer).
	RingTimeout time.Duration
	Timeout     time.Duration // for one run
	// Faults, when set, are every run's faults instead of random ones; NoBaseline
	// skips the fault-free run (and the comparison with it).
	Faults     []Fault
	NoBaseline bool
	// Tolerance is the largest difference allowed between a run's final eval metrics
	// and the fault-free run's (summation order differs when the ring's size does).
	Tolerance float64
	Out       io.Writer
}

func (o Options) nodes() int {
	if o.Nodes == 0 {
		return 3
	}
	return o.Nodes
}

// Result is one run's outcome.
type Result struct {
	Run      int
	Faults   []Fault
	Err      error // the run failed: the job did not succeed, or a check did not hold
	Audit    node.AuditReport
	Eval     map[string]float64
	Duration time.Duration
}

// Suite runs the baseline and the runs, printing a line per run, and returns them.
func Suite(ctx context.Context, o Options) (baseline Result, runs []Result, err error) {
	if o.Exe == "" {
		if o.Exe, err = os.Executable(); err != nil {
			return
		}
	}
	var lab *netlab.Lab
	needNetns := contains(o.Kinds, Partition) || contains(o.Kinds, LeaderPartition)
	for _, f := range o.Faults {
		needNetns = needNetns || f.Kind == Partition || f.Kind == LeaderPartition
	}
	if needNetns {
		if err = netlab.Available(); err != nil {
			return baseline, nil, fmt.Errorf("partition faults need network namespaces: %w", err)
		}
		if lab, err = netlab.New("chaos"); err != nil {
			return
		}
		defer lab.Close()
	}
	if !o.NoBaseline {
		fmt.Fprintf(o.Out, "baseline: the job without faults\n")
		baseline = run(ctx, o, lab, 0, nil)
		if baseline.Err != nil {
			return baseline, nil, fmt.Errorf("the fault-free run failed: %w", baseline.Err)
		}
		fmt.Fprintf(o.Out, "  %s\n", baseline.line(baseline))
	}
	rng := rand.New(rand.NewPCG(uint64(o.Seed), 0xC4A05))
	for i := 1; i <= o.Runs && ctx.Err() == nil; i++ {
		faults := append([]Fault(nil), o.Faults...)
		if faults == nil {
			faults = plan(rng, o.Kinds, o.nodes(), o.Steps/8, o.Steps*3/4)
		}
		r := run(ctx, o, lab, i, faults)
		if r.Err == nil && !o.NoBaseline {
			r.Err = compare(r.Eval, baseline.Eval, o.Tolerance)
		}
		fmt.Fprintf(o.Out, "run %2d: %s\n", i, r.line(baseline))
		runs = append(runs, r)
	}
	return baseline, runs, ctx.Err()
}

func contains(ks []Kind, k Kind) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

// run starts a cluster, submits the job, injects the faults, and checks the outcome.
func run(ctx context.Context, o Options, lab *netlab.Lab, i int, faults []Fault) (r Result) {
	start := time.Now()
	r = Result{Run: i, Faults: faults}
	defer func() { r.Duration = time.Since(start) }()
	co := localcluster.Options{Dir: filepath.Join(o.Dir, fmt.Sprintf("run-%d", i)), Coordinators: 3, Nodes: o.nodes(), Threads: 1,
		Device: "cpu", GossipProfile: gossip.ProfileLAN, Env: map[string][]string{}, Exe: o.Exe}
	os.RemoveAll(co.Dir)
	var hosts []*netlab.Host
	if lab != nil {
		place := func(kind string) func(int) (string, string, error) {
			return func(n int) (string, string, error) {
				h, err := lab.AddHost(fmt.Sprintf("r%d%s%d", i, kind, n+1))
				if err != nil {
					return "", "", err
				}
				hosts = append(hosts, h)
				return h.Netns(), h.IP().String(), nil
			}
		}
		co.CoordHost, co.NodeHost = place("c"), place("n")
	}
	for _, f := range faults {
		switch f.Kind {
		case NodeKill, NodeJoin, NodesKill:
			co.Env[f.Target] = append(co.Env[f.Target], fmt.Sprintf("BERTNODE_FAILPOINTS=node.backward=kill@%d", f.AtStep))
		case AllReduceKill:
			co.Env[f.Target] = append(co.Env[f.Target], fmt.Sprintf("BERTNODE_FAILPOINTS=node.allreduce=kill-after:%s@%d", f.Delay, f.AtStep))
		}
	}
	for _, f := range faults {
		if f.Kind != DiskFull {
			continue
		}
		dir := filepath.Join(co.Dir, f.Target) // the node's --data-dir, on a disk of its own
		if err := smallDisk(dir, nodeDisk); err != nil {
			r.Err = err
			return r
		}
		defer func() {
			if err := unmountKeeping(dir); err != nil && r.Err == nil {
				r.Err = err
			}
		}()
	}
	lc, err := localcluster.Start(co)
	if err != nil {
		r.Err = err
		return r
	}
	defer func() {
		lc.Stop(10 * time.Second)
		for _, h := range hosts {
			h.Heal()
		}
		if r.Err != nil {
			r.Err = fmt.Errorf("%w\n%s", r.Err, lc.LogTails())
		} else {
			pruneModels(co.Dir)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	if err := lc.WaitReady(ctx); err != nil {
		r.Err = err
		return r
	}
	cl, err := lc.Client()
	if err != nil {
		r.Err = err
		return r
	}
	id, err := cl.Submit(ctx, api.SubmitRequest{Name: "chaos", Spec: o.Spec})
	if err != nil {
		r.Err = err
		return r
	}
	defer saveEvents(cl, id, filepath.Join(co.Dir, "events.txt"))
	in := &injector{lc: lc, co: co, cl: cl, job: id, hosts: hosts, o: o}
	for k := range r.Faults {
		if err := in.inject(ctx, &r.Faults[k]); err != nil {
			r.Err = fmt.Errorf("%s on %s at step %d: %w", r.Faults[k].Kind, r.Faults[k].Target, r.Faults[k].AtStep, err)
			return r
		}
	}
	j, err := in.await(ctx, func(j *api.Job) bool { return j.State.Done() })
	if err != nil {
		r.Err = err
		return r
	}
	if j.State != api.Succeeded {
		r.Err = fmt.Errorf("job %s %s: %s", j.ID, j.State, j.Reason)
		return r
	}
	r.Eval = j.Progress.Eval
	r.Err = check(lc, j, o, &r)
	return r
}

// injector injects a run's faults as the job reaches their steps.
type injector struct {
	lc       *localcluster.Cluster
	co       localcluster.Options
	cl       *api.Client
	job      string
	hosts    []*netlab.Host
	o        Options
	replaced int
}

// await waits until the job satisfies cond.
func (in *injector) await(ctx context.Context, cond func(*api.Job) bool) (*api.Job, error) {
	var idx uint64
	for {
		j, next, err := in.cl.JobWait(ctx, in.job, idx, 5*time.Second)
		if err == nil {
			idx = next
			if cond(j) {
				return j, nil
			}
		} else if ctx.Err() != nil {
			return nil, fmt.Errorf("waiting for job %s: %w", in.job, err)
		}
	}
}

func (in *injector) inject(ctx context.Context, f *Fault) error {
	switch f.Kind {
	case NodeKill, NodeJoin, AllReduceKill, NodesKill:
		// The failpoint kills the node at its step; replace or restart it once it is dead.
		p := in.lc.Proc(f.Target)
		for localcluster.Alive(p.PID) {
			if j, err := in.cl.Job(ctx, in.job); err == nil && j.State.Done() {
				return nil // the job ended before the failpoint's step
			}
			if !sleep(ctx, 50*time.Millisecond) {
				return ctx.Err()
			}
		}
		f.Injected, f.Gen = lastAudit(p.DataDir, in.job)
		sleep(ctx, time.Second)
		p.Env = nil
		if f.Kind == NodeJoin {
			in.replaced++
			return in.lc.AddNode(in.co, fmt.Sprintf("n%d", in.o.nodes()+in.replaced))
		}
		return in.lc.Restart(f.Target)
	}
	j, err := in.await(ctx, func(j *api.Job) bool {
		// A drain is of a node that trains: one an earlier fault put out waits to be back.
		training := f.Kind != NodeDrain || j.Gen != nil && j.Gen.Rank(f.Target) >= 0 && j.Reconfig == nil && j.Waiting == nil
		return j.Progress.Step >= f.AtStep && training || j.State.Done()
	})
	if err != nil || j.State.Done() {
		return err
	}
	switch f.Kind {
	case LeaderKill, LeaderPartition, QuorumLoss:
		st, err := in.cl.Status(ctx)
		if err != nil {
			return err
		}
		var victim *localcluster.Proc
		for _, m := range st.Members {
			if m.Leader {
				for k := range in.lc.Procs {
					if in.lc.Procs[k].API == m.APIAddr {
						victim = &in.lc.Procs[k]
					}
				}
			}
		}
		if victim == nil {
			return errors.New("no leader")
		}
		f.Target = victim.Name
		if f.Kind == LeaderPartition {
			h := in.host(victim.Name)
			if h == nil {
				return fmt.Errorf("%s is not in a network namespace", victim.Name)
			}
			f.Injected = time.Now()
			if err := h.Partition(); err != nil {
				return err
			}
			sleep(ctx, f.Delay)
			return h.Heal()
		}
		victims := []localcluster.Proc{*victim}
		down := 3 * time.Second
		if f.Kind == QuorumLoss { // and a follower: two of the three
			down = f.Delay
			for _, p := range in.lc.Procs {
				if p.Role == "coordinator" && p.Name != victim.Name && len(victims) < 2 {
					victims = append(victims, p)
					f.Target += "+" + p.Name
				}
			}
		}
		f.Injected = time.Now()
		return in.killFor(ctx, down, nil, victims...)
	case PowerLoss:
		f.Injected, f.Gen = time.Now(), j.Gen.Gen
		return in.killFor(ctx, f.Delay, nil, in.lc.Procs...)
	case RollingRestart:
		// Injected when the last is back: its recovery is the next step applied after it.
		for _, p := range in.lc.Procs {
			if p.Role == "coordinator" {
				if err := in.restartMember(ctx, p); err != nil {
					return err
				}
			}
		}
		f.Injected = time.Now()
	case NodeDrain:
		f.Injected, f.Gen = time.Now(), j.Gen.Gen
		if err := in.cl.Drain(ctx, f.Target, true); err != nil {
			return err
		}
		return in.undrainOnceOut(ctx, f.Target)
	case DiskFull:
		ballast := filepath.Join(in.lc.Proc(f.Target).DataDir, "ballast")
		if err := fillDisk(ballast); err != nil {
			return err
		}
		// The node drains itself at its first write that finds no room (appends to a
		// file fill its last page first): the fault is injected then. Room again once
		// it is out, it is taken back.
		drained, err := in.awaitNode(ctx, f.Target, func(n *api.Node) bool { return n.Drain })
		if err != nil {
			return err
		}
		if drained { // else the job ended first
			f.Injected = time.Now()
			if j, err := in.cl.Job(ctx, in.job); err == nil && j.Gen != nil {
				f.Gen = j.Gen.Gen
			}
		}
		if _, err := in.awaitNode(ctx, f.Target, func(n *api.Node) bool { return n.Job != in.job }); err != nil {
			return err
		}
		if err := os.Remove(ballast); err != nil {
			return err
		}
		return in.cl.Drain(ctx, f.Target, false)
	case CheckpointRot:
		p := in.lc.Proc(f.Target)
		dir := filepath.Join(p.DataDir, "jobs", in.job)
		for newestCheckpoint(dir) == "" { // the first save may be a step away
			if j, err := in.cl.Job(ctx, in.job); err == nil && j.State.Done() {
				return nil
			}
			if !sleep(ctx, 50*time.Millisecond) {
				return ctx.Err()
			}
		}
		f.Injected, f.Gen = time.Now(), j.Gen.Gen
		return in.killFor(ctx, time.Second, func() error { return rot(newestCheckpoint(dir)) }, *p)
	case NodeStop:
		p := in.lc.Proc(f.Target)
		f.Injected, f.Gen = time.Now(), j.Gen.Gen
		syscall.Kill(p.PID, syscall.SIGSTOP)
		sleep(ctx, in.o.RingTimeout+f.Delay)
		syscall.Kill(p.PID, syscall.SIGCONT)
	case Partition:
		h := in.host(f.Target)
		if h == nil {
			return fmt.Errorf("%s is not in a network namespace", f.Target)
		}
		f.Injected, f.Gen = time.Now(), j.Gen.Gen
		if err := h.Partition(); err != nil {
			return err
		}
		sleep(ctx, in.o.RingTimeout+f.Delay)
		return h.Heal()
	}
	return nil
}

// killFor SIGKILLs procs, waits until all are dead, runs meanwhile (when set) on
// what they left, and starts them again after down.
func (in *injector) killFor(ctx context.Context, down time.Duration, meanwhile func() error, procs ...localcluster.Proc) error {
	for _, p := range procs {
		syscall.Kill(p.PID, syscall.SIGKILL)
	}
	for _, p := range procs {
		for localcluster.Alive(p.PID) {
			sleep(ctx, 10*time.Millisecond)
		}
	}
	if meanwhile != nil {
		if err := meanwhile(); err != nil {
			return err
		}
	}
	sleep(ctx, down)
	for _, p := range procs {
		if err := in.lc.Restart(p.Name); err != nil {
			return err
		}
	}
	return nil
}

// undrainOnceOut undrains a drained node once it has left the job (or the job ended:
// a drain waits while the job cannot go on without the node).
func (in *injector) undrainOnceOut(ctx context.Context, node string) error {
	if _, err := in.awaitNode(ctx, node, func(n *api.Node) bool { return n.Job != in.job }); err != nil {
		return err
	}
	return in.cl.Drain(ctx, node, false)
}

// awaitNode waits until node satisfies cond (true), or the job ended (false).
func (in *injector) awaitNode(ctx context.Context, node string, cond func(*api.Node) bool) (bool, error) {
	for idx := uint64(0); ; {
		n, next, err := in.cl.NodeWait(ctx, node, idx, 5*time.Second)
		if err == nil {
			if cond(n) {
				return true, nil
			}
			idx = next
		} else if ctx.Err() != nil {
			return false, err
		}
		if j, err := in.cl.Job(ctx, in.job); err == nil && j.State.Done() {
			return false, nil
		}
	}
}

// newestCheckpoint is the state file of the newest checkpoint under dir (a job's
// directory on a node), or "".
func newestCheckpoint(dir string) string {
	dirs, _ := node.CheckpointDirs(dir)
	if len(dirs) == 0 {
		return ""
	}
	return filepath.Join(dirs[0], node.StateFile)
}

// rot flips a byte in the middle of file path.
func rot(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, st.Size()/2); err != nil {
		return err
	}
	b[0] ^= 0x40
	_, err = f.WriteAt(b, st.Size()/2)
	return err
}

// fillDisk writes path until its file system is full.
func fillDisk(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return nil
			}
			return err
		}
	}
}

// smallDisk mounts a tmpfs of size bytes on dir, made if need be.
func smallDisk(dir string, size int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		return fmt.Errorf("mounting a tmpfs on %s: %w", dir, err)
	}
	return nil
}

// unmountKeeping unmounts the tmpfs on dir, keeping its files in dir.
func unmountKeeping(dir string) error {
	kept := dir + ".kept"
	os.RemoveAll(kept)
	err := os.CopyFS(kept, os.DirFS(dir))
	if uerr := syscall.Unmount(dir, syscall.MNT_DETACH); uerr != nil {
		return errors.Join(err, uerr)
	}
	if err != nil {
		return err
	}
	if err := os.Remove(dir); err != nil {
		return err
	}
	return os.Rename(kept, dir)
}

// DiskFullAvailable says whether this process can give a node a disk to fill (mount a
// tmpfs: root only).
func DiskFullAvailable() error {
	dir, err := os.MkdirTemp("", "bertnode-disk")
	if err != nil {
		return err
	}
	defer os.Remove(dir)
	if err := smallDisk(dir, 1<<20); err != nil {
		return err
	}
	return syscall.Unmount(dir, syscall.MNT_DETACH)
}

// restartMember stops coordinator p with SIGTERM, starts it again once it has exited
// and the members no longer list it alive, and waits until they do again.
func (in *injector) restartMember(ctx context.Context, p localcluster.Proc) error {
	id, err := coordinator.MemberID(p.DataDir)
	if err != nil {
		return err
	}
	syscall.Kill(p.PID, syscall.SIGTERM)
	for localcluster.Alive(p.PID) {
		if !sleep(ctx, 50*time.Millisecond) {
			return ctx.Err()
		}
	}
	alive := func() (bool, error) {
		for {
			if st, err := in.cl.Status(ctx); err == nil && st.Leader != "" {
				for _, m := range st.Members {
					if m.ID == id {
						return m.Health == api.Alive, nil
					}
				}
			}
			if !sleep(ctx, 200*time.Millisecond) {
				return false, ctx.Err()
			}
		}
	}
	for up := true; up; {
		if up, err = alive(); err != nil {
			return fmt.Errorf("%s still listed alive after it stopped: %w", p.Name, err)
		}
	}
	if err := in.lc.Restart(p.Name); err != nil {
		return err
	}
	for up := false; !up; {
		if up, err = alive(); err != nil {
			return fmt.Errorf("%s not alive again after its restart: %w", p.Name, err)
		}
	}
	return nil
}

func (in *injector) host(node string) *netlab.Host {
	for i, p := range in.lc.Procs {
		if p.Name == node && p.Netns != "" {
			for _, h := range in.hosts {
				if h.Netns() == in.lc.Procs[i].Netns {
					return h
				}
			}
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-time.After(d):
		return true
	case <-ctx.Done():
		return false
	}
}

// lastAudit is when a node wrote its last audit entry of job, and in which generation:
// a node killed by a failpoint writes its contribution to the step just before it dies.
func lastAudit(dir, job string) (time.Time, uint32) {
	es, err := node.ReadAudit(filepath.Join(dir, "jobs", job, "audit.jsonl"))
	if err != nil || len(es) == 0 {
		return time.Now(), 0
	}
	return time.UnixMilli(es[len(es)-1].Time), es[len(es)-1].Gen
}

// readFinal reads a rank's final model. Rank 0 reports the job done once its own is
// saved; the other ranks may still be writing theirs (each renames a whole directory
// into place), so it waits for the file a while.
func readFinal(path string) ([]byte, error) {
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		b, err := os.ReadFile(path)
		if err == nil || !errors.Is(err, os.ErrNotExist) || time.Now().After(deadline) {
			return b, err
		}
	}
}

// check verifies a finished run: identical final weights on the last generation's
// ranks, every sample once (from every node's audit log, the dead ones' included),
// and each fault's recovery time.
func check(lc *localcluster.Cluster, j *api.Job, o Options, r *Result) error {
	var first []byte
	for _, m := range j.Gen.Members {
		p := lc.Proc(m.Node)
		b, err := readFinal(filepath.Join(p.DataDir, "jobs", j.ID, "final", "model.safetensors"))
		if err != nil {
			return err
		}
		if first == nil {
			first = b
		} else if !bytes.Equal(first, b) {
			return fmt.Errorf("%s's final weights differ from %s's", m.Node, j.Gen.Members[0].Node)
		}
	}
	var all []node.AuditEntry
	for _, p := range lc.Procs {
		if p.Role != "node" {
			continue
		}
		es, err := node.ReadAudit(filepath.Join(p.DataDir, "jobs", j.ID, "audit.jsonl"))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		all = append(all, es...)
	}
	ids, err := trainIDs(o)
	if err != nil {
		return err
	}
	if r.Audit, err = node.Audit(all, ids); err != nil {
		return err
	}
	if r.Audit.Lost != 0 || r.Audit.Repeated != 0 || r.Audit.Steps != o.Steps {
		return fmt.Errorf("audit: %d steps, %d samples lost, %d repeated", r.Audit.Steps, r.Audit.Lost, r.Audit.Repeated)
	}
	for k := range r.Faults {
		f := &r.Faults[k]
		if f.Injected.IsZero() {
			continue
		}
		next := math.MaxInt64
		for _, e := range all {
			if e.Applied && e.Gen > f.Gen && e.Time > f.Injected.UnixMilli() && int(e.Time) < next {
				next = int(e.Time)
			}
		}
		if next < math.MaxInt64 {
			f.Recovery = time.Duration(int64(next)-f.Injected.UnixMilli()) * time.Millisecond
		}
	}
	return nil
}

// saveEvents writes the job's event log next to the run's process logs.
func saveEvents(cl *api.Client, job, path string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	logs, err := cl.Logs(ctx, job, 0, 0)
	if err != nil {
		return
	}
	var b bytes.Buffer
	for _, e := range logs.Events {
		fmt.Fprintf(&b, "%s g%d %-10s %-4s %s\n", e.Time.Format("15:04:05.000"), e.Gen, e.Kind, e.Node, e.Message)
	}
	os.WriteFile(path, b.Bytes(), 0o644)
}

// pruneModels removes a passed run's model files (checkpoints, results, the
// coordinators' blobs: about 1 GB a run), keeping its logs, audit logs and metrics,
// so that 20 runs fit on a small disk.
func pruneModels(dir string) {
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		switch name := d.Name(); {
		case name == "blobs", name == "best", name == "final", strings.HasPrefix(name, "checkpoint-"):
			os.RemoveAll(path)
			return fs.SkipDir
		}
		return nil
	})
}
