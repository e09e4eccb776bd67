package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/gossip"
	"github.com/bertnode/bertnode/internal/clusterkey"
	"github.com/bertnode/bertnode/internal/syncbuf"
	"github.com/bertnode/bertnode/localcluster"
	"github.com/bertnode/bertnode/node"
)

func TestJoinDevicesParse(t *testing.T) {
	two := func() int64 { return 2 }
	none := func() int64 { return 0 }
	for _, tc := range []struct {
		in   string
		gpus func() int64
		want []string
		err  string
	}{
		{"all", two, []string{"cuda:0", "cuda:1"}, ""},
		{"all", none, nil, "sees no CUDA device"},
		{"cuda, cuda:3", func() int64 { return 4 }, []string{"cuda:0", "cuda:3"}, ""},
		{"cuda:2", two, nil, "cuda:2: no such CUDA device (2 available)"},
		{"cpu,cuda", none, nil, "cuda:0: no such CUDA device (0 available)"},
		{"cpu,cpu", none, []string{"cpu", "cpu"}, ""},
		{"cuda:1,cuda:1", two, nil, "cuda:1 twice"},
		{"cuda,cuda:0", two, nil, "cuda:0 twice"},
		{"gpu0", two, nil, `"gpu0" is not cpu, cuda or cuda:N`},
		{"cuda:-1", two, nil, `"cuda:-1"`},
		{"cpu,", two, nil, `"" is not`},
	} {
		got, err := parseDevices(tc.in, tc.gpus)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
		} else if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%q: %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestJoinDevicesWorkerArgs(t *testing.T) {
	args := func(flags []string, i int, device string, devices ...string) ([]string, error) {
		c := joinCmd()
		if err := c.ParseFlags(flags); err != nil {
			t.Fatal(err)
		}
		return workerArgs(c.Flags(), []string{"10.0.0.1:7300"}, i, device, devices)
	}
	got, err := args([]string{"--devices", "all", "--data-dir", "/var/lib/bn", "--ring-addr", "10.0.0.5:7400",
		"--http-addr", "10.0.0.5:0", "--threads", "4", "--secret-file", "s", "--no-overlap", "--max-restarts", "5"},
		1, "cuda:1", "cuda:0", "cuda:1")
	want := []string{"join", "10.0.0.1:7300", "--data-dir=/var/lib/bn/worker-1", "--gossip-addr=127.0.0.1:0",
		"--http-addr=10.0.0.5:0", "--no-overlap=true", "--ring-addr=10.0.0.5:7401", "--secret-file=s", "--threads=4", "--device=cuda:1"}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("worker 1:\n got %q, %v\nwant %q", got, err, want)
	}
	// The same device twice: names apart, unless --name gives them.
	host, _ := os.Hostname()
	got, _ = args([]string{"--devices", "cpu,cpu"}, 1, "cpu", "cpu", "cpu")
	if !slices.Contains(got, "--name="+host+"/cpu-1") || !slices.Contains(got, "--data-dir=bertnode-node/worker-1") {
		t.Errorf("second cpu worker: %q", got)
	}
	got, _ = args([]string{"--devices", "cpu,cpu", "--name", "box"}, 0, "cpu", "cpu", "cpu")
	if !slices.Contains(got, "--name=box-0") || slices.ContainsFunc(got, func(a string) bool { return strings.HasPrefix(a, "--name="+host) }) {
		t.Errorf("named cpu worker: %q", got)
	}
	for _, tc := range []struct {
		flags []string
		err   string
	}{
		{[]string{"--devices", "all", "--id", "x"}, "--id names one node"},
		{[]string{"--devices", "all", "--device", "cuda:0"}, "--device and --devices"},
		{[]string{"--devices", "all", "--ring-addr", "10.0.0.5:65535"}, "--ring-addr: port \"65535\""},
		{[]string{"--devices", "all", "--gossip-addr", "nohost"}, "--gossip-addr"},
	} {
		if _, err := args(tc.flags, 1, "cuda:1", "cuda:0", "cuda:1"); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: error %v, want %q", tc.flags, err, tc.err)
		}
	}
}

func TestPrefixWriterWritesWholeLines(t *testing.T) {
	var out bytes.Buffer
	p := &prefixWriter{w: &out, prefix: []byte("[1 cpu] ")}
	for _, s := range []string{"a", "b\nc\n", "", "d\ne"} {
		p.Write([]byte(s))
	}
	if got := out.String(); got != "[1 cpu] ab\n[1 cpu] c\n[1 cpu] d\n" {
		t.Fatalf("%q", got)
	}
	p.flush()
	if got := out.String(); !strings.HasSuffix(got, "[1 cpu] e\n") {
		t.Fatalf("after flush: %q", got)
	}
}

// A worker that keeps failing (its ring address cannot be bound) is started again
// --max-restarts times, then given up: join --devices exits with an error naming it,
// and the worker's own error reaches the output under its prefix.
func TestJoinDevicesGivesUpAWorkerAfterMaxRestarts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	t.Setenv(asMain, "1")
	dir := t.TempDir()
	secret, _ := clusterkey.Generate()
	sf := filepath.Join(dir, "secret")
	os.WriteFile(sf, []byte(secret.String()), 0o600)
	start := time.Now()
	_, errOut, err := bertnode(t, "", "join", "127.0.0.1:1", "--devices", "cpu", "--max-restarts", "1",
		"--data-dir", dir, "--secret-file", sf, "--ring-addr", "192.0.2.1:0")
	if err == nil || !strings.Contains(err.Error(), "worker 0 (cpu): exit status 1 (after 1 restarts)") {
		t.Fatalf("error %v\n%s", err, errOut)
	}
	for _, w := range []string{"[0 cpu] bertnode: --ring-addr: listen tcp 192.0.2.1:0", "restarting it (1 of 1) in 1s"} {
		if !strings.Contains(errOut, w) {
			t.Errorf("output lacks %q:\n%s", w, errOut)
		}
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("gave up after %s: no backoff", d)
	}
}

// join --devices cpu,cpu runs two worker processes, two nodes that train a job
// together. One killed with SIGKILL mid-job is started again by the supervisor, as the
// same node (its ID kept in its own data directory), and rejoins the job, which ends
// with every sample trained once. SIGTERM to the supervisor then takes both workers
// out of the cluster and it exits 0; killed outright, it takes them with it.
func TestProcessJoinDevicesRestartsAWorkerItLost(t *testing.T) {
	c := upCluster(t, 1, 0)
	dir := t.TempDir()
	exe, _ := os.Executable()
	out := &syncbuf.Buffer{}
	start := func(extra ...string) *exec.Cmd {
		cmd := exec.Command(exe, append([]string{"join", c.lc.APIAddrs()[0], "--devices", "cpu,cpu", "--threads", "1",
			"--data-dir", dir, "--secret-file", c.lc.SecretFile}, extra...)...)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill() })
		return cmd
	}
	output := out.String
	sup := start()
	ids := make([]string, 2)
	for i := range ids {
		ids[i] = waitFile(t, filepath.Join(dir, fmt.Sprintf("worker-%d", i), "node-id"))
	}
	alive := func(what string, want int) {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
			nodes, _ := c.cl.Nodes(context.Background())
			n := 0
			for _, nd := range nodes {
				if slices.Contains(ids, nd.ID) && nd.Health == api.Alive {
					n++
				}
			}
			if n == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d of the workers' nodes alive, want %d: %+v\n%s", what, n, want, nodes, output())
			}
		}
	}
	alive("started", 2)

	spec := writeLines(t, dir, "toy.yaml", "model: toy", "train: "+smsFile, `data: {format: labeltext, delimiter: "\t"}`,
		"eval_split: 0.2", "batch_size: 16", "epochs: 100", "lr: 0.05", "metric: accuracy", "eval_steps: 500", "save_steps: 500",
		"cluster: {nodes: 2, rejoin_window: 2s, ring_timeout: 5s}")
	out1 := mustRun(t, append([]string{"submit", spec}, c.flags...)...)
	job := strings.Fields(out1[strings.Index(out1, "submitted "):])[1]
	c.job(job, "step 300", 3*time.Minute, func(j *api.Job) bool { return j.Progress.Step >= 300 })
	victims := workerPIDs(t, sup.Process.Pid)
	if len(victims) != 2 {
		t.Fatalf("the supervisor's workers: %v", victims)
	}
	if err := syscall.Kill(victims[1], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.job(job, "both nodes in a later generation", 3*time.Minute, func(j *api.Job) bool {
		return j.Gen.Gen > 2 && len(j.Gen.Members) == 2
	})
	j := c.job(job, "the end", 3*time.Minute, func(j *api.Job) bool { return j.State.Done() })
	if j.State != api.Succeeded || j.Progress.Recoveries < 1 {
		t.Fatalf("job %s %s after %d recoveries\n%s", job, j.State, j.Progress.Recoveries, output())
	}
	if !strings.Contains(output(), "signal: killed; restarting it (1 of 3)") {
		t.Fatalf("no restart in the output:\n%s", output())
	}
	if now := workerPIDs(t, sup.Process.Pid); len(now) != 2 || slices.Contains(now, victims[1]) {
		t.Fatalf("workers after the kill: %v (before: %v)", now, victims)
	}
	var all []node.AuditEntry
	for i := range ids {
		es, err := node.ReadAudit(filepath.Join(dir, fmt.Sprintf("worker-%d", i), "jobs", job, "audit.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, es...)
	}
	if r, err := node.Audit(all, trainIDs(t, 0.2)); err != nil || r.Lost != 0 || r.Repeated != 0 || r.Epochs != 100 {
		t.Fatalf("audit: %+v, %v", r, err)
	}
	alive("after the restart", 2)
	t.Logf("job %s: %d steps, %d recoveries, generation %d", job, j.Progress.Step, j.Progress.Recoveries, j.Gen.Gen)

	workers := workerPIDs(t, sup.Process.Pid)
	sup.Process.Signal(syscall.SIGTERM)
	if err := waitExit(sup, 40*time.Second); err != nil {
		t.Fatalf("supervisor after SIGTERM: %v\n%s", err, output())
	}
	for _, p := range workers {
		if localcluster.Alive(p) {
			t.Fatalf("worker %d outlived its supervisor", p)
		}
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		nodes, _ := c.cl.Nodes(context.Background())
		if !slices.ContainsFunc(nodes, func(n api.Node) bool { return n.Health != api.Left }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nodes 30 s after SIGTERM: %+v, want all left\n%s", nodes, output())
		}
	}

	const mismatch = "warning: this node's --gossip-profile is local, the coordinators' lan"
	if strings.Contains(output(), mismatch) {
		t.Fatalf("a warning of another gossip profile, on the same one:\n%s", output())
	}

	// Killed outright, the supervisor takes its workers with it (Pdeathsig). Their
	// gossip profile is not the coordinators': each warns.
	sup = start("--gossip-profile", "local")
	alive("started again", 2)
	if n := strings.Count(output(), mismatch); n != 2 {
		t.Errorf("%d warnings of another gossip profile, want one a worker:\n%s", n, output())
	}
	workers = workerPIDs(t, sup.Process.Pid)
	sup.Process.Kill()
	sup.Wait()
	for _, p := range workers {
		for deadline := time.Now().Add(30 * time.Second); localcluster.Alive(p); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("worker %d outlived its supervisor's SIGKILL", p)
			}
		}
	}
}

// workerPIDs lists the children of pid, in order of their PIDs.
func workerPIDs(t *testing.T, pid int) []int {
	t.Helper()
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var kids []int
	for _, s := range stats {
		b, err := os.ReadFile(s)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after its last ')'.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			k, _ := strconv.Atoi(filepath.Base(filepath.Dir(s)))
			kids = append(kids, k)
		}
	}
	slices.Sort(kids)
	return kids
}

// waitFile waits for a file and returns its trimmed content.
func waitFile(t *testing.T, path string) string {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if b, err := os.ReadFile(path); err == nil && len(bytes.TrimSpace(b)) > 0 {
			return string(bytes.TrimSpace(b))
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after a minute", path)
		}
	}
}

// waitExit waits for cmd to exit with status 0.
func waitExit(cmd *exec.Cmd, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		return fmt.Errorf("still running after %s", d)
	}
}

func TestStartGossipKeepsThePortOfTheLastRun(t *testing.T) {
	dir := t.TempDir()
	cfg := gossip.Config{Name: "n1", Bind: "127.0.0.1:0", Key: make([]byte, 32), Profile: gossip.ProfileLocal}
	start := func(cfg gossip.Config) string {
		t.Helper()
		g, err := startGossip(cfg, dir)
		if err != nil {
			t.Fatal(err)
		}
		defer g.Shutdown()
		_, port, _ := net.SplitHostPort(g.Addr())
		return port
	}
	port := start(cfg)
	os.WriteFile(filepath.Join(dir, gossipPortFile), []byte(port+"\n"), 0o644)
	if got := start(cfg); got != port {
		t.Errorf("started again: port %s, want the last run's %s", got, port)
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	if got := start(cfg); got == port || got == "0" {
		t.Errorf("the last port taken by another process: port %s, want another", got)
	}
	l.Close()
	os.Remove(filepath.Join(dir, gossipPortFile))
	given := start(cfg) // a free port, not the last run's
	os.WriteFile(filepath.Join(dir, gossipPortFile), []byte(port+"\n"), 0o644)
	cfg.Bind = "127.0.0.1:" + given
	if got := start(cfg); got != given {
		t.Errorf("port %s given: bound %s", given, got)
	}
}
