// Package localcluster runs a bertnode cluster as processes on one machine: coordinators
// and worker nodes started from the bertnode binary, on loopback (or, for nodes, inside
// network namespaces a fault suite made), with their data directories and logs under
// one directory and cluster.json recording their addresses and process IDs. It is what
// `bertnode cluster up|down` and the fault suite run.
package localcluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/internal/atomicfile"
	"github.com/bertnode/bertnode/internal/clusterkey"
)

// File is the cluster's record in its directory.
const File = "cluster.json"

// Proc is one process of the cluster.
type Proc struct {
	Name string   `json:"name"`
	Role string   `json:"role"` // coordinator | node
	PID  int      `json:"pid"`
	Args []string `json:"args"`
	Env  []string `json:"env,omitempty"` // added to the environment, KEY=VALUE
	// Netns, when set, is the network namespace the process runs in.
	Netns   string `json:"netns,omitempty"`
	API     string `json:"api,omitempty"`
	Raft    string `json:"raft,omitempty"`
	Gossip  string `json:"gossip"`
	Ring    string `json:"ring,omitempty"`
	HTTP    string `json:"http,omitempty"`
	Log     string `json:"log"`
	DataDir string `json:"data_dir"`
}

// Cluster is a local cluster.
type Cluster struct {
	Dir        string `json:"dir"`
	SecretFile string `json:"secret_file"`
	// Exe is the binary the processes run (default: this process's).
	Exe   string `json:"exe"`
	Procs []Proc `json:"procs"`
}

// Options shape a cluster.
type Options struct {
	Dir           string
	Coordinators  int // 1, 3 or 5
	Nodes         int
	Threads       int // libtorch threads per node
	Device        string
	GossipProfile string
	// Env adds KEY=VALUE to one process's environment, by process name (c1, n2...).
	Env map[string][]string
	// NodeHost, when set, places node i (0-based) in a network namespace: it returns
	// the namespace and the IP the node listens on there; CoordHost does the same for
	// coordinator i. Coordinators left in this namespace then listen on Gateway, an
	// address the namespaces reach.
	NodeHost  func(i int) (netns, ip string, err error)
	CoordHost func(i int) (netns, ip string, err error)
	Gateway   string
	Exe       string
}

// APIAddrs are the coordinators' API addresses.
func (c *Cluster) APIAddrs() []string {
	var a []string
	for _, p := range c.Procs {
		if p.Role == "coordinator" {
			a = append(a, p.API)
		}
	}
	return a
}

// Proc is the process named name, or nil.
func (c *Cluster) Proc(name string) *Proc {
	i := slices.IndexFunc(c.Procs, func(p Proc) bool { return p.Name == name })
	if i < 0 {
		return nil
	}
	return &c.Procs[i]
}

// Client is an API client for the cluster.
func (c *Cluster) Client() (*api.Client, error) {
	secret, err := clusterkey.Load(c.SecretFile)
	if err != nil {
		return nil, err
	}
	return &api.Client{Addrs: c.APIAddrs(), Token: secret.Token()}, nil
}

// Read reads the record of the cluster in dir.
func Read(dir string) (*Cluster, error) {
	b, err := os.ReadFile(filepath.Join(dir, File))
	if err != nil {
		return nil, err
	}
	var lc Cluster
	if err := json.Unmarshal(b, &lc); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, File), err)
	}
	return &lc, nil
}

func (c *Cluster) save() error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(c.Dir, File), b, 0o644)
}

// freePorts finds n ports on host that are free for TCP and UDP (gossip uses both)
// when found, and not in used (ports handed to the cluster's processes that may not
// have bound them yet); the processes bind them a moment later. They are drawn below Linux's
// ephemeral range (32768-60999), where the outgoing connections of the processes
// starting meanwhile take their ports: a port the kernel hands out from that range
// between our check and the process's bind made cluster up fail now and then.
func freePorts(host string, n int, used map[string]bool) ([]string, error) {
	var held []io.Closer
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	addrs := make([]string, 0, n)
	for tries := 0; len(addrs) < n; tries++ {
		if tries == 1000 {
			return nil, fmt.Errorf("no %d free ports on %s between %d and %d", n, host, portLo, portHi)
		}
		addr := net.JoinHostPort(host, strconv.Itoa(portLo+rand.IntN(portHi-portLo)))
		if used[addr] {
			continue
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		held = append(held, l)
		u, err := net.ListenPacket("udp", addr)
		if err != nil {
			continue
		}
		held = append(held, u)
		addrs = append(addrs, addr)
	}
	return addrs, nil
}

// The ports freePorts draws from.
const portLo, portHi = 20000, 32768

// Start starts a cluster: a new secret, the coordinators (the first bootstraps, the
// others join it), then the nodes. It does not wait for them: see WaitReady.
func Start(o Options) (*Cluster, error) {
	abs, err := filepath.Abs(o.Dir)
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
	exe := o.Exe
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	lc := &Cluster{Dir: abs, SecretFile: filepath.Join(abs, "secret"), Exe: exe}
	if err := atomicfile.WriteFile(lc.SecretFile, []byte(secret.String()+"\n"), 0o600); err != nil {
		return nil, err
	}
	for i := range o.Coordinators {
		p := Proc{Name: fmt.Sprintf("c%d", i+1), Role: "coordinator"}
		ports, err := place(o.CoordHost, i, o.Gateway, lc.used(), &p)
		if err != nil {
			return nil, err
		}
		p.Raft, p.API, p.Gossip = ports[0], ports[1], ports[2]
		p.DataDir = filepath.Join(abs, p.Name)
		p.Args = []string{"coordinator", "--data-dir", p.DataDir, "--raft-addr", p.Raft, "--api-addr", p.API,
			"--gossip-addr", p.Gossip, "--secret-file", lc.SecretFile, "--gossip-profile", o.GossipProfile}
		if i == 0 {
			p.Args = append(p.Args, "--bootstrap")
		} else {
			p.Args = append(p.Args, "--join", lc.Procs[0].API)
		}
		lc.Procs = append(lc.Procs, p)
	}
	for i := range o.Nodes {
		p, err := lc.nodeProc(o, fmt.Sprintf("n%d", i+1), i)
		if err != nil {
			return nil, err
		}
		lc.Procs = append(lc.Procs, p)
	}
	for name, env := range o.Env {
		p := lc.Proc(name)
		if p == nil {
			return nil, fmt.Errorf("env for %q: no such process (c1, ..., n1, ...)", name)
		}
		p.Env = append(p.Env, env...)
	}
	for i := range lc.Procs {
		if err := lc.start(i); err != nil {
			lc.Stop(5 * time.Second)
			return nil, err
		}
		if i == 0 {
			time.Sleep(300 * time.Millisecond) // let the first coordinator bootstrap before others join it
		}
	}
	return lc, nil
}

// place puts a process in the namespace host(i) gives, when host is set, and returns
// three addresses for it to listen on: fixed ports in its namespace (nothing else lives
// there), else free ports on loopback or on the gateway.
func place(host func(int) (string, string, error), i int, gateway string, used map[string]bool, p *Proc) ([]string, error) {
	if host == nil {
		if gateway == "" {
			gateway = "127.0.0.1"
		}
		return freePorts(gateway, 3, used)
	}
	ns, ip, err := host(i)
	if err != nil {
		return nil, err
	}
	p.Netns = ns
	return []string{net.JoinHostPort(ip, "7400"), net.JoinHostPort(ip, "7401"), net.JoinHostPort(ip, "7402")}, nil
}

// used are the addresses the cluster's processes listen on.
func (c *Cluster) used() map[string]bool {
	out := map[string]bool{}
	for _, p := range c.Procs {
		for _, a := range []string{p.Raft, p.API, p.Gossip, p.Ring, p.HTTP} {
			out[a] = a != ""
		}
	}
	return out
}

// nodeProc describes node name, the i-th (placed by o.NodeHost when set).
func (c *Cluster) nodeProc(o Options, name string, i int) (Proc, error) {
	p := Proc{Name: name, Role: "node"}
	ports, err := place(o.NodeHost, i, "", c.used(), &p)
	if err != nil {
		return p, err
	}
	p.Ring, p.HTTP, p.Gossip = ports[0], ports[1], ports[2]
	p.DataDir = filepath.Join(c.Dir, p.Name)
	p.Args = []string{"join", strings.Join(c.APIAddrs(), ","), "--id", p.Name, "--data-dir", p.DataDir,
		"--ring-addr", p.Ring, "--http-addr", p.HTTP, "--gossip-addr", p.Gossip, "--secret-file", c.SecretFile,
		"--device", o.Device, "--threads", fmt.Sprint(o.Threads), "--gossip-profile", o.GossipProfile}
	return p, nil
}

// AddNode adds a node process named name to a running cluster and starts it, placed
// as o places nodes (o.NodeHost's index is the node's position among the nodes).
func (c *Cluster) AddNode(o Options, name string) error {
	n := 0
	for _, p := range c.Procs {
		if p.Role == "node" {
			n++
		}
	}
	p, err := c.nodeProc(o, name, n)
	if err != nil {
		return err
	}
	c.Procs = append(c.Procs, p)
	return c.start(len(c.Procs) - 1)
}

// Restart starts process name again (it must have exited), with its data directory.
func (c *Cluster) Restart(name string) error {
	i := slices.IndexFunc(c.Procs, func(p Proc) bool { return p.Name == name })
	if i < 0 {
		return fmt.Errorf("no process %s", name)
	}
	if Alive(c.Procs[i].PID) {
		return fmt.Errorf("%s is running", name)
	}
	return c.start(i)
}

// start starts process i, appending to its log, and records its PID.
func (c *Cluster) start(i int) error {
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
	cmd := exec.Command(c.Exe, p.Args...)
	if p.Netns != "" {
		cmd = exec.Command("ip", append([]string{"netns", "exec", p.Netns, c.Exe}, p.Args...)...)
	}
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own session: the cluster outlives the command that started it, and the
	// terminal's signals.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", p.Name, err)
	}
	p.PID = cmd.Process.Pid
	go cmd.Wait() // reap it if it dies while this process still runs
	return c.save()
}

// WaitReady waits until the coordinators have a leader and all members recorded (with
// their API addresses), and every node is registered and alive.
func (c *Cluster) WaitReady(ctx context.Context) error {
	cl, err := c.Client()
	if err != nil {
		return err
	}
	coords, nodes := 0, 0
	for _, p := range c.Procs {
		if p.Role == "coordinator" {
			coords++
		} else {
			nodes++
		}
	}
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
			// A member of raft's configuration is listed before the state records it,
			// without its API address, which clients look members up by.
			recorded := 0
			for _, m := range st.Members {
				if m.APIAddr != "" {
					recorded++
				}
			}
			if st.Leader != "" && recorded == coords && alive == nodes {
				return nil
			}
			last = fmt.Sprintf("leader %q, %d of %d coordinators recorded, %d of %d nodes alive", st.Leader, recorded, coords, alive, nodes)
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
func (c *Cluster) exited() string {
	for _, p := range c.Procs {
		if !Alive(p.PID) {
			return p.Name
		}
	}
	return ""
}

// Running counts the processes still running.
func (c *Cluster) Running() int {
	n := 0
	for _, p := range c.Procs {
		if Alive(p.PID) {
			n++
		}
	}
	return n
}

// Alive says whether pid is a running process (a zombie is not).
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

// Stop ends the processes, nodes first, and returns how many needed SIGKILL. A
// stopped (SIGSTOP) process is continued so that it can exit.
func (c *Cluster) Stop(grace time.Duration) int {
	killed := 0
	for _, role := range []string{"node", "coordinator"} {
		var pids []int
		for _, p := range c.Procs {
			if p.Role == role && Alive(p.PID) {
				syscall.Kill(p.PID, syscall.SIGTERM)
				syscall.Kill(p.PID, syscall.SIGCONT)
				pids = append(pids, p.PID)
			}
		}
		deadline := time.Now().Add(grace)
		for _, pid := range pids {
			for Alive(pid) && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			if Alive(pid) {
				syscall.Kill(pid, syscall.SIGKILL)
				killed++
			}
		}
	}
	return killed
}

// LogTails is the end of every process's log, for an error message.
func (c *Cluster) LogTails() string {
	var b strings.Builder
	for _, p := range c.Procs {
		data, _ := os.ReadFile(p.Log)
		// gossip's routine probes would crowd out what the process said last
		lines := slices.DeleteFunc(strings.Split(strings.TrimSpace(string(data)), "\n"), func(l string) bool {
			return strings.Contains(l, "[DEBUG] memberlist:")
		})
		fmt.Fprintf(&b, "--- %s (%s):\n%s\n", p.Name, p.Log, strings.Join(lines[max(0, len(lines)-12):], "\n"))
	}
	return b.String()
}
