package coordinator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/gossip"
	"github.com/bertnode/bertnode/internal/clusterkey"
	"github.com/bertnode/bertnode/shard"
)

// fakeClock is the time commands carry in tests: it moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// linePlanner is the tests' planner: every line is a record "label<TAB>text"; a line
// without a tab is an error naming the file and line.
var linePlanner = PlannerFunc(func(ctx context.Context, path string, data shard.Spec, opts PlanOptions) (Planned, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Planned{}, err
	}
	var labels []string
	n := 0
	for i, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		label, _, ok := strings.Cut(line, "\t")
		if !ok {
			return Planned{}, fmt.Errorf("%s:%d: no tab between label and text", path, i+1)
		}
		if !slices.Contains(labels, label) {
			labels = append(labels, label)
		}
		n++
	}
	slices.Sort(labels)
	plan, _ := json.Marshal(map[string]any{"records": n, "block_records": opts.BlockRecords, "eval_split": opts.EvalSplit})
	return Planned{Plan: plan, Records: n, Labels: labels}, nil
})

// fastTiming suits loopback on a loaded machine: quick elections, yet no flapping.
var fastTiming = Timing{Heartbeat: 300 * time.Millisecond, Election: 300 * time.Millisecond, LeaderLease: 150 * time.Millisecond,
	Commit: 20 * time.Millisecond, Tick: 20 * time.Millisecond, Apply: 5 * time.Second}

func testLogger() (*slog.Logger, io.Writer) {
	if os.Getenv("BERTNODE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})), os.Stderr
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard
}

// cluster is a coordinator cluster of in-process members on loopback.
type cluster struct {
	t       *testing.T
	secret  clusterkey.Secret
	clock   *fakeClock
	gossip  *gossip.Static
	servers []*Server // nil: stopped
	dirs    []string
	raft    []string // addresses, kept across restarts
	api     []string
	tweak   func(*Config)
}

// newCluster starts n members: the first bootstraps, the others join it.
func newCluster(t *testing.T, n int, tweak func(*Config)) *cluster {
	t.Helper()
	secret, err := clusterkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, secret: secret, clock: &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)},
		gossip: gossip.NewStatic(), tweak: tweak}
	t.Cleanup(c.stopAll)
	for i := range n {
		c.dirs = append(c.dirs, t.TempDir())
		c.raft = append(c.raft, "127.0.0.1:0")
		c.api = append(c.api, "127.0.0.1:0")
		c.servers = append(c.servers, nil)
		c.start(i, i == 0)
		if i == 0 {
			c.leader()
		}
	}
	c.waitFor("all members recorded", func() bool {
		l := c.leader()
		ok := false
		l.Read(func(st *State) { ok = len(st.Members) == n })
		return ok && l.voters() == n
	})
	return c
}

func (c *cluster) config(i int, bootstrap bool) Config {
	log, raftLog := testLogger()
	cfg := Config{DataDir: c.dirs[i], RaftAddr: c.raft[i], APIAddr: c.api[i], Bootstrap: bootstrap, Secret: c.secret,
		Membership: c.gossip, Planner: linePlanner, Clock: c.clock, Timing: fastTiming,
		Logger: log.With("test", c.t.Name()), RaftLog: raftLog, GossipAddr: fmt.Sprintf("127.0.0.1:%d", 7946+i)}
	if !bootstrap {
		for j, s := range c.servers {
			if s != nil && j != i {
				cfg.Join = append(cfg.Join, s.APIAddr())
			}
		}
	}
	if c.tweak != nil {
		c.tweak(&cfg)
	}
	return cfg
}

func (c *cluster) start(i int, bootstrap bool) *Server {
	c.t.Helper()
	s, err := New(c.config(i, bootstrap))
	if err != nil {
		c.t.Fatalf("member %d: %v", i, err)
	}
	c.servers[i] = s
	c.raft[i], c.api[i] = s.RaftAddr(), s.APIAddr()
	return s
}

// stop stops member i: gracefully, or as if its process died.
func (c *cluster) stop(i int, graceful bool) {
	if s := c.servers[i]; s != nil {
		c.servers[i] = nil
		if err := s.close(graceful); err != nil {
			c.t.Logf("stopping member %d: %v", i, err)
		}
	}
}

func (c *cluster) stopAll() {
	for i := range c.servers {
		c.stop(i, false)
	}
}

// waitFor polls cond until it holds, failing the test after a generous while.
func (c *cluster) waitFor(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// leader waits for a member to lead and returns it.
func (c *cluster) leader() *Server {
	c.t.Helper()
	var l *Server
	c.waitFor("a leader", func() bool {
		for _, s := range c.servers {
			if s != nil && s.IsLeader() {
				l = s
				return true
			}
		}
		return false
	})
	return l
}

func (c *cluster) follower() *Server {
	l := c.leader()
	for _, s := range c.servers {
		if s != nil && s != l {
			return s
		}
	}
	c.t.Fatal("no follower")
	return nil
}

func (c *cluster) index(s *Server) int { return slices.Index(c.servers, s) }

// client talks to the running members, or to the ones given.
func (c *cluster) client(only ...*Server) *api.Client {
	var addrs []string
	for _, s := range c.servers {
		if s != nil && (len(only) == 0 || slices.Contains(only, s)) {
			addrs = append(addrs, s.APIAddr())
		}
	}
	return &api.Client{Addrs: addrs, Token: c.secret.Token()}
}

// ctx is a test's bound on one call.
func ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// raw sends one request to addr without the client's retries and returns status,
// headers and body.
func raw(t *testing.T, method, addr, path, token string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// putData uploads text as a blob and returns its "blob:<sha>" path.
func putData(t *testing.T, cl *api.Client, text string) string {
	t.Helper()
	sha, err := cl.PutBlob(ctx(t), strings.NewReader(text), int64(len(text)))
	if err != nil {
		t.Fatal(err)
	}
	return "blob:" + sha
}

// trainData is a small valid data file.
const trainData = "ham\thello there\nspam\twin a prize\nham\tsee you at 6\n"

// gossipNode is a worker alive in gossip.
func gossipNode(id string) gossip.Member {
	return gossip.Member{Name: id, Addr: "127.0.0.1:1", Meta: gossip.Meta{Role: gossip.Worker}, Health: api.Alive}
}
