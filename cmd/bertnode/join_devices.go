package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bertnode/bertnode/model"
	"github.com/spf13/pflag"
)

// bertnode join --devices: one worker process per device on this machine, as
// torchrun's --nproc-per-node, each a node of its own (a crash or a CUDA error takes
// down one device's replica, not the machine's), started again when it crashes.

// workerHealthy is how long a worker must run for its restarts to count from zero again:
// a crash a day is not a crash loop.
const workerHealthy = 10 * time.Minute

// workerStop is how long a worker asked to leave (SIGTERM) may take before it is killed.
const workerStop = 30 * time.Second

// worker is one supervised worker process.
type worker struct {
	i      int
	device string
	args   []string // after the executable: join and its flags
}

// parseDevices reads --devices: a comma-separated list of cpu, cuda and cuda:N, or all
// (every CUDA device libtorch sees). A CUDA device twice, or one libtorch does not see,
// is an error (rather than a worker failing --max-restarts times); cpu may repeat
// (several CPU workers on one machine, each of --threads cores).
func parseDevices(s string, cudaDevices func() int64) ([]string, error) {
	if strings.TrimSpace(s) == "all" {
		n := cudaDevices()
		if n == 0 {
			return nil, errors.New("--devices all: this libtorch sees no CUDA device (name them: cpu,cpu runs two CPU workers)")
		}
		var ds []string
		for i := range n {
			ds = append(ds, fmt.Sprintf("cuda:%d", i))
		}
		return ds, nil
	}
	var ds []string
	seen := map[string]bool{}
	for _, d := range strings.Split(s, ",") {
		d = strings.TrimSpace(d)
		if d == "cuda" {
			d = "cuda:0"
		}
		if d != "cpu" {
			n, err := strconv.Atoi(strings.TrimPrefix(d, "cuda:"))
			if !strings.HasPrefix(d, "cuda:") || err != nil || n < 0 {
				return nil, fmt.Errorf("--devices: %q is not cpu, cuda or cuda:N", d)
			}
			if seen[d] {
				return nil, fmt.Errorf("--devices: %s twice", d)
			}
			if have := cudaDevices(); int64(n) >= have {
				return nil, fmt.Errorf("--devices: %s: no such CUDA device (%d available)", d, have)
			}
			seen[d] = true
		}
		ds = append(ds, d)
	}
	return ds, nil
}

// workerArgs is worker i's command line: the flags the user set, but its own device,
// data directory (--data-dir/worker-i, where it keeps its node ID and gossip port, so
// a device's worker stays the same node across restarts while the order of --devices
// is kept), name, and listen ports (the given port + i; port 0 stays 0).
func workerArgs(fs *pflag.FlagSet, coordinator []string, i int, device string, devices []string) ([]string, error) {
	if fs.Changed("id") {
		return nil, errors.New("--id names one node: with --devices each worker keeps its own ID in --data-dir/worker-N")
	}
	if fs.Changed("device") {
		return nil, errors.New("--device and --devices: give one")
	}
	args := append([]string{"join"}, coordinator...)
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		v := f.Value.String()
		switch f.Name {
		case "devices", "max-restarts", "device", "id":
			return
		case "data-dir":
			v = filepath.Join(v, fmt.Sprintf("worker-%d", i))
		case "name":
			if !f.Changed {
				return
			}
			v = fmt.Sprintf("%s-%d", v, i)
		case "ring-addr", "http-addr", "gossip-addr":
			var perr error
			if v, perr = nextPort(v, i); perr != nil {
				err = errors.Join(err, fmt.Errorf("--%s: %w", f.Name, perr))
				return
			}
		default:
			if !f.Changed {
				return
			}
		}
		args = append(args, "--"+f.Name+"="+v)
	})
	if err != nil {
		return nil, err
	}
	args = append(args, "--device="+device)
	if !fs.Changed("name") && count(devices, device) > 1 {
		host, _ := os.Hostname()
		args = append(args, fmt.Sprintf("--name=%s/%s-%d", host, device, i))
	}
	return args, nil
}

// nextPort is addr with its port moved up by i; port 0 (any free port) stays 0.
func nextPort(addr string, i int) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p+i > 65535 {
		return "", fmt.Errorf("port %q: want 0..%d", port, 65535-i)
	}
	if p == 0 {
		return addr, nil
	}
	return net.JoinHostPort(host, strconv.Itoa(p+i)), nil
}

func count(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

// superviseWorkers runs every worker until ctx ends (then asks each to leave, and
// returns once all have), or until each has exited for good: by itself with status 0,
// or failing more than maxRestarts times in a row. The error names the workers that
// failed for good. out takes the workers' lines and logger's: both write through one
// lockedWriter.
func superviseWorkers(ctx context.Context, exe string, workers []worker, maxRestarts int, out *lockedWriter, logger *log.Logger) error {
	errs := make([]error, len(workers))
	var wg sync.WaitGroup
	for i, w := range workers {
		wg.Go(func() { errs[i] = w.supervise(ctx, exe, maxRestarts, out, logger) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (w worker) name() string { return fmt.Sprintf("worker %d (%s)", w.i, w.device) }

// supervise starts the worker, and again each time it fails, after a backoff.
func (w worker) supervise(ctx context.Context, exe string, maxRestarts int, out io.Writer, logger *log.Logger) error {
	// A worker gets SIGTERM when the thread that started it exits (Pdeathsig), so that
	// a supervisor killed outright takes its workers with it: keep one thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	restarts, backoff := 0, time.Second
	for {
		start := time.Now()
		err := w.run(ctx, exe, out)
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil:
			logger.Printf("%s exited", w.name())
			return nil
		}
		if time.Since(start) >= workerHealthy {
			restarts, backoff = 0, time.Second
		}
		if restarts >= maxRestarts {
			return fmt.Errorf("%s: %w (after %d restarts)", w.name(), err, restarts)
		}
		restarts++
		logger.Printf("%s: %v; restarting it (%d of %d) in %s", w.name(), err, restarts, maxRestarts, backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// run runs the worker once; when ctx ends it asks it to leave (SIGTERM) and kills it
// after workerStop.
func (w worker) run(ctx context.Context, exe string, out io.Writer) error {
	cmd := exec.CommandContext(ctx, exe, w.args...)
	pw := &prefixWriter{w: out, prefix: []byte(fmt.Sprintf("[%d %s] ", w.i, w.device))}
	cmd.Stdout, cmd.Stderr = pw, pw
	// Its own process group: a terminal's ^C reaches the supervisor alone, which asks
	// each worker to leave once.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = workerStop
	err := cmd.Run()
	pw.flush()
	return err
}

// lockedWriter serializes the workers' lines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// prefixWriter writes whole lines, each after prefix.
type prefixWriter struct {
	w       io.Writer
	prefix  []byte
	partial []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	n := len(b)
	p.partial = append(p.partial, b...)
	for {
		i := bytes.IndexByte(p.partial, '\n')
		if i < 0 {
			return n, nil
		}
		if _, err := p.w.Write(append(append([]byte{}, p.prefix...), p.partial[:i+1]...)); err != nil {
			return n, err
		}
		p.partial = p.partial[i+1:]
	}
}

// flush writes a last line without its newline.
func (p *prefixWriter) flush() {
	if len(p.partial) > 0 {
		p.Write([]byte("\n"))
	}
}

// joinDevices is bertnode join --devices: checks what each worker will need, then
// supervises them, their output and its log lines going to out.
func joinDevices(ctx context.Context, fs *pflag.FlagSet, coordinator []string, devices string, maxRestarts int, out io.Writer) error {
	lw := &lockedWriter{w: out}
	logger := log.New(lw, "join ", log.LstdFlags|log.Lmicroseconds)
	if maxRestarts < 0 {
		return errors.New("--max-restarts: want 0 or more")
	}
	ds, err := parseDevices(devices, model.CUDADevices)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	var ws []worker
	for i, d := range ds {
		args, err := workerArgs(fs, coordinator, i, d, ds)
		if err != nil {
			return err
		}
		w := worker{i: i, device: d, args: args}
		logger.Printf("%s: %s %s", w.name(), exe, strings.Join(args, " "))
		ws = append(ws, w)
	}
	return superviseWorkers(ctx, exe, ws, maxRestarts, lw, logger)
}
