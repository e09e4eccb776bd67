package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/coordinator"
	"github.com/bertnode/bertnode/gossip"
	"github.com/bertnode/bertnode/internal/clusterkey"
	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/stream"
	"github.com/spf13/cobra"
)

func init() { subcommands = append(subcommands, newCoordinatorCmd) }

func newCoordinatorCmd() *cobra.Command {
	var (
		dataDir, raftAddr, apiAddr, gossipAddr, advertise, profile string
		bootstrap, recoverAlone                                    bool
		expect                                                     int
		join                                                       []string
		timing                                                     coordinator.Timing
		maxBlob                                                    int64
		nodeGC                                                     time.Duration
	)
	c := &cobra.Command{
		Use:   "coordinator --data-dir DIR (--bootstrap | --join ADDR | --bootstrap-expect N --join ADDRS)",
		Short: "Run a coordinator: one member of the cluster's replicated catalog",
		Long: `Runs one coordinator member: raft (the replicated catalog of nodes, jobs and
blobs, in --data-dir), the HTTP API that nodes and the CLI talk to, and gossip.

Start the first member of a new cluster with --bootstrap, then the others (3 or 5
in all, so that the cluster survives the loss of 1 or 2) with --join and the API
address of any member. Or start every member alike, as Consul's bootstrap_expect:
--bootstrap-expect 3 --join with the three API addresses; once a member finds all
three, none in a cluster yet, they form one (one found in a cluster already is
joined instead). A member restarted with its data directory needs none of these
flags, and ignores them.
Every member holds every blob (uploaded data, plans, models), so keep room for them.

The cluster secret comes from --secret-file, else $` + clusterkey.Env + `, else the config
file (bertnode keygen makes one). On SIGTERM or Ctrl-C a leader hands its leadership
to another member before it stops.

Outage recovery: when most members are lost for good (2 of 3, 3 of 5), the rest
cannot elect a leader and the catalog stands still. Stop the survivors, restart the
one whose state to keep (the most recent: bertnode logs shows it) with --recover: it
starts as a cluster of itself alone, with every job, node and blob it holds. Remove
the lost members from the catalog (bertnode members remove ID), then start new
members, or the other survivors with emptied data directories, with --join.

Upgrades: restart one member at a time with the new build, waiting until bertnode
members lists it again, with its new protocol, before the next. A member records the
coordinator protocol its build speaks (the replicated commands it can apply); until
every member speaks the one a command needs, the leader refuses the command (409,
naming the members to upgrade) rather than let an older member miss it. Nodes whose
lease renewals are refused let their leases run out, as before renewals; a predict
job, a deletion, a drain or a node removal is refused until then, and an fp16 job's
loss scale is not recorded (bertnode status shows none). A member whose
build is too old for a command in its log or a snapshot (one rolled back, or joined
on an older build) stops with an error naming the command or snapshot and the
protocol it needs, at every start: start it on that build or later (after a
rollback, the one it ran before) with its data directory as it is, and it applies
the command from its log or restores the snapshot; emptying the directory does not
help.
docs/cluster.md, "Rolling upgrades", has the details.

Addresses: --api-addr, --raft-addr and --gossip-addr are where this member listens;
with an unspecified host (0.0.0.0) give --advertise, the host others reach it at.`,
		Example: `  bertnode coordinator --data-dir /var/lib/bertnode --bootstrap --secret-file /etc/bertnode/secret \
    --api-addr 0.0.0.0:7300 --raft-addr 0.0.0.0:7301 --gossip-addr 0.0.0.0:7302 --advertise 10.0.0.1
  bertnode coordinator --data-dir /var/lib/bertnode --join 10.0.0.1:7300 ... --advertise 10.0.0.2`,
		Args: cobra.NoArgs,
	}
	cf := addClusterFlags(c, false)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		if dataDir == "" {
			return errors.New("--data-dir: a directory is required")
		}
		if bootstrap && len(join) > 0 || recoverAlone && (bootstrap || len(join) > 0) {
			return errors.New("--bootstrap, --join and --recover: one or none of them")
		}
		if expect < 0 || expect > 0 && (bootstrap || recoverAlone) {
			return errors.New("--bootstrap-expect: a count of members, with --join and without --bootstrap or --recover")
		}
		var err error
		if timing.NodeGC, err = nodeGCTiming(nodeGC); err != nil {
			return err
		}
		secret, err := cf.secret()
		if err != nil {
			return err
		}
		tlsConf, err := cf.tls(true)
		if err != nil {
			return err
		}
		adv := func(addr string) (string, error) {
			if advertise == "" {
				return "", nil
			}
			_, port, err := net.SplitHostPort(addr)
			return net.JoinHostPort(advertise, port), err
		}
		raftAdv, err := adv(raftAddr)
		if err != nil {
			return fmt.Errorf("--raft-addr: %w", err)
		}
		apiAdv, err := adv(apiAddr)
		if err != nil {
			return fmt.Errorf("--api-addr: %w", err)
		}
		gossipAdv, err := adv(gossipAddr)
		if err != nil {
			return fmt.Errorf("--gossip-addr: %w", err)
		}
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return err
		}
		id, err := coordinator.MemberID(dataDir)
		if err != nil {
			return err
		}
		logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
		g, err := gossip.Start(gossip.Config{Name: id, Bind: gossipAddr, Advertise: gossipAdv, Key: secret.Derive(clusterkey.Gossip),
			Meta: gossip.Meta{Role: gossip.Coordinator}, Profile: profile, Logger: log.New(cmd.ErrOrStderr(), "gossip: ", log.LstdFlags)})
		if err != nil {
			return err
		}
		defer g.Shutdown()
		s, err := coordinator.New(coordinator.Config{
			DataDir: dataDir, RaftAddr: raftAddr, RaftAdvertise: raftAdv, APIAddr: apiAddr, APIAdvertise: apiAdv,
			GossipAddr: g.Addr(), GossipProfile: profile, Bootstrap: bootstrap, BootstrapExpect: expect, Join: join, Recover: recoverAlone, Secret: secret, TLS: tlsConf, Membership: g,
			Planner: streamPlanner, Timing: timing, MaxBlobSize: maxBlob, Logger: logger, RaftLog: cmd.ErrOrStderr(),
		})
		if err != nil {
			return err
		}
		s.Handle("GET /v1/datasets/{plan}/blocks/{i}", stream.Handler(blockFiles(s)))
		if err := g.SetMeta(gossip.Meta{Role: gossip.Coordinator, API: s.APIAddr(), Raft: s.RaftAddr()}); err != nil {
			logger.Warn("gossip metadata", "err", err)
		}
		ctx, stop := interruptible(cmd)
		defer stop()
		go joinGossip(ctx, s, g, join, secret, tlsConf, logger)
		fmt.Fprintf(cmd.OutOrStdout(), "coordinator %s: API %s, raft %s, gossip %s\n", s.ID(), s.APIAddr(), s.RaftAddr(), g.Addr())
		<-ctx.Done()
		fmt.Fprintf(cmd.OutOrStdout(), "coordinator %s: stopping\n", s.ID())
		err = s.Close()
		if lerr := g.Leave(2 * time.Second); lerr != nil {
			logger.Warn("gossip leave", "err", lerr)
		}
		return err
	}
	f := c.Flags()
	f.StringVar(&dataDir, "data-dir", "", "the member's state: raft log and snapshots, blobs, its ID (`DIR`)")
	f.BoolVar(&bootstrap, "bootstrap", false, "start a new cluster with this member alone")
	f.IntVar(&expect, "bootstrap-expect", 0, "start a new cluster of `N` members once this one finds N, itself included, at the --join addresses (none in a cluster yet): the same flags on every member")
	f.StringSliceVar(&join, "join", nil, "join the cluster of the member whose API is at `ADDR` (comma-separated: any of several)")
	f.BoolVar(&recoverAlone, "recover", false, "outage recovery: restart this member as a cluster of itself alone, keeping its state")
	f.StringVar(&apiAddr, "api-addr", "127.0.0.1:7300", "where the HTTP API listens")
	f.StringVar(&raftAddr, "raft-addr", "127.0.0.1:7301", "where raft listens")
	f.StringVar(&gossipAddr, "gossip-addr", "127.0.0.1:7302", "where gossip listens (TCP and UDP)")
	f.StringVar(&advertise, "advertise", "", "the `HOST` others reach this member at (default: the host of each address)")
	f.StringVar(&profile, "gossip-profile", gossip.ProfileLAN, "gossip timing: lan, or local (one machine: fast)")
	f.DurationVar(&timing.Heartbeat, "raft-heartbeat", 0, "raft's heartbeat timeout (default raft's 1s; 0: default)")
	f.DurationVar(&timing.Election, "raft-election", 0, "raft's election timeout (default 1s)")
	f.DurationVar(&timing.LeaderLease, "raft-lease", 0, "raft's leader lease (default 500ms)")
	f.DurationVar(&timing.Commit, "raft-commit", 0, "raft's commit timeout (default 50ms)")
	f.Int64Var(&maxBlob, "max-blob-size", 64<<30, "the largest upload, in bytes")
	f.DurationVar(&timing.BlobGrace, "blob-grace", 0, "how long an upload no job references stays (default 1h; 0: default)")
	f.DurationVar(&timing.BlobFileGrace, "blob-file-grace", 0, "how old a blob file the state no longer lists is before it is removed from disk (default 10m)")
	f.DurationVar(&timing.DeletedRetention, "deleted-retention", 0, "how long the list of deleted jobs, from which nodes remove their files of them, keeps a job after its deletion (default 720h)")
	f.DurationVar(&nodeGC, "node-gc", 24*time.Hour, "how long a node stays in the catalog once dead or left in gossip, unless a running job needs it (0: for ever; bertnode nodes remove takes one out at once)")
	return c
}

// nodeGCTiming is --node-gc as coordinator.Timing.NodeGC takes it: 0 there is the
// default, and never is negative.
func nodeGCTiming(d time.Duration) (time.Duration, error) {
	switch {
	case d < 0:
		return 0, fmt.Errorf("--node-gc %s: want a duration of 0 (never) or more", d)
	case d == 0:
		return -1, nil
	}
	return d, nil
}

// joinGossip joins the gossip of the cluster's other members: those --join's member
// reports, or those in this member's state after a restart. It tries until one
// answers or there is nobody else to join: a restarted member whose state does not
// list the others yet (raft replays the log once it hears from the leader) waits for
// it, as long as raft's configuration holds other servers. One that gave up would
// see no other coordinator nor any node, and as leader call every node dead.
func joinGossip(ctx context.Context, s *coordinator.Server, g *gossip.Gossip, join []string, secret clusterkey.Secret, tlsConf *tls.Config, logger *slog.Logger) {
	for {
		var addrs []string
		s.Read(func(st *coordinator.State) {
			for _, m := range st.Members {
				if m.ID != s.ID() && m.GossipAddr != "" {
					addrs = append(addrs, m.GossipAddr)
				}
			}
		})
		if len(join) > 0 && len(addrs) == 0 {
			cl := &api.Client{Addrs: join, Token: secret.Token(), TLS: tlsConf}
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if c, err := cl.Cluster(cctx); err == nil {
				addrs = c.Gossip
			}
			cancel()
		}
		if len(addrs) > 0 {
			if n, err := g.Join(addrs); n > 0 {
				return
			} else if err != nil {
				logger.Debug("gossip join", "addrs", addrs, "err", err)
			}
		} else if len(join) == 0 && s.Alone() {
			return // alone, or the others will join this one
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
}

// streamPlanner plans a dataset with the stream package.
var streamPlanner = coordinator.PlannerFunc(func(ctx context.Context, path string, data shard.Spec, o coordinator.PlanOptions) (coordinator.Planned, error) {
	p, err := stream.Build(path, data, stream.Options{BlockRecords: o.BlockRecords, EvalSplit: o.EvalSplit, Task: o.Task, Name: o.Name})
	if err != nil {
		return coordinator.Planned{}, err
	}
	b, err := json.Marshal(p)
	return coordinator.Planned{Plan: b, Records: p.Records, Labels: p.Labels}, err
})

// blockFiles opens what stream.Handler serves a block from: the plan (a blob), and the
// file it plans, an uploaded blob (the plan's file is "blob:<sha256>") or a shared path.
// Plans are immutable, so parsed ones are kept (a few dozen at most).
func blockFiles(s *coordinator.Server) func(planID string) (*stream.Plan, io.ReaderAt, error) {
	var mu sync.Mutex
	plans := map[string]*stream.Plan{}
	return func(planID string) (*stream.Plan, io.ReaderAt, error) {
		if !coordinator.ValidSHA(planID) {
			return nil, nil, fmt.Errorf("plan %q: %w", planID, fs.ErrNotExist)
		}
		mu.Lock()
		p := plans[planID]
		mu.Unlock()
		if p == nil {
			b, err := os.ReadFile(s.BlobPath(planID))
			if err != nil {
				return nil, nil, fmt.Errorf("plan %s: %w", planID, err)
			}
			p = new(stream.Plan)
			if err := json.Unmarshal(b, p); err != nil {
				return nil, nil, fmt.Errorf("plan %s: %w", planID, err)
			}
			mu.Lock()
			if len(plans) >= 64 {
				clear(plans)
			}
			plans[planID] = p
			mu.Unlock()
		}
		path := p.File
		if sha, ok := strings.CutPrefix(p.File, "blob:"); ok {
			path = s.BlobPath(sha)
		}
		f, err := os.Open(path)
		if err != nil {
			return nil, nil, fmt.Errorf("plan %s: data: %w", planID, err)
		}
		return p, f, nil
	}
}
