package serve

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// On a CPU the instances' threads share the cores with the rest of the server, whose
// threads wake at each request's bytes and, under Linux's default policy, preempt a
// running instance mid-op: on two cores at 64 clients each tiny instance was preempted
// about 2,300 times a second and ran its batches 15-20% slower than alone. A thread
// under SCHED_BATCH does not preempt when it wakes; it waits for the running thread's
// slice to end. Both policies are the fair class at the same nice value, so the CPU
// shares do not change, only how often the instances are cut off: 670 times a second,
// and tiny served 7% more requests per second at 8% less CPU per request (bench serve,
// four alternating runs).

// BackgroundThreads puts every thread of this process under SCHED_BATCH, and so every
// thread they start from now on (a thread takes its creator's policy). The batcher's
// instances take their own threads back (ForegroundThread), and the threads libtorch starts
// from them follow. A pool libtorch started earlier keeps the policy it had: bertnode
// serve calls it before the model loads, so that none starts from a background thread.
func BackgroundThreads() error { return threadsTo(unix.SCHED_BATCH, "SCHED_BATCH") }

// DefaultThreads puts every thread of this process back under SCHED_OTHER, Linux's
// default, whatever it or its parent set: for bench serve's replays of the model alone,
// and for its clients, which stand in for other machines.
func DefaultThreads() error { return threadsTo(unix.SCHED_NORMAL, "SCHED_OTHER") }

// threadsTo gives every thread of this process the policy.
func threadsTo(policy uint32, name string) error {
	// A thread not yet moved may start another while this runs: pass again until none
	// is left.
	for range 8 {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return fmt.Errorf("serve: listing this process's threads: %w", err)
		}
		moved := 0
		for _, e := range tasks {
			tid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			switch ok, err := setPolicy(tid, policy); {
			case errors.Is(err, unix.ESRCH): // it has ended
			case err != nil:
				return fmt.Errorf("serve: thread %d to %s: %w", tid, name, err)
			case ok:
				moved++
			}
		}
		if moved == 0 {
			return nil
		}
	}
	return nil
}

// ForegroundThread puts the calling thread under SCHED_OTHER, Linux's default; the caller is
// locked to it.
func ForegroundThread() error {
	_, err := setPolicy(0, unix.SCHED_NORMAL)
	return err
}

// setPolicy gives thread tid (0: the caller) the policy at its nice value; moved says
// whether it had another.
func setPolicy(tid int, policy uint32) (moved bool, err error) {
	cur, err := unix.SchedGetAttr(tid, 0)
	if err != nil || cur.Policy == policy {
		return false, err
	}
	return true, unix.SchedSetAttr(tid, &unix.SchedAttr{Policy: policy, Nice: cur.Nice}, 0)
}
