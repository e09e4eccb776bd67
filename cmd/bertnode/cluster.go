package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/gossip"
	"github.com/bertnode/bertnode/internal/atomicfile"
	"github.com/bertnode/bertnode/internal/clusterkey"
	"github.com/spf13/cobra"
)

// A local cluster: coordinators and nodes as separate processes of this binary on
// loopback, for trying bertnode on one machine and for the demo. Its directory holds
// the secret, each process's data directory and log, and cluster.json with their
// addresses and process IDs.

const clusterFile = "cluster.json"

type localProc struct {
	Name    string   `json:"name"`
	Env     []string `json:"env,omitempty"` // added to the environment, KEY=VALUE
	Role    string   `json:"role"` // coordinator | node
	PID     int      `json:"pid"`
	Args    []string `json:"args"`
	API     string   `json:"api,omitempty"`
	Raft    string   `json:"raft,omitempty"`
	Gossip  string   `json:"gossip"`
	Ring    string   `json:"ring,omitempty"`
	HTTP    string   `json:"http,omitempty"`
	Log     string   `json:"log"`
	DataDir string   `json:"data_dir"`
}

type localCluster struct {
	Dir        string      `json:"dir"`
	SecretFile string      `json:"secret_file"`
	Procs      []localProc `json:"procs"`
}

func (c *localCluster) apiAddrs() []string {
	var a []string
	for _, p := range c.Procs {
		if p.Role == "coordinator" {
			a = append(a, p.API)
		}
	}
	return a
}

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
	var dir, device, profile string
	var coords, nodes, threads int
	var env []string
	var timeout time.Duration
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
			if coords != 1 && coords != 3 && coords != 5 {
				return fmt.Errorf("--coordinators: %d: want 1, 3 or 5", coords)
			}
			if nodes < 0 || nodes > 16 {
				return fmt.Errorf("--nodes: %d is not in [0, 16]", nodes)
			}
			if threads <= 0 {
				threads = max(1, runtime.NumCPU()/max(1, nodes))
			}
			if _, err := os.Stat(filepath.Join(dir, clusterFile)); err == nil {
				if lc, err := readCluster(dir); err == nil && lc.running() > 0 {
					return fmt.Errorf("%s: a cluster is running there (bertnode cluster down --dir %s)", dir, dir)
				}
			}
			lc, err := startCluster(dir, coords, nodes, threads, device, profile, env)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			if err := lc.waitReady(ctx, coords, nodes); err != nil {
				lc.stop(10 * time.Second)
				return fmt.Errorf("the cluster did not come up: %w\n%s", err, lc.logTails())
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "cluster up in %s: %d coordinators, %d nodes\n", dir, coords, nodes)
			for _, p := range lc.Procs {
				fmt.Fprintf(out, "  %-12s %-11s pid %-7d log %s\n", p.Name, p.Role, p.PID, p.Log)
			}
			fmt.Fprintf(out, "\nto use it: eval \"$(bertnode cluster env --dir %s)\"\n", dir)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&dir, "dir", ".bertnode/cluster", "directory for the secret, data directories, logs and cluster.json")
	f.IntVar(&coords, "coordinators", 3, "coordinator processes: 1, 3 or 5")
	f.IntVar(&nodes, "nodes", 2, "worker node processes")
	f.IntVar(&threads, "threads", 0, "libtorch threads per node (default: cores / nodes)")
	f.StringVar(&device, "device", "cpu", "device of every node")
	// lan, not local: on a loaded machine local's 100 ms probes declare busy processes
	// dead; a killed process is found at once anyway, by its ring neighbours.
	f.StringVar(&profile, "gossip-profile", gossip.ProfileLAN, "gossip timing of every process: lan or local")
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
			lc, err := readCluster(dir)
			if err != nil {
				return err
			}
			killed := lc.stop(grace)
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
			lc, err := readCluster(dir)
			if err != nil {
				return err
			}
			secret, err := clusterkey.Load(lc.SecretFile)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "export BERTNODE_COORDINATOR=%s\nexport BERTNODE_SECRET=%s\n", strings.Join(lc.apiAddrs(), ","), secret)
			return nil
		},
	}
	c.Flags().StringVar(&dir, "dir", ".bertnode/cluster", "the cluster's directory")
	return c
}

func readCluster(dir string) (*localCluster, error) {
	b, err := os.ReadFile(filepath.Join(dir, clusterFile))
	if err != nil {
		return nil, err
	}
	var lc localCluster
	if err := json.Unmarshal(b, &lc); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, clusterFile), err)
	}
	return &lc, nil
}

func (c *localCluster) save() error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(c.Dir, clusterFile), b, 0o644)
}

// freePorts finds n free loopback ports. They are free when found; the processes bind
// them a moment later.
func freePorts(n int) ([]string, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	addrs := make([]string, n)
	for i := range addrs {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		addrs[i] = l.Addr().String()
	}
	return addrs, nil
}

func startCluster(dir string, coords, nodes, threads int, device, profile string, env []string) (*localCluster, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, err
	}
	secret, err := clusterkey.Generate()
	if err != nil {
		return nil, err
	}
	lc := &localCluster{Dir: abs, SecretFile: filepath.Join(abs, "secret")}
	if err := atomicfile.WriteFile(lc.SecretFile, []byte(secret.String()+"\n"), 0o600); err != nil {
		return nil, err
	}
	ports, err := freePorts(3*coords + 3*nodes)
	if err != nil {
		return nil, err
	}
	for i := range coords {
		p := localProc{Name: fmt.Sprintf("c%d", i+1), Role: "coordinator", Raft: ports[3*i], API: ports[3*i+1], Gossip: ports[3*i+2]}
		p.DataDir = filepath.Join(abs, p.Name)
		p.Args = []string{"coordinator", "--data-dir", p.DataDir, "--raft-addr", p.Raft, "--api-addr", p.API,
			"--gossip-addr", p.Gossip, "--secret-file", lc.SecretFile, "--gossip-profile", profile}
		if i == 0 {
			p.Args = append(p.Args, "--bootstrap")
		} else {
			p.Args = append(p.Args, "--join", lc.Procs[0].API)
		}
		lc.Procs = append(lc.Procs, p)
	}
	for i := range nodes {
		o := 3*coords + 3*i
		p := localProc{Name: fmt.Sprintf("n%d", i+1), Role: "node", Ring: ports[o], HTTP: ports[o+1], Gossip: ports[o+2]}
		p.DataDir = filepath.Join(abs, p.Name)
		p.Args = []string{"join", strings.Join(lc.apiAddrs(), ","), "--id", p.Name, "--data-dir", p.DataDir,
			"--ring-addr", p.Ring, "--http-addr", p.HTTP, "--gossip-addr", p.Gossip, "--secret-file", lc.SecretFile,
			"--device", device, "--threads", fmt.Sprint(threads), "--gossip-profile", profile}
		lc.Procs = append(lc.Procs, p)
	}
	for _, e := range env {
		name, kv, ok := strings.Cut(e, "=")
		i := slices.IndexFunc(lc.Procs, func(p localProc) bool { return p.Name == name })
		if !ok || i < 0 || !strings.Contains(kv, "=") {
			return nil, fmt.Errorf("--env %q: want PROCESS=KEY=VALUE with PROCESS one of c1, ..., n1, ...", e)
		}
		lc.Procs[i].Env = append(lc.Procs[i].Env, kv)
	}
	for i := range lc.Procs {
		if err := lc.start(i); err != nil {
			lc.stop(5 * time.Second)
			return nil, err
		}
		if i == 0 {
			time.Sleep(300 * time.Millisecond) // let the first coordinator bootstrap before others join it
		}
	}
	return lc, nil
}

// start starts process i, appending to its log, and records its PID.
func (c *localCluster) start(i int) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	p := &c.Procs[i]
	if err := os.MkdirAll(p.DataDir, 0o755); err != nil {
		return err
	}
	p.Log = filepath.Join(c.Dir, p.Name+".log")
	logf, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(exe, p.Args...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own session: the cluster outlives this command and the terminal's signals.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", p.Name, err)
	}
	p.PID = cmd.Process.Pid
	go cmd.Wait() // reap it if it dies while this process still runs
	return c.save()
}

// waitReady waits until the coordinators have a leader and all members, and every node
// is registered and alive.
func (c *localCluster) waitReady(ctx context.Context, coords, nodes int) error {
	secret, err := clusterkey.Load(c.SecretFile)
	if err != nil {
		return err
	}
	cl := &api.Client{Addrs: c.apiAddrs(), Token: secret.Token()}
	var last string
	for {
		if dead := c.exited(); dead != "" {
			return fmt.Errorf("%s exited", dead)
		}
		st, err := cl.Status(ctx)
		if err == nil {
			alive := 0
			for _, n := range st.Nodes {
				if n.Health == api.Alive {
					alive++
				}
			}
			if st.Leader != "" && len(st.Members) == coords && alive == nodes {
				return nil
			}
			last = fmt.Sprintf("leader %q, %d of %d coordinators, %d of %d nodes alive", st.Leader, len(st.Members), coords, alive, nodes)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return errors.New(last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// exited names a process of the cluster that is no longer running.
func (c *localCluster) exited() string {
	for _, p := range c.Procs {
		if !alive(p.PID) {
			return p.Name
		}
	}
	return ""
}

func (c *localCluster) running() int {
	n := 0
	for _, p := range c.Procs {
		if alive(p.PID) {
			n++
		}
	}
	return n
}

func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	// A zombie still answers signal 0: look at its state too.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

// stop ends the processes, nodes first, and returns how many needed SIGKILL.
func (c *localCluster) stop(grace time.Duration) int {
	killed := 0
	for _, role := range []string{"node", "coordinator"} {
		var pids []int
		for _, p := range c.Procs {
			if p.Role == role && alive(p.PID) {
				syscall.Kill(p.PID, syscall.SIGTERM)
				pids = append(pids, p.PID)
			}
		}
		deadline := time.Now().Add(grace)
		for _, pid := range pids {
			for alive(pid) && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			if alive(pid) {
				syscall.Kill(pid, syscall.SIGKILL)
				killed++
			}
		}
	}
	return killed
}

// logTails is the end of every process's log, for an error message.
func (c *localCluster) logTails() string {
	var b strings.Builder
	for _, p := range c.Procs {
		data, _ := os.ReadFile(p.Log)
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		fmt.Fprintf(&b, "--- %s (%s):\n%s\n", p.Name, p.Log, strings.Join(lines[max(0, len(lines)-8):], "\n"))
	}
	return b.String()
}
