package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/gossip"
	"github.com/bertnode/bertnode/internal/atomicfile"
	"github.com/bertnode/bertnode/internal/clusterkey"
	"github.com/bertnode/bertnode/node"
	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/train"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
)

func init() {
	subcommands = append(subcommands, joinCmd)
}

func joinCmd() *cobra.Command {
	var o struct {
		id, name, dataDir, device, devices, ringAddr, httpAddr, gossipAddr, profile string
		threads, maxRestarts                                                        int
		cache                                                                       int64
		noOverlap                                                                   bool
	}
	c := &cobra.Command{
		Use:   "join [COORDINATOR_ADDR[,ADDR...]]",
		Short: "Run a worker node: join the cluster and train (or predict) the jobs it is given",
		Long: `Runs a worker node: one process per device. It registers with the coordinator (any
member: give one or more API addresses, or set $BERTNODE_COORDINATOR), joins the cluster's
gossip, and trains whatever job the coordinator assigns it, averaging gradients with the
job's other nodes over the ring all-reduce; a predict job (bertnode infer) it works on
a unit of the input at a time, with no ring. It keeps its ID, checkpoints, final models and
audit logs under --data-dir. SIGINT or SIGTERM leaves the cluster: the job's other nodes go
on without it.

The coordinators' addresses come from the argument, else $BERTNODE_COORDINATOR, else the
config file; the cluster secret from --secret-file, else $BERTNODE_SECRET, else the config
file. With --tls-cert/--tls-key/--tls-ca the ring and the API calls use mutual TLS.

With --devices (a list, or all: every CUDA device) it runs one such node per device as a
process of its own, as torchrun's --nproc-per-node: worker N keeps its node ID under
--data-dir/worker-N and listens on the given ports + N (port 0: any free port); its
output lines start with [N device]. A worker that fails is started again, after 1 s,
then 2, 4... up to 30 s, at most --max-restarts times in a row (counted from zero again
once it has run 10 minutes); the node rejoins its job as any restarted node does.
SIGINT or SIGTERM asks every worker to leave, and kills those still running 30 s later.`,
		Example: `  bertnode join 10.0.0.1:7300 --device cuda:0 --data-dir /var/lib/bertnode/n1 --ring-addr 10.0.0.5:7400
  bertnode join 10.0.0.1:7300 --devices all --data-dir /var/lib/bertnode --ring-addr 10.0.0.5:7400`,
		Args: cobra.MaximumNArgs(1),
	}
	cf := addClusterFlags(c, false)
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 1 {
			cf.coordinators = []string{args[0]}
		}
		client, err := cf.client()
		if err != nil {
			return err
		}
		client.GiveUp = 0 // a node waits for the coordinators, however long they are away
		secret, err := cf.secret()
		if err != nil {
			return err
		}
		if o.devices != "" {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return joinDevices(ctx, cmd.Flags(), args, o.devices, o.maxRestarts, cmd.ErrOrStderr())
		}
		ringTLS, err := cf.tls(true)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(o.dataDir, 0o755); err != nil {
			return err
		}
		if o.id == "" {
			if o.id, err = nodeID(o.dataDir); err != nil {
				return err
			}
		}
		if o.name == "" {
			host, _ := os.Hostname()
			o.name = host + "/" + o.device
		}
		logger := log.New(cmd.ErrOrStderr(), o.id+" ", log.LstdFlags|log.Lmicroseconds)
		ringLn, err := net.Listen("tcp", o.ringAddr)
		if err != nil {
			return fmt.Errorf("--ring-addr: %w", err)
		}
		defer ringLn.Close()
		httpLn, err := net.Listen("tcp", o.httpAddr)
		if err != nil {
			return fmt.Errorf("--http-addr: %w", err)
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
		mux.Handle("/v1/", node.ResultsHandler(o.dataDir, secret.Token()))
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(httpLn)
		defer srv.Close()

		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		g, err := nodeGossip(ctx, client, o.dataDir, gossip.Config{Name: o.id, Bind: o.gossipAddr, Key: secret.Derive(clusterkey.Gossip),
			Meta: gossip.Meta{Role: gossip.Worker, Ring: ringLn.Addr().String(), HTTP: httpLn.Addr().String()}, Profile: o.profile, Logger: logger})
		if err != nil {
			return err
		}
		if _, port, err := net.SplitHostPort(g.Addr()); err == nil {
			if err := atomicfile.WriteFile(filepath.Join(o.dataDir, gossipPortFile), []byte(port+"\n"), 0o644); err != nil {
				return err
			}
		}
		defer g.Shutdown()
		defer g.Leave(2 * time.Second)

		threads, device := o.threads, o.device
		factory := func(ctx context.Context, job *api.Job, spec api.JobSpec, eval []shard.Record, total int64) (node.Replica, error) {
			if spec.Model == "toy" {
				return node.NewToy(node.ToyConfig{Labels: job.Labels, LR: spec.LR, ClipNorm: spec.ClipNorm, Seed: spec.Seed, Eval: eval})
			}
			ts, err := train.ParseSpec(job.Spec)
			if err != nil {
				return nil, err
			}
			uploads := filepath.Join(o.dataDir, "uploads")
			if ts.Model, err = node.FetchUpload(ctx, client, uploads, ts.Model, job); err != nil {
				return nil, fmt.Errorf("model: %w", err)
			}
			if ts.Tokenizer, err = node.FetchUpload(ctx, client, uploads, ts.Tokenizer, job); err != nil {
				return nil, fmt.Errorf("tokenizer: %w", err)
			}
			if ts.Distill.Teacher, err = node.FetchUpload(ctx, client, uploads, ts.Distill.Teacher, job); err != nil {
				return nil, fmt.Errorf("distill.teacher: %w", err)
			}
			ts.Threads, ts.Device = threads, device
			ts.Output = filepath.Join(o.dataDir, "jobs", job.ID)
			return train.NewReplica(ts, job.Labels, eval, total, logger.Writer())
		}
		agent := node.New(node.Config{
			ID: o.id, Name: o.name, Device: o.device, Dir: o.dataDir,
			RingAddr: ringLn.Addr().String(), HTTPAddr: httpLn.Addr().String(),
			Coordinator: client, Setup: node.PlanSetup(client, o.cache, factory),
			Infer:    node.PlanInfer(client, o.cache, newPredictor(client, o.dataDir, threads, device, logger)),
			Listener: ringLn.(*net.TCPListener), RingSecret: secret.Derive(clusterkey.Ring), RingTLS: ringTLS,
			Metrics: reg, Log: logger, NoOverlap: o.noOverlap,
		})
		logger.Printf("node %s: ring %s, http %s, gossip %s", o.id, ringLn.Addr(), httpLn.Addr(), g.Addr())
		return agent.Run(ctx)
	}
	f := c.Flags()
	f.StringVar(&o.id, "id", "", "node ID (default: generated once and kept in --data-dir)")
	f.StringVar(&o.name, "name", "", "name shown in bertnode nodes (default host/device)")
	f.StringVar(&o.dataDir, "data-dir", "bertnode-node", "where the node keeps its ID, checkpoints and models")
	f.StringVar(&o.device, "device", "cpu", "cpu, cuda or cuda:N")
	f.StringVar(&o.devices, "devices", "", "one worker process per device: a comma-separated `LIST` of cpu, cuda:N, or all (every CUDA device)")
	f.IntVar(&o.maxRestarts, "max-restarts", 3, "with --devices: how many times in a row a failed worker is started again")
	f.IntVar(&o.threads, "threads", 0, "CPU threads for libtorch and OpenBLAS (0: their defaults)")
	f.StringVar(&o.ringAddr, "ring-addr", "127.0.0.1:0", "address of the all-reduce listener, as peers reach it")
	f.StringVar(&o.httpAddr, "http-addr", "127.0.0.1:0", "address of the node's HTTP server (/metrics, /healthz, its models)")
	f.StringVar(&o.gossipAddr, "gossip-addr", "127.0.0.1:0", "address for cluster gossip (port 0: the port of the last run while free, else any; kept in --data-dir)")
	f.StringVar(&o.profile, "gossip-profile", gossip.ProfileLAN, "gossip timing: lan, or local (one machine: fast)")
	f.Int64Var(&o.cache, "cache-bytes", 256<<20, "memory for cached blocks of streamed training data")
	f.BoolVar(&o.noOverlap, "no-overlap", false, "all-reduce the gradient after backward, not during it (a session also stops overlapping when its first steps send nothing early)")
	return c
}

// nodeID reads the node's ID from its data directory, making one the first time.
func nodeID(dir string) (string, error) {
	path := filepath.Join(dir, "node-id")
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	id := "node-" + hex.EncodeToString(r[:])
	return id, atomicfile.WriteFile(path, []byte(id+"\n"), 0o644)
}

// gossipPortFile keeps, in a node's data directory, the gossip port it last bound.
const gossipPortFile = "gossip-port"

// startGossip starts gossip at cfg.Bind; given port 0 there, at the port the node
// bound last time if it still can, so that a node started again keeps its gossip
// address. Memberlist hands a dead member's name to a new address only after
// DeadNodeReclaimTime (30 s on a LAN): with a new port, a node restarted at once was
// dead to the cluster for 30-40 s. A last port another process has taken since, any.
func startGossip(cfg gossip.Config, dir string) (*gossip.Gossip, error) {
	host, port, err := net.SplitHostPort(cfg.Bind)
	if b, rerr := os.ReadFile(filepath.Join(dir, gossipPortFile)); err == nil && port == "0" && rerr == nil {
		last := cfg
		last.Bind = net.JoinHostPort(host, strings.TrimSpace(string(b)))
		if g, err := gossip.Start(last); err == nil {
			return g, nil
		}
	}
	return gossip.Start(cfg)
}

// nodeGossip starts gossip (startGossip) and joins the coordinators' members, retrying
// until it reaches one: they may still be starting. Then it keeps the node joined
// (rejoin).
func nodeGossip(ctx context.Context, client *api.Client, dir string, cfg gossip.Config) (*gossip.Gossip, error) {
	g, err := startGossip(cfg, dir)
	if err != nil {
		return nil, err
	}
	for {
		cl, err := joinCoordinators(ctx, client, g)
		var refused *api.Error
		if errors.As(err, &refused) { // a wrong secret, say: retrying will not help
			g.Shutdown()
			return nil, fmt.Errorf("the coordinator refused this node: %w", err)
		}
		if err == nil {
			// Not refused: a cluster may move from one profile to the other.
			if ours := cmp.Or(cfg.Profile, gossip.ProfileLAN); cl.GossipProfile != "" && cl.GossipProfile != ours {
				cfg.Logger.Printf("warning: this node's --gossip-profile is %s, the coordinators' %s: it detects failures on another clock than they do (dead members seen late, or live ones suspected)",
					ours, cl.GossipProfile)
			}
			go rejoin(ctx, client, g, cfg.Logger)
			return g, nil
		}
		cfg.Logger.Printf("joining the cluster's gossip: %v (retrying)", err)
		select {
		case <-ctx.Done():
			g.Shutdown()
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// joinCoordinators joins the gossip addresses the coordinators list; it returns what
// they said of the cluster.
func joinCoordinators(ctx context.Context, client *api.Client, g *gossip.Gossip) (*api.Cluster, error) {
	cl, err := client.Cluster(ctx)
	if err != nil {
		return nil, err
	}
	// Joining no address succeeds with no one: the coordinators may not have recorded
	// their gossip addresses yet.
	n, err := g.Join(cl.Gossip)
	if err == nil && n == 0 {
		err = errors.New("no coordinator's gossip address known yet")
	}
	return cl, err
}

// rejoin joins the coordinators' gossip again, once a second until ctx ends, while
// this node's gossip holds none of them alive or suspect. memberlist never contacts a
// member it declared dead again: after every coordinator was down at once (or cut off
// from the node for longer than gossip's suspicion), the restarted coordinators would
// gossip among themselves, this node with the other nodes alone, and the leader would
// call the node dead (not in gossip) though it works on, leaving its job waiting for
// nodes. Serf's reconnect does this job for Consul.
func rejoin(ctx context.Context, client *api.Client, g *gossip.Gossip, logger *log.Logger) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if slices.ContainsFunc(g.Members(), func(m gossip.Member) bool {
			return m.Meta.Role == gossip.Coordinator && (m.Health == api.Alive || m.Health == api.Suspect)
		}) {
			continue
		}
		// Bounded: the coordinators may all be down still; the next tick tries again.
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := joinCoordinators(cctx, client, g)
		cancel()
		if err == nil {
			logger.Printf("gossip held no live coordinator: joined the coordinators' gossip again")
		}
	}
}
