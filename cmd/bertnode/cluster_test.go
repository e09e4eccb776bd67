package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/coordinator"
	"github.com/bertnode/bertnode/coordinator/coordtest"
	"github.com/bertnode/bertnode/internal/clusterkey"
	"github.com/bertnode/bertnode/internal/tarball"
	"github.com/bertnode/bertnode/node"
	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/stream"
)

// smsLines are a small labeltext data file.
var smsLines = []string{"ham hello there", "spam WIN a prize now", "ham see you at 6", "spam free entry, text WIN",
	"ham ok lol", "ham on my way", "spam claim your reward", "ham call me later"}

// testCluster is a one-member coordinator cluster planning with the stream package and
// serving blocks as bertnode coordinator does, with the flags that reach it.
func testCluster(t *testing.T) (*coordtest.Cluster, []string) {
	t.Helper()
	return testClusterOf(t, 1, nil)
}

// testClusterOf is testCluster of members members, tweak changing each one's
// configuration.
func testClusterOf(t *testing.T, members int, tweak func(i int, cfg *coordinator.Config)) (*coordtest.Cluster, []string) {
	t.Helper()
	c := coordtest.New(t, coordtest.Options{Members: members, Tweak: func(i int, cfg *coordinator.Config) {
		cfg.Planner = streamPlanner
		if tweak != nil {
			tweak(i, cfg)
		}
	}})
	for _, s := range c.Servers {
		s.Handle("GET /v1/datasets/{plan}/blocks/{i}", stream.Handler(blockFiles(s)))
	}
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte(c.Secret.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOME", t.TempDir()) // no config file of the machine's user
	return c, []string{"--coordinator", strings.Join(c.Addrs(), ","), "--secret-file", secret}
}

// writeSpec writes a job spec over data in dir.
func writeSpec(t *testing.T, dir, data string, extra ...string) string {
	t.Helper()
	return writeLines(t, dir, "sms.yaml", append([]string{"task: classify", "train: " + data, "data: {format: labeltext}",
		"epochs: 1", "batch_size: 2", "model: tiny", "output: " + filepath.Join(dir, "out"),
		"cluster:", "  nodes: 1", "  rejoin_window: 1s"}, extra...)...)
}

func waitJob(t *testing.T, c *coordtest.Cluster, id, what string, cond func(j *api.Job) bool) *api.Job {
	t.Helper()
	var j *api.Job
	c.WaitFor(what, func() bool {
		var err error
		j, err = c.Client().Job(c.Context(), id)
		return err == nil && cond(j)
	})
	return j
}

func contains(t *testing.T, what, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, out)
		}
	}
}

// TestClusterCommands: submit uploads the data and rewrites the spec, the coordinator
// plans it with the stream package and serves its blocks, and jobs, nodes, status,
// cancel and logs show what happened.
func TestClusterCommands(t *testing.T) {
	c, flags := testCluster(t)
	dir := t.TempDir()
	data := writeLines(t, dir, "sms.txt", smsLines...)
	spec := writeSpec(t, dir, data)
	run := func(args ...string) string { return mustRun(t, append(args, flags...)...) }

	out := run("submit", spec)
	contains(t, "submit", out, "uploaded "+data, "submitted job-1 (sms)")
	j := waitJob(t, c, "job-1", "the plan", func(j *api.Job) bool { return j.Reason == "waiting for nodes: 0 of 1 idle" })
	if !strings.HasPrefix(j.Train.Path, "blob:") || !strings.Contains(j.Spec, "train: "+j.Train.Path) || !strings.Contains(j.Spec, "batch_size: 2") ||
		j.Train.Records != len(smsLines) || !slices.Equal(j.Labels, []string{"ham", "spam"}) {
		t.Fatalf("submitted job: %+v", j)
	}
	// The plan's records come back through the block handler as the file has them.
	cl := c.Client()
	rc, _, err := cl.GetBlob(c.Context(), j.Train.Plan)
	if err != nil {
		t.Fatal(err)
	}
	var plan stream.Plan
	if err := json.NewDecoder(rc).Decode(&plan); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	src := stream.NewRemote(&plan, func(ctx context.Context, b int) (io.ReadCloser, error) {
		resp, err := cl.DatasetBlock(ctx, j.Train.Plan, b, http.Header{"Accept-Encoding": {"zstd"}})
		if err != nil {
			return nil, err
		}
		return stream.DecodeBlock(resp)
	}, 1<<20)
	recs := make([]shard.Record, len(smsLines))
	if err := src.Read(c.Context(), []int32{0, 1, 2, 3, 4, 5, 6, 7}, recs); err != nil {
		t.Fatal(err)
	}
	if recs[1].Text != "WIN a prize now" || recs[7].Labels[0] != "ham" {
		t.Fatalf("records through the blocks: %+v", recs)
	}

	contains(t, "jobs", run("jobs"), "job-1", "sms", "pending", "waiting for nodes: 0 of 1 idle")
	if err := cl.RegisterNode(c.Context(), api.RegisterNode{ID: "n1", RingAddr: "127.0.0.1:7001", Device: "cpu"}); err != nil {
		t.Fatal(err)
	}
	c.AliveNode("n1")
	waitJob(t, c, "job-1", "the start", func(j *api.Job) bool { return j.State == api.Running })
	// A loss scale, as an fp16 job's nodes report (the coordinator takes their word).
	if err := cl.Progress(c.Context(), "job-1", api.ProgressReport{Node: "n1", Gen: 1, Step: 2, TotalSteps: 4, Loss: 0.5, SamplesPerSec: 1, NodeRate: 1,
		LossScale: 32768, Skipped: 3}); err != nil {
		t.Fatal(err)
	}
	contains(t, "nodes", run("nodes"), "n1", "alive", "job-1", "cpu")
	contains(t, "status", run("status"), "leader", "n1", "job-1", "running")
	contains(t, "status job-1", run("status", "job-1"), "generation 1", "step 2/4", "loss 0.5000", "ETA 4s", "n1", "recoveries: 0",
		"loss scale 32768 (3 steps skipped)")
	// A drain waits while the node is the job's only one; the job's end lets it go.
	drained := make(chan string, 1)
	go func() {
		out, _, err := bertnode(t, "", append([]string{"nodes", "drain", "n1", "--wait"}, flags...)...)
		if err != nil {
			out += err.Error()
		}
		drained <- out
	}()
	c.WaitFor("the drain", func() bool { n, err := cl.Node(c.Context(), "n1"); return err == nil && n.Drain })
	contains(t, "nodes", run("nodes"), "job-1 (draining)")
	followed := make(chan string, 1)
	go func() {
		out, _, err := bertnode(t, "", append([]string{"logs", "job-1", "-f"}, flags...)...)
		if err != nil {
			out += err.Error()
		}
		followed <- out
	}()
	wantErr(t, "", []string{"cancel it first"}, append([]string{"delete", "job-1"}, flags...)...)
	contains(t, "cancel", run("cancel", "job-1"), "cancelled job-1")
	select {
	case out := <-followed:
		contains(t, "logs -f", out, "generation 1: n1 (start)", "cancelled: cancelled")
	case <-time.After(30 * time.Second):
		t.Fatal("logs -f did not end with the job")
	}
	select {
	case out := <-drained:
		contains(t, "nodes drain --wait", out, "n1: waiting for it to leave job-1", "n1: drained, on no job")
	case <-time.After(30 * time.Second):
		t.Fatal("nodes drain --wait did not return when the job ended")
	}
	contains(t, "nodes", run("nodes"), "drained")
	contains(t, "nodes undrain", run("nodes", "undrain", "n1"), "n1: takes work again")
	wantErr(t, "", []string{"want no arguments, drain ID... [--wait], undrain ID... or remove ID..."}, append([]string{"nodes", "undrain", "n1", "--wait"}, flags...)...)
	wantErr(t, "", []string{`no node "n9"`}, append([]string{"nodes", "drain", "n9"}, flags...)...)
	wantErr(t, "", []string{"already cancelled"}, append([]string{"cancel", "job-1"}, flags...)...)
	contains(t, "logs", run("logs", "job-1"), "submitted", "train data planned: 8 records", "generation 1: n1 (start)", "cancelled")

	t.Run("nodes remove", func(t *testing.T) {
		run := func(args ...string) string { return mustRun(t, append(args, flags...)...) }
		contains(t, "nodes --help", run("nodes", "--help"), "remove ID...", "dead or left in gossip", "--node-gc")
		wantErr(t, "", []string{"node n1 is alive in gossip", "stop its bertnode join first"}, append([]string{"nodes", "remove", "n1"}, flags...)...)
		wantErr(t, "", []string{"want no arguments"}, append([]string{"nodes", "remove", "n1", "--wait"}, flags...)...)
		c.Gossip.SetHealth("n1", api.Dead)
		c.WaitFor("n1 dead", func() bool { n, err := cl.Node(c.Context(), "n1"); return err == nil && n.Health == api.Dead })
		contains(t, "nodes remove", run("nodes", "remove", "n1"), "n1: removed")
		contains(t, "nodes", run("nodes"), "none registered")
		// The cancelled job still names it.
		out := run("status", "job-1")
		contains(t, "status job-1", out, "generation 1", "removed")
		if !slices.ContainsFunc(strings.Split(out, "\n"), func(l string) bool {
			f := strings.Fields(l)
			return len(f) >= 3 && f[0] == "0" && f[1] == "n1" && f[2] == "removed"
		}) {
			t.Errorf("status job-1 does not show rank 0, n1, removed:\n%s", out)
		}
		wantErr(t, "", []string{`no node "n1"`}, append([]string{"nodes", "remove", "n1"}, flags...)...)
	})
	contains(t, "members", run("members"), c.Servers[0].ID(), "true", "PROTOCOL", fmt.Sprintf("  %d  ", coordinator.Protocol))
	if tok := mustRun(t, append([]string{"token"}, flags[2:]...)...); tok != c.Secret.Token()+"\n" {
		t.Errorf("token: %q", tok)
	}
	if tok := mustRun(t, append([]string{"token", "--read-only"}, flags[2:]...)...); tok != c.Secret.ReadToken()+"\n" {
		t.Errorf("token --read-only: %q", tok)
	}
	wantErr(t, "", []string{"no job"}, append([]string{"status", "job-9"}, flags...)...)

	// Deleting the ended job takes its data and plan with it.
	contains(t, "delete", run("delete", "job-1"), "deleted job-1")
	wantErr(t, "", []string{"no job"}, append([]string{"status", "job-1"}, flags...)...)
	if out := run("jobs"); strings.Contains(out, "job-1") {
		t.Errorf("jobs lists a deleted job:\n%s", out)
	}
	// Nodes learn which of their jobs' files to remove: the job and its submission.
	if del, err := c.Client().DeletedJobs(context.Background()); err != nil || !del["job-1"].Equal(j.Submitted) {
		t.Errorf("deleted jobs: %v %v, want job-1 submitted at %v", del, err, j.Submitted)
	}
	c.Leader().Read(func(st *coordinator.State) {
		for _, sha := range []string{strings.TrimPrefix(j.Train.Path, "blob:"), j.Train.Plan} {
			if st.Blobs[sha] != nil {
				t.Errorf("the state still lists blob %s of the deleted job", sha)
			}
		}
	})
}

// TestSubmitWait: submit --wait follows the job to its end and exits by its outcome;
// download unpacks the model.
func TestSubmitWait(t *testing.T) {
	c, flags := testCluster(t)
	dir := t.TempDir()
	spec := writeSpec(t, dir, writeLines(t, dir, "sms.txt", smsLines...))
	cl := c.Client()
	if err := cl.RegisterNode(c.Context(), api.RegisterNode{ID: "n1", RingAddr: "127.0.0.1:7001"}); err != nil {
		t.Fatal(err)
	}
	c.AliveNode("n1")

	model := t.TempDir()
	os.WriteFile(filepath.Join(model, "config.json"), []byte(`{"hidden_size": 32}`), 0o644)
	os.WriteFile(filepath.Join(model, "model.safetensors"), []byte(strings.Repeat("w", 5000)), 0o644)
	pr, pw := io.Pipe()
	go func() {
		err := tarball.Pack(model, pw)
		pw.CloseWithError(err)
	}()
	blob, err := cl.PutBlob(c.Context(), pr, -1)
	if err != nil {
		t.Fatal(err)
	}

	for _, fail := range []bool{false, true} {
		done := make(chan error, 1)
		var out string
		go func() {
			var err error
			out, _, err = bertnode(t, "", append([]string{"submit", spec, "--wait"}, flags...)...)
			done <- err
		}()
		var a *api.Assignment
		c.WaitFor("the assignment", func() bool {
			var err error
			a, err = cl.Assignment(c.Context(), "n1", 0, 0)
			return err == nil && a.Job != nil && a.Rank == 0
		})
		id := a.Job.ID
		cl.Progress(c.Context(), id, api.ProgressReport{Node: "n1", Gen: 1, Step: 4, TotalSteps: 4, Loss: 0.25, SamplesPerSec: 8,
			Eval: map[string]float64{"accuracy": 0.875}, EvalStep: 4})
		rep := api.DoneReport{Node: "n1", Gen: 1, Step: 4}
		if fail {
			rep.Error = "CUDA out of memory"
		} else if err := cl.Result(c.Context(), id, api.ResultReport{Node: "n1", Kind: "final", Blob: blob, Step: 4}); err != nil {
			t.Fatal(err)
		}
		if err := cl.Done(c.Context(), id, rep); err != nil {
			t.Fatal(err)
		}
		select {
		case err = <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("submit --wait did not return")
		}
		if fail {
			if err == nil || !strings.Contains(err.Error(), "failed: n1: CUDA out of memory") {
				t.Fatalf("a failed job: %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("submit --wait: %v\n%s", err, out)
		}
		contains(t, "submit --wait", out, "submitted "+id, "succeeded at step 4", "eval at step 4: accuracy=0.8750", "final model: step 4")
		dst := filepath.Join(t.TempDir(), "model")
		contains(t, "download", mustRun(t, append([]string{"download", id, "--output", dst}, flags...)...), "final model of "+id)
		got, err := os.ReadFile(filepath.Join(dst, "model.safetensors"))
		if err != nil || len(got) != 5000 {
			t.Fatalf("downloaded model: %d bytes, %v", len(got), err)
		}
		wantErr(t, "", []string{"has no best model", "final"}, append([]string{"download", id, "--output", dst, "--kind", "best"}, flags...)...)
	}
}

// TestClusterFlagSources: addresses and the secret come from the flags, else the
// environment, else the config file.
func TestClusterFlagSources(t *testing.T) {
	c, _ := testCluster(t)
	wantErr(t, "", []string{"no coordinator", envCoordinator}, "jobs")
	t.Setenv(envCoordinator, c.Addrs()[0])
	wantErr(t, "", []string{"secret", clusterkey.Env}, "jobs")
	t.Setenv(clusterkey.Env, c.Secret.String())
	mustRun(t, "jobs")

	t.Setenv(envCoordinator, "")
	t.Setenv(clusterkey.Env, "")
	cfgFile := writeLines(t, t.TempDir(), "config.yaml", "coordinator: "+c.Addrs()[0], "secret: "+c.Secret.String())
	mustRun(t, "jobs", "--config", cfgFile)
	home := os.Getenv("HOME")
	os.MkdirAll(filepath.Join(home, ".config", "bertnode"), 0o755)
	writeLines(t, filepath.Join(home, ".config", "bertnode"), "config.yaml", "coordinator: ["+c.Addrs()[0]+"]", "secret: "+c.Secret.String())
	mustRun(t, "nodes")
	bad := writeLines(t, t.TempDir(), "config.yaml", "coordinators: x")
	wantErr(t, "", []string{bad, "coordinators"}, "jobs", "--config", bad)
	other, _ := clusterkey.Generate()
	wantErr(t, "", []string{"wrong bearer token"}, "jobs", "--config", writeLines(t, t.TempDir(), "c.yaml", "coordinator: "+c.Addrs()[0], "secret: "+other.String()))
}

// TestCoordinatorCommand: bertnode coordinator bootstraps a cluster that plans a
// submitted job with the stream package, and stops on its context's end.
func TestCoordinatorCommand(t *testing.T) {
	secret, _ := clusterkey.Generate()
	secretFile := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secretFile, []byte(secret.String()), 0o600)
	t.Setenv("HOME", t.TempDir())
	for _, how := range [][]string{{"--bootstrap", "--join", "x:1"}, {"--recover", "--bootstrap"}, {"--recover", "--join", "x:1"}} {
		wantErr(t, "", []string{"--bootstrap, --join and --recover: one or none of them"}, append([]string{"coordinator", "--data-dir", t.TempDir()}, how...)...)
	}
	for _, how := range [][]string{{"--bootstrap-expect", "3", "--bootstrap"}, {"--bootstrap-expect", "-1"}} {
		wantErr(t, "", []string{"--bootstrap-expect: a count of members"}, append([]string{"coordinator", "--data-dir", t.TempDir()}, how...)...)
	}
	wantErr(t, "", []string{"bootstrap-expect: no addresses"}, "coordinator", "--bootstrap-expect", "3", "--data-dir", t.TempDir(), "--secret-file", secretFile,
		"--api-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0", "--gossip-addr", "127.0.0.1:0", "--gossip-profile", "local")
	wantErr(t, "", []string{"holds no cluster state to recover"}, "coordinator", "--recover", "--data-dir", t.TempDir(), "--secret-file", secretFile,
		"--api-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0", "--gossip-addr", "127.0.0.1:0", "--gossip-profile", "local")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	root := newRootCmd()
	pr, pw := io.Pipe()
	root.SetOut(pw)
	root.SetErr(io.Discard)
	root.SetArgs([]string{"coordinator", "--bootstrap", "--data-dir", t.TempDir(), "--secret-file", secretFile,
		"--api-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0", "--gossip-addr", "127.0.0.1:0", "--gossip-profile", "local",
		"--raft-heartbeat", "300ms", "--raft-election", "300ms", "--raft-lease", "150ms"})
	done := make(chan error, 1)
	go func() {
		done <- root.ExecuteContext(ctx)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	if !lines.Scan() {
		t.Fatalf("no first line: %v", <-done)
	}
	var id, apiAddr, raftAddr, gossipAddr string
	if _, err := fmt.Sscanf(strings.ReplaceAll(lines.Text(), ",", ""), "coordinator %s API %s raft %s gossip %s", &id, &apiAddr, &raftAddr, &gossipAddr); err != nil {
		t.Fatalf("first line %q: %v", lines.Text(), err)
	}
	flags := []string{"--coordinator", apiAddr, "--secret-file", secretFile}
	dir := t.TempDir()
	contains(t, "submit", mustRun(t, append([]string{"submit", writeSpec(t, dir, writeLines(t, dir, "sms.txt", smsLines...))}, flags...)...), "submitted job-1")
	cl := &api.Client{Addrs: []string{apiAddr}, Token: secret.Token()}
	deadline := time.Now().Add(30 * time.Second)
	for {
		j, err := cl.Job(ctx, "job-1")
		if err == nil && j.Train.Records == len(smsLines) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job-1 not planned: %+v %v", j, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ms, err := cl.Members(ctx)
	if err != nil || len(ms) != 1 || ms[0].GossipAddr != gossipAddr || !ms[0].Leader {
		t.Fatalf("members: %+v %v", ms, err)
	}
	cancel()
	go io.Copy(io.Discard, pr)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("coordinator: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the coordinator did not stop")
	}
}

// TestNodeGCFlag: --node-gc reaches coordinator.Timing.NodeGC as given, 0 as never
// (negative there, where 0 is the default), and a negative value is refused.
func TestNodeGCFlag(t *testing.T) {
	for _, c := range []struct{ flag, want time.Duration }{{24 * time.Hour, 24 * time.Hour}, {time.Minute, time.Minute}, {0, -1}} {
		if got, err := nodeGCTiming(c.flag); err != nil || got != c.want {
			t.Errorf("--node-gc %s: %s, %v; want %s", c.flag, got, err, c.want)
		}
	}
	if f := newCoordinatorCmd().Flags().Lookup("node-gc"); f == nil || f.DefValue != "24h0m0s" {
		t.Fatalf("--node-gc: %+v", f)
	}
	wantErr(t, "", []string{"--node-gc -1s", "0 (never) or more"}, "coordinator", "--data-dir", t.TempDir(), "--node-gc", "-1s")
}

// A member about three times slower per sample than the median is flagged; the others not.
func TestStragglersAreFlagged(t *testing.T) {
	j := &api.Job{ID: "job-1", Gen: &api.Generation{Members: []api.RingMember{{Node: "n1"}, {Node: "n2"}, {Node: "n3"}}}}
	var nodes []api.Node
	for id, rate := range map[string]float64{"n1": 300, "n2": 280, "n3": 95} {
		nodes = append(nodes, api.Node{ID: id, Stats: &api.NodeStats{Job: "job-1", SamplesPerSec: rate}})
	}
	got := stragglers(j, nodes)
	if len(got) != 1 || !strings.Contains(got["n3"], "2.9x") {
		t.Fatalf("stragglers: %v", got)
	}
}

// TestClusterRegressionJob: the coordinator plans a regression job's data with the
// labels read as scores: one output, LABEL_0; a score that is not a number fails the
// plan at its line.
func TestClusterRegressionJob(t *testing.T) {
	c, flags := testCluster(t)
	dir := t.TempDir()
	submit := func(name string, lines ...string) {
		data := writeLines(t, dir, name+".txt", lines...)
		spec := writeLines(t, dir, name+".yaml", "task: regression", "train: "+data, "data: {format: labeltext}",
			"epochs: 1", "batch_size: 2", "model: tiny", "output: "+filepath.Join(dir, name), "cluster:", "  nodes: 1")
		mustRun(t, append([]string{"submit", spec}, flags...)...)
	}
	submit("sts", "4.5 two good words", "0.25 none here", "3 good and nice")
	j := waitJob(t, c, "job-1", "the plan", func(j *api.Job) bool { return j.Train.Records == 3 })
	if !slices.Equal(j.Labels, []string{"LABEL_0"}) {
		t.Fatalf("labels %q", j.Labels)
	}
	submit("bad", "4.5 two good words", "high none here")
	j = waitJob(t, c, "job-2", "the failed plan", func(j *api.Job) bool { return j.State == api.Failed })
	contains(t, "reason", j.Reason, `:2 (byte 19): label: want a number (a regression score), got "high"`)
}

// bertnode ui prints each coordinator's dashboard address with the read-only token,
// which reads the catalog and nothing more.
func TestUIPrintsTheDashboardAddress(t *testing.T) {
	c, flags := testCluster(t)
	out := strings.TrimSpace(mustRun(t, append([]string{"ui"}, flags...)...))
	addr := c.Servers[0].APIAddr()
	prefix := "http://" + addr + "/ui/#token="
	if !strings.HasPrefix(out, prefix) {
		t.Fatalf("ui printed %q, want %s...", out, prefix)
	}
	tok, err := url.QueryUnescape(strings.TrimPrefix(out, prefix))
	if err != nil || tok != c.Secret.ReadToken() {
		t.Fatalf("token %q (%v), want the read-only one", tok, err)
	}
	for path, want := range map[string]int{"/v1/status": http.StatusOK, "/v1/blobs/" + strings.Repeat("ab", 32): http.StatusForbidden} {
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s with the dashboard's token: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

// TestSubmitUploadsTheTeacher: a distillation job's teacher, a local checkpoint
// directory, travels as the model does: submit uploads it packed, the spec names its
// blob, the coordinator records it among the job's uploads, and it unpacks as it was.
func TestSubmitUploadsTheTeacher(t *testing.T) {
	c, flags := testCluster(t)
	dir := t.TempDir()
	teacher := filepath.Join(dir, "teacher")
	if err := os.Mkdir(teacher, 0o755); err != nil {
		t.Fatal(err)
	}
	writeLines(t, teacher, "config.json", `{"model_type": "bert"}`)
	data := writeLines(t, dir, "sms.txt", smsLines...)
	spec := writeSpec(t, dir, data, "distill:", "  teacher: "+teacher, "  alpha: 0.3")
	contains(t, "submit", mustRun(t, append([]string{"submit", spec}, flags...)...), "uploaded "+teacher+" (")
	j := waitJob(t, c, "job-1", "the plan", func(j *api.Job) bool { return j.Train.Records == len(smsLines) })
	sha := j.Uploads["distill.teacher"]
	if sha == "" || !strings.Contains(j.Spec, "teacher: blob:"+sha) || !strings.Contains(j.Spec, "alpha: 0.3") {
		t.Fatalf("uploads %v, spec:\n%s", j.Uploads, j.Spec)
	}
	got, err := node.FetchUpload(c.Context(), c.Client(), t.TempDir(), "blob:"+sha, j)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(got, "config.json")); err != nil || !strings.Contains(string(b), "bert") {
		t.Fatalf("the fetched teacher: %q, %v", b, err)
	}
}
