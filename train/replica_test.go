package train

import (
	"context"
	"fmt"
	"io"
	"math"
	"runtime"
	"sync"
	"testing"

	"github.com/bertnode/bertnode/allreduce"
	"github.com/bertnode/bertnode/shard"
)

// Three replicas evaluating their shares of the eval set and gathering the logits over a
// ring score exactly what one Trainer scores on the whole set.
func TestReplicaEvaluationSharedOverTheRing(t *testing.T) {
	runtime.LockOSThread()
	s := smsSpec(t)
	s.MaxSteps, s.Threads = 3, 1
	tr, _ := trainSpec(t, s) // a few steps, so the predictions are not all one class
	want, err := tr.Evaluate()
	if err != nil {
		t.Fatal(err)
	}
	var eval []shard.Record
	for _, id := range tr.Plan.EvalIDs() {
		eval = append(eval, tr.Records[id])
	}
	const n = 3
	var net allreduce.MemNetwork
	addrs := make([]string, n)
	lns := make([]allreduce.Listener, n)
	for i := range n {
		addrs[i] = fmt.Sprintf("eval-%d", i)
		if lns[i], err = net.Listen(addrs[i]); err != nil {
			t.Fatal(err)
		}
	}
	reps := make([]*Replica, n)
	for i := range reps {
		if reps[i], err = NewReplica(s, tr.Labels.Names(), eval, 3, io.Discard); err != nil {
			t.Fatal(err)
		}
		// the trained weights, as a node would receive them from a peer
		copy(reps[i].State()[0], tr.Model.Params.FlatSlice())
		if err := reps[i].Loaded(); err != nil {
			t.Fatal(err)
		}
	}
	got := make([]map[string]float64, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			runtime.LockOSThread()
			ring, err := allreduce.New(context.Background(), allreduce.Config{Peers: addrs, Rank: i, Generation: 1,
				Secret: []byte("eval-test-secret-0123456789abcdef"), Listener: lns[i], Dialer: &net})
			if err != nil {
				errs[i] = err
				return
			}
			defer ring.Close()
			got[i], errs[i] = reps[i].Evaluate(context.Background(), i, n, func(b []float32) error {
				return ring.AllReduce(context.Background(), b, allreduce.OpSum)
			})
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("rank %d: %v", i, errs[i])
		}
		for k, v := range want.Metrics {
			if got[i][k] != v {
				t.Errorf("rank %d: %s = %v, one trainer on the whole set: %v", i, k, got[i][k], v)
			}
		}
		if math.Abs(got[i]["loss"]-want.Loss) > 1e-5 {
			t.Errorf("rank %d: eval loss %v, want %v", i, got[i]["loss"], want.Loss)
		}
	}
}
