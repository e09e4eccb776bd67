package serve

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/bertnode/bertnode/tokenize"
	"golang.org/x/sys/unix"
)

// policies counts this process's threads by scheduling policy.
func policies(t *testing.T) map[uint32]int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	n := map[uint32]int{}
	for _, e := range tasks {
		tid, _ := strconv.Atoi(e.Name())
		if a, err := unix.SchedGetAttr(tid, 0); err == nil {
			n[a.Policy]++
		}
	}
	return n
}

// The process's threads go to the background, the batcher's instances run in the
// foreground, and DefaultThreads brings every thread back.
func TestInstancesRunInTheForeground(t *testing.T) {
	t.Cleanup(func() {
		if err := DefaultThreads(); err != nil {
			t.Error(err)
		}
	})
	if err := BackgroundThreads(); err != nil {
		t.Fatal(err)
	}
	if n := policies(t); n[unix.SCHED_NORMAL] != 0 || n[unix.SCHED_BATCH] == 0 {
		t.Fatalf("threads by policy after BackgroundThreads: %v, want all under SCHED_BATCH (%d)", n, unix.SCHED_BATCH)
	}
	seen := make(chan uint32, 4)
	r := RunnerFunc(func(seqs []*tokenize.Encoding) ([][]float32, error) {
		a, err := unix.SchedGetAttr(0, 0)
		if err != nil {
			return nil, err
		}
		seen <- a.Policy
		return make([][]float32, len(seqs)), nil
	})
	b := newBatcher(t, r, BatchConfig{MaxBatch: 1, MaxTokens: 100, MaxQueue: 10, Instances: 2}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := b.Submit(ctx, []*tokenize.Encoding{seq(1, 3)}); err != nil {
		t.Fatal(err)
	}
	if p := <-seen; p != unix.SCHED_NORMAL {
		t.Errorf("an instance ran its batch under policy %d, want SCHED_OTHER (%d)", p, unix.SCHED_NORMAL)
	}
	if err := DefaultThreads(); err != nil {
		t.Fatal(err)
	}
	if n := policies(t); n[unix.SCHED_BATCH] != 0 {
		t.Errorf("threads by policy after DefaultThreads: %v, want none under SCHED_BATCH", n)
	}
}
