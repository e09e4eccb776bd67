// Package coordtest runs real coordinator clusters on loopback for the tests of
// packages that talk to one (api's client, the CLI, the nodes): raft over TCP, the
// HTTP API, a gossip.Static for membership, a ManualClock for the time commands carry,
// and a planner that counts lines instead of parsing data files.
package coordtest

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/coordinator"
	"github.com/bertnode/bertnode/gossip"
	"github.com/bertnode/bertnode/internal/clusterkey"
	"github.com/bertnode/bertnode/internal/tlsconfig"
	"github.com/bertnode/bertnode/shard"
)

// LinePlanner plans a file of records "label<TAB>text", one a line; a line without a
// tab is an error naming the file (opts.Name) and line. The plan is a small JSON summary.
var LinePlanner = coordinator.PlannerFunc(func(ctx context.Context, path string, data shard.Spec, opts coordinator.PlanOptions) (coordinator.Planned, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return coordinator.Planned{}, err
	}
	var labels []string
	n := 0
	for i, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		label, _, ok := strings.Cut(line, "\t")
		if !ok {
			return coordinator.Planned{}, fmt.Errorf("%s:%d: no tab between label and text", opts.Name, i+1)
		}
		if !slices.Contains(labels, label) {
			labels = append(labels, label)
		}
		n++
	}
	slices.Sort(labels)
	plan, _ := json.Marshal(map[string]any{"records": n, "block_records": opts.BlockRecords, "eval_split": opts.EvalSplit})
	return coordinator.Planned{Plan: plan, Records: n, Labels: labels}, nil
})

// Options shape a test cluster.
type Options struct {
	Members int // default 1
	// TLS gives member i TLS[i] (mutual TLS for raft and the API) and clients
	// TLS[len(TLS)-1]; nil: plain TCP.
	TLS []*tls.Config
	// Tweak changes member i's configuration before it starts.
	Tweak func(i int, cfg *coordinator.Config)
}

// Cluster is a coordinator cluster of in-process members.
type Cluster struct {
	T       testing.TB
	Secret  clusterkey.Secret
	Clock   *coordinator.ManualClock
	Gossip  *gossip.Static
	Servers []*coordinator.Server // nil while stopped
	dirs    []string
	raft    []string // addresses, kept across restarts
	api     []string
	tweak   func(int, *coordinator.Config)
	tls     []*tls.Config
}

// New starts a cluster: the first member bootstraps, the others join it. They stop
// when the test ends.
func New(t testing.TB, opts Options) *Cluster {
	t.Helper()
	secret, err := clusterkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	n := max(opts.Members, 1)
	c := &Cluster{T: t, Secret: secret, Clock: coordinator.NewManualClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)),
		Gossip: gossip.NewStatic(), tweak: opts.Tweak, tls: opts.TLS}
	for range n {
		c.dirs = append(c.dirs, t.TempDir())
	}
	// Registered after the first TempDir: cleanups run last first, so the members stop
	// before their directories are removed (a member writing into one while it goes
	// made the removal fail).
	t.Cleanup(func() {
		for i := range c.Servers {
			c.Stop(i)
		}
	})
	for i := range n {
		c.raft = append(c.raft, "127.0.0.1:0")
		c.api = append(c.api, "127.0.0.1:0")
		c.Servers = append(c.Servers, nil)
		c.start(i, i == 0)
		if i == 0 {
			c.Leader()
		}
	}
	c.WaitFor("every member recorded", func() bool {
		ms, err := c.Client().Members(c.Context())
		return err == nil && len(ms) == n && !slices.ContainsFunc(ms, func(m api.Member) bool { return m.APIAddr == "" || !m.Voter })
	})
	return c
}

// Logs says where the members log: stderr with $BERTNODE_TEST_LOG set, else nowhere.
func Logs() (*slog.Logger, io.Writer) {
	if os.Getenv("BERTNODE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})), os.Stderr
	}
	return slog.New(slog.DiscardHandler), io.Discard
}

// Config is member i's configuration: loopback, LoopbackTiming, the cluster's secret,
// gossip and clock, and --join to the running members unless it bootstraps.
func (c *Cluster) Config(i int, bootstrap bool) coordinator.Config {
	log, raftLog := Logs()
	cfg := coordinator.Config{DataDir: c.dirs[i], RaftAddr: c.raft[i], APIAddr: c.api[i], Bootstrap: bootstrap, Secret: c.Secret,
		Membership: c.Gossip, Planner: LinePlanner, Clock: c.Clock, Timing: coordinator.LoopbackTiming,
		Logger: log.With("test", c.T.Name(), "i", i), RaftLog: raftLog, GossipAddr: fmt.Sprintf("127.0.0.1:%d", 7946+i)}
	if c.tls != nil {
		cfg.TLS = c.tls[i]
	}
	if !bootstrap {
		for j, s := range c.Servers {
			if s != nil && j != i {
				cfg.Join = append(cfg.Join, s.APIAddr())
			}
		}
	}
	if c.tweak != nil {
		c.tweak(i, &cfg)
	}
	return cfg
}

func (c *Cluster) start(i int, bootstrap bool) *coordinator.Server {
	c.T.Helper()
	cfg := c.Config(i, bootstrap)
	s, err := coordinator.New(cfg)
	if err != nil {
		c.T.Fatalf("member %d: %v", i, err)
	}
	c.Servers[i] = s
	c.raft[i], c.api[i] = s.RaftAddr(), s.APIAddr()
	// As the member's gossip would join the others': the leader counts nodes' absence
	// from gossip only once it lists another coordinator.
	c.Gossip.Set(gossip.Member{Name: s.ID(), Addr: cfg.GossipAddr, Health: api.Alive,
		Meta: gossip.Meta{Role: gossip.Coordinator, API: s.APIAddr(), Raft: s.RaftAddr()}})
	return s
}

// Start restarts stopped member i from its data directory, on its old addresses.
func (c *Cluster) Start(i int) *coordinator.Server {
	c.T.Helper()
	return c.start(i, false)
}

// Stop stops member i gracefully (a leader hands its leadership over first).
func (c *Cluster) Stop(i int) {
	if s := c.Detach(i); s != nil {
		if err := s.Close(); err != nil {
			c.T.Logf("stopping member %d: %v", i, err)
		}
	}
}

// Detach forgets member i as if it were stopped and returns it, for the test to stop
// as it likes.
func (c *Cluster) Detach(i int) *coordinator.Server {
	s := c.Servers[i]
	c.Servers[i] = nil
	return s
}

// WaitFor polls cond until it holds, failing the test after a generous while.
func (c *Cluster) WaitFor(what string, cond func() bool) {
	c.T.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			c.T.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Leader waits for a member to lead and returns it.
func (c *Cluster) Leader() *coordinator.Server {
	c.T.Helper()
	var l *coordinator.Server
	c.WaitFor("a leader", func() bool {
		for _, s := range c.Servers {
			if s != nil && s.IsLeader() {
				l = s
				return true
			}
		}
		return false
	})
	return l
}

// Follower is a running member that does not lead.
func (c *Cluster) Follower() *coordinator.Server {
	c.T.Helper()
	l := c.Leader()
	for _, s := range c.Servers {
		if s != nil && s != l {
			return s
		}
	}
	c.T.Fatal("no follower")
	return nil
}

// Index is s's position in Servers.
func (c *Cluster) Index(s *coordinator.Server) int { return slices.Index(c.Servers, s) }

// Addrs are the running members' API addresses, or those of only.
func (c *Cluster) Addrs(only ...*coordinator.Server) []string {
	var addrs []string
	for _, s := range c.Servers {
		if s != nil && (len(only) == 0 || slices.Contains(only, s)) {
			addrs = append(addrs, s.APIAddr())
		}
	}
	return addrs
}

// Client talks to the running members, or to only.
func (c *Cluster) Client(only ...*coordinator.Server) *api.Client {
	cl := &api.Client{Addrs: c.Addrs(only...), Token: c.Secret.Token()}
	if c.tls != nil {
		cl.TLS = c.tls[len(c.tls)-1]
	}
	return cl
}

// Context bounds one call of a test.
func (c *Cluster) Context() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	c.T.Cleanup(cancel)
	return ctx
}

// AliveNode says in gossip that worker id is alive.
func (c *Cluster) AliveNode(id string) {
	c.Gossip.Set(gossip.Member{Name: id, Addr: "127.0.0.1:1", Meta: gossip.Meta{Role: gossip.Worker}, Health: api.Alive})
}

// TLS issues n mutual TLS configurations for 127.0.0.1 from one new CA, as
// tlsconfig.Peer reads them from --tls-cert, --tls-key and --tls-ca files.
func TLS(t testing.TB, n int) []*tls.Config {
	t.Helper()
	ca, err := tlsconfig.NewCA("coordtest CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]*tls.Config, n)
	for i := range out {
		pair, err := ca.Issue(fmt.Sprintf("member %d", i), []string{"127.0.0.1"}, tlsconfig.ServerAndClient, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		files := []string{filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "ca.pem")}
		for i, b := range [][]byte{pair.CertPEM, pair.KeyPEM, ca.CertPEM} {
			if err := os.WriteFile(files[i], b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if out[i], err = tlsconfig.Peer(files[0], files[1], files[2]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}
