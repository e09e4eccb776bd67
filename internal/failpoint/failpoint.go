// Package failpoint lets a fault suite make a process fail at a named point of its code,
// as etcd's gofail does: a point costs one map lookup and does nothing unless the
// process was started with $BERTNODE_FAILPOINTS naming it.
//
//	BERTNODE_FAILPOINTS="node.allreduce=kill-after:5ms@12,node.backward=stop@30"
//
// An entry is point=action[@n]: on the point's n-th hit (default the first) the action
// runs once. Actions: kill (SIGKILL this process), stop (SIGSTOP it: it stays silent
// until someone sends SIGCONT), kill-after:DURATION (SIGKILL it that long after the hit,
// while the code after the point runs: "kill -9 during the all-reduce").
package failpoint

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Env is the variable the points are read from.
const Env = "BERTNODE_FAILPOINTS"

type point struct {
	action string
	after  time.Duration
	at     int
	hits   int
}

var (
	mu     sync.Mutex
	points map[string]*point
	// kill is how the actions end the process; tests replace it.
	kill = func(sig syscall.Signal) { syscall.Kill(os.Getpid(), sig) }
)

func init() {
	if err := Set(os.Getenv(Env)); err != nil {
		fmt.Fprintf(os.Stderr, "$%s: %v\n", Env, err)
		os.Exit(2)
	}
}

// Set replaces the armed points with spec's (the syntax of $BERTNODE_FAILPOINTS).
func Set(spec string) error {
	ps := map[string]*point{}
	for _, e := range strings.Split(spec, ",") {
		if e = strings.TrimSpace(e); e == "" {
			continue
		}
		name, act, ok := strings.Cut(e, "=")
		if !ok || name == "" {
			return fmt.Errorf("%q: want point=action[@n]", e)
		}
		p := &point{at: 1}
		if a, n, ok := strings.Cut(act, "@"); ok {
			v, err := strconv.Atoi(n)
			if err != nil || v < 1 {
				return fmt.Errorf("%q: @%s is not a positive hit count", e, n)
			}
			act, p.at = a, v
		}
		switch {
		case act == "kill" || act == "stop":
			p.action = act
		case strings.HasPrefix(act, "kill-after:"):
			d, err := time.ParseDuration(strings.TrimPrefix(act, "kill-after:"))
			if err != nil {
				return fmt.Errorf("%q: %v", e, err)
			}
			p.action, p.after = "kill-after", d
		default:
			return fmt.Errorf("%q: action %q: want kill, stop or kill-after:DURATION", e, act)
		}
		ps[name] = p
	}
	mu.Lock()
	points = ps
	mu.Unlock()
	return nil
}

// Hit passes the point name, running its action if it is armed and due.
func Hit(name string) {
	mu.Lock()
	p := points[name]
	if p == nil {
		mu.Unlock()
		return
	}
	p.hits++
	due := p.hits == p.at
	mu.Unlock()
	if !due {
		return
	}
	fmt.Fprintf(os.Stderr, "failpoint %s: %s (hit %d)\n", name, p.action, p.hits)
	switch p.action {
	case "kill":
		kill(syscall.SIGKILL)
	case "stop":
		kill(syscall.SIGSTOP)
	case "kill-after":
		time.AfterFunc(p.after, func() { kill(syscall.SIGKILL) })
	}
}
