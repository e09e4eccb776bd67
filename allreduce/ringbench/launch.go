package ringbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sync"
)

// LocalRanks runs the ranks of a benchmark as processes on this machine, every one
// listening before any starts, so that each knows all the addresses. ringbench's
// ranks and node/ddpbench's are started this way.
type LocalRanks struct {
	Ranks     int
	Listeners int      // per rank (one per ring it joins); 0 means 1
	Self      []string // the argv of a command that runs a rank when it finds Env set
	Env       string
	// Spec is the value of Env for rank i; rings[c][i] is rank i's address on its
	// listener c.
	Spec func(rank int, rings [][]string) (string, error)
	// Read consumes rank i's standard output; its standard error goes to ours.
	Read func(rank int, stdout io.Reader) error
	// Listen opens one of rank i's listeners; nil listens on 127.0.0.1.
	Listen func(rank int) (*net.TCPListener, error)
	// Command makes rank i's process; nil runs argv here.
	Command func(ctx context.Context, rank int, argv []string) *exec.Cmd
}

// Run starts the ranks, rank i with its listeners as file descriptors 3, 4, ...
// (InheritedListeners), and waits for them. The first failure (a rank's exit status or
// Read's error) cancels the other ranks, and Run returns it.
func (l LocalRanks) Run(ctx context.Context) error {
	k := max(1, l.Listeners)
	lns := make([][]*net.TCPListener, l.Ranks) // [rank][listener]
	rings := make([][]string, k)               // [listener][rank]
	for i := range lns {
		for c := range k {
			open := l.Listen
			if open == nil {
				open = func(i int) (*net.TCPListener, error) { return listen(nil, i) }
			}
			ln, err := open(i)
			if err != nil {
				return err
			}
			defer ln.Close()
			lns[i] = append(lns[i], ln)
			rings[c] = append(rings[c], ln.Addr().String())
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
			cancel()
		}
		mu.Unlock()
	}
	defer func() { cancel(); wg.Wait() }() // a rank started before an early return must not outlive it
	for i := range lns {
		spec, err := l.Spec(i, rings)
		if err != nil {
			return err
		}
		var files []*os.File
		for _, ln := range lns[i] {
			f, err := ln.File()
			if err != nil {
				return err
			}
			defer f.Close()
			files = append(files, f)
		}
		var cmd *exec.Cmd
		if l.Command != nil {
			cmd = l.Command(ctx, i, l.Self)
		} else {
			cmd = exec.CommandContext(ctx, l.Self[0], l.Self[1:]...)
		}
		cmd.Env = append(os.Environ(), l.Env+"="+spec)
		cmd.ExtraFiles = files
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return err
		}
		wg.Go(func() {
			rerr := l.Read(i, stdout)
			io.Copy(io.Discard, stdout) // a reader that stopped early must not block the rank
			if err := cmd.Wait(); err != nil || rerr != nil {
				fail(fmt.Errorf("ringbench: rank %d: %w", i, errors.Join(err, rerr)))
			}
		})
	}
	wg.Wait()
	return first
}

// InheritedListeners are the k listeners LocalRanks handed this rank process.
func InheritedListeners(k int) ([]*net.TCPListener, error) {
	lns := make([]*net.TCPListener, 0, k)
	for c := range k {
		ln, err := net.FileListener(os.NewFile(uintptr(3+c), "listener"))
		if err == nil {
			if tl, ok := ln.(*net.TCPListener); ok {
				lns = append(lns, tl)
				continue
			}
			ln.Close()
			err = fmt.Errorf("%T, want TCP", ln)
		}
		for _, l := range lns {
			l.Close()
		}
		return nil, fmt.Errorf("inherited listener %d: %w", c, err)
	}
	return lns, nil
}
