package main

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/bertnode/bertnode/gossip"
	"github.com/bertnode/bertnode/internal/clusterkey"
	"github.com/bertnode/bertnode/localcluster"
	"github.com/spf13/cobra"
)

func init() {
	subcommands = append(subcommands, func() *cobra.Command {
		c := &cobra.Command{
			Use:   "cluster",
			Short: "Start or stop a local cluster: coordinators and nodes as processes on loopback",
		}
		c.AddCommand(clusterUpCmd(), clusterDownCmd(), clusterEnvCmd())
		return c
	})
}

func clusterUpCmd() *cobra.Command {
	o := localcluster.Options{Dir: ".bertnode/cluster", Coordinators: 3, Nodes: 2, Device: "cpu", GossipProfile: gossip.ProfileLAN}
	var timeout time.Duration
	var env []string
	c := &cobra.Command{
		Use:   "up",
		Short: "Start a local cluster and wait until it is ready",
		Long: `Starts --coordinators coordinator processes (a raft cluster of 1, 3 or 5) and --nodes
worker processes of this binary on 127.0.0.1, with a new cluster secret, all under --dir
(data directories, logs, cluster.json). It returns once a leader is elected and every node
is registered and alive. Then point the other commands at it with

  eval "$(bertnode cluster env --dir DIR)"

and stop it with bertnode cluster down --dir DIR.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Coordinators != 1 && o.Coordinators != 3 && o.Coordinators != 5 {
				return fmt.Errorf("--coordinators: %d: want 1, 3 or 5", o.Coordinators)
			}
			if o.Nodes < 0 || o.Nodes > 16 {
				return fmt.Errorf("--nodes: %d is not in [0, 16]", o.Nodes)
			}
			if o.Threads <= 0 {
				o.Threads = max(1, runtime.NumCPU()/max(1, o.Nodes))
			}
			o.Env = map[string][]string{}
			for _, e := range env {
				name, kv, ok := strings.Cut(e, "=")
				if !ok || !strings.Contains(kv, "=") {
					return fmt.Errorf("--env %q: want PROCESS=KEY=VALUE", e)
				}
				o.Env[name] = append(o.Env[name], kv)
			}
			if lc, err := localcluster.Read(o.Dir); err == nil && lc.Running() > 0 {
				return fmt.Errorf("%s: a cluster is running there (bertnode cluster down --dir %s)", o.Dir, o.Dir)
			}
			lc, err := localcluster.Start(o)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			if err := lc.WaitReady(ctx); err != nil {
				lc.Stop(10 * time.Second)
				return fmt.Errorf("the cluster did not come up: %w\n%s", err, lc.LogTails())
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "cluster up in %s: %d coordinators, %d nodes\n", o.Dir, o.Coordinators, o.Nodes)
			for _, p := range lc.Procs {
				fmt.Fprintf(out, "  %-12s %-11s pid %-7d log %s\n", p.Name, p.Role, p.PID, p.Log)
			}
			fmt.Fprintf(out, "\nto use it: eval \"$(bertnode cluster env --dir %s)\"\n", o.Dir)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&o.Dir, "dir", o.Dir, "directory for the secret, data directories, logs and cluster.json")
	f.IntVar(&o.Coordinators, "coordinators", o.Coordinators, "coordinator processes: 1, 3 or 5")
	f.IntVar(&o.Nodes, "nodes", o.Nodes, "worker node processes")
	f.IntVar(&o.Threads, "threads", 0, "CPU threads per node, for libtorch and OpenBLAS (default: cores / nodes)")
	f.StringVar(&o.Device, "device", o.Device, "device of every node")
	// lan, not local: on a loaded machine local's 100 ms probes declare busy processes
	// dead; a killed process is found at once anyway, by its ring neighbours.
	f.StringVar(&o.GossipProfile, "gossip-profile", o.GossipProfile, "gossip timing of every process: lan or local")
	f.DurationVar(&timeout, "timeout", 90*time.Second, "how long to wait for the cluster to be ready")
	f.StringArrayVar(&env, "env", nil, "PROCESS=KEY=VALUE: an environment variable for one process (n2=BERTNODE_FAILPOINTS=... for fault tests)")
	return c
}

func clusterDownCmd() *cobra.Command {
	var dir string
	var grace time.Duration
	c := &cobra.Command{
		Use:   "down",
		Short: "Stop a local cluster started with cluster up",
		Long: `Sends SIGTERM to the nodes, then to the coordinators, waits up to --grace for them to
exit and kills what remains with SIGKILL. The directory (data, logs) stays for inspection.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			lc, err := localcluster.Read(dir)
			if err != nil {
				return err
			}
			killed := lc.Stop(grace)
			fmt.Fprintf(cmd.OutOrStdout(), "cluster in %s stopped", dir)
			if killed > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), " (%d processes needed SIGKILL)", killed)
			}
			fmt.Fprintln(cmd.OutOrStdout())
			return nil
		},
	}
	c.Flags().StringVar(&dir, "dir", ".bertnode/cluster", "the cluster's directory")
	c.Flags().DurationVar(&grace, "grace", 15*time.Second, "how long each process has to exit after SIGTERM")
	return c
}

func clusterEnvCmd() *cobra.Command {
	var dir string
	c := &cobra.Command{
		Use:   "env",
		Short: "Print the environment that points the other commands at a local cluster",
		Long: `Prints export lines for BERTNODE_COORDINATOR and BERTNODE_SECRET, for a shell to eval:

  eval "$(bertnode cluster env --dir DIR)"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			lc, err := localcluster.Read(dir)
			if err != nil {
				return err
			}
			secret, err := clusterkey.Load(lc.SecretFile)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "export BERTNODE_COORDINATOR=%s\nexport BERTNODE_SECRET=%s\n", strings.Join(lc.APIAddrs(), ","), secret)
			return nil
		},
	}
	c.Flags().StringVar(&dir, "dir", ".bertnode/cluster", "the cluster's directory")
	return c
}
