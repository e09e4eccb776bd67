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

// Launch runs a ring of n rank processes of self (an argv) on loopback: it opens a
// listener on 127.0.0.1 for each rank, so every rank knows all addresses before any
// starts, and starts rank i with the listener as file descriptor 3 (see
// InheritedListener) and env=spec(i, addrs) in its environment. read consumes rank i's
// standard output; rank processes' standard error goes to ours. The first failure (a
// rank's exit status or read's error) cancels the other ranks, and Launch returns it.
func Launch(ctx context.Context, n int, self []string, env string, spec func(rank int, addrs []string) (string, error),
	read func(rank int, stdout io.Reader) error) error {
	lns := make([]*net.TCPListener, n)
	addrs := make([]string, n)
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer ln.Close()
		lns[i], addrs[i] = ln.(*net.TCPListener), ln.Addr().String()
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
		s, err := spec(i, addrs)
		if err != nil {
			return err
		}
		f, err := lns[i].File()
		if err != nil {
			return err
		}
		cmd := exec.CommandContext(ctx, self[0], self[1:]...)
		cmd.Env = append(os.Environ(), env+"="+s)
		cmd.ExtraFiles = []*os.File{f}
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			f.Close()
			return err
		}
		err = cmd.Start()
		f.Close()
		if err != nil {
			return err
		}
		wg.Go(func() {
			rerr := read(i, stdout)
			io.Copy(io.Discard, stdout) // a reader that stopped early must not block the rank
			if err := cmd.Wait(); err != nil || rerr != nil {
				fail(fmt.Errorf("ringbench: rank %d: %w", i, errors.Join(err, rerr)))
			}
		})
	}
	wg.Wait()
	return first
}

// InheritedListener is the listener Launch handed this rank process.
func InheritedListener() (*net.TCPListener, error) {
	ln, err := net.FileListener(os.NewFile(3, "listener"))
	if err != nil {
		return nil, fmt.Errorf("inherited listener: %w", err)
	}
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		ln.Close()
		return nil, fmt.Errorf("inherited listener: %T, want TCP", ln)
	}
	return tl, nil
}
