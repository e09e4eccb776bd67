package train

import (
	"context"
	"fmt"
	"io"
	"math"
	"runtime"
	"strings"
	"sync"
	"testing"
	"weak"

	"github.com/bertnode/bertnode/allreduce"
	"github.com/bertnode/bertnode/internal/nativeenv"
	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/shard"
	"github.com/sugarme/gotch/ts"
)

// Three replicas evaluating their shares of the eval set and gathering the logits over a
// ring score what one Trainer scores on the whole set: classification exactly, since its
// metrics count argmaxes; regression within float32 rounding, since a replica's share is
// batched and padded to other shapes than the whole set, and libtorch's CPU kernels may
// block the matrix products of other shapes differently (CI's CPUs did, by 1e-7).
func TestReplicaEvaluationSharedOverTheRing(t *testing.T) {
	t.Run("classify", func(t *testing.T) { replicaEvaluation(t, smsSpec(t), 0) })
	t.Run("regression", func(t *testing.T) { replicaEvaluation(t, stsSpec(t), 1e-5) })
}

// replicaEvaluation fails where a metric differs by more than tol relative to its value.
func replicaEvaluation(t *testing.T, s Spec, tol float64) {
	runtime.LockOSThread()
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
	if s.Eval != "" {
		if eval, err = readRecords(tr.Spec.Data, s.Eval, io.Discard); err != nil {
			t.Fatal(err)
		}
	}
	if len(want.Metrics) == 0 {
		t.Fatal("no metrics")
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
	runtime.KeepAlive(tr) // FlatSlice is a view of its model's memory, which a finalizer frees
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
			if math.Abs(got[i][k]-v) > tol*math.Max(math.Abs(v), 1e-3) {
				t.Errorf("rank %d: %s = %v, one trainer on the whole set: %v", i, k, got[i][k], v)
			}
		}
		if math.Abs(got[i]["loss"]-want.Loss) > 1e-5 {
			t.Errorf("rank %d: eval loss %v, want %v", i, got[i]["loss"], want.Loss)
		}
	}
}

// BackwardReady over several micro-batches: the gradient is bit-identical to
// Backward's with the same seed, the prefixes it reports grow, cover the whole gradient,
// and come from the last micro-batch only (what a prefix held when reported is final).
func TestReplicaBackwardReady(t *testing.T) {
	runtime.LockOSThread()
	s := smsSpec(t)
	s.BatchSize, s.Threads = 4, 1
	r, err := NewReplica(s, []string{"ham", "spam"}, nil, 10, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var recs []shard.Record
	for i, txt := range []string{"win a free prize now", "see you at lunch", "call this number to claim", "ok thanks",
		"urgent your account", "meeting moved to 3", "txt STOP to end", "love you"} {
		recs = append(recs, shard.Record{ID: fmt.Sprint(i), Text: txt, Labels: []string{[]string{"spam", "ham"}[i%2]}})
	}
	recs = recs[:7] // micro-batches of 4 and 3
	if !r.CanOverlap() {
		t.Fatal("a CPU replica cannot overlap")
	}
	r.t.Spec.AutoMicroBatch = true // a step taken again would have sent a wrong start
	if r.CanOverlap() {
		t.Fatal("a replica with auto_micro_batch can overlap")
	}
	r.t.Spec.AutoMicroBatch = false
	r.ZeroGrad()
	lossA, err := r.Backward(recs, 0.5, 9)
	if err != nil {
		t.Fatal(err)
	}
	want := append([]float32(nil), r.Grad()...)
	r.ZeroGrad()
	var mu sync.Mutex
	var ns []int
	var seen [][]float32
	lossB, err := r.BackwardReady(recs, 0.5, 9, func(n int) {
		mu.Lock()
		defer mu.Unlock()
		ns = append(ns, n)
		seen = append(seen, append([]float32(nil), r.Grad()[:n]...))
	})
	if err != nil {
		t.Fatal(err)
	}
	g := r.Grad()
	if lossA != lossB {
		t.Fatalf("loss %v with reports, %v without", lossB, lossA)
	}
	for i := range g {
		if math.Float32bits(g[i]) != math.Float32bits(want[i]) {
			t.Fatalf("gradient value %d: %v with reports, %v without", i, g[i], want[i])
		}
	}
	if len(ns) == 0 || ns[len(ns)-1] != len(g) {
		t.Fatalf("prefixes %v: want the last to be the whole gradient, %d", ns, len(g))
	}
	for k, n := range ns {
		if k > 0 && n <= ns[k-1] {
			t.Fatalf("prefixes %v do not grow", ns)
		}
		for i, v := range seen[k] {
			if math.Float32bits(v) != math.Float32bits(g[i]) {
				t.Fatalf("value %d of the prefix %d reported final changed afterwards", i, n)
			}
		}
	}
}

// Unscale divides the summed gradient by the loss scale: a step taken with the loss
// scaled by 8 then unscaled moves the weights as the unscaled step does (SGD, whose
// update is proportional to the gradient, would move them 8 times as far if Apply used
// the scaled gradient: on a GPU, the host's copy). A non-finite value is an overflow.
func TestReplicaUnscale(t *testing.T) { testReplicaUnscale(t, "cpu") }

func TestCUDAReplicaUnscale(t *testing.T) {
	if _, err := model.ParseDevice("cuda"); err != nil {
		t.Skip(err) // CI has no GPU; scripts/gpu-check.sh runs this on one
	}
	testReplicaUnscale(t, "cuda")
}

func testReplicaUnscale(t *testing.T, device string) {
	runtime.LockOSThread()
	s := smsSpec(t)
	s.Device, s.TF32, s.Optimizer, s.ClipNorm, s.Schedule, s.WarmupRatio = device, false, "sgd", 0, "constant", 0
	recs := []shard.Record{{ID: "0", Text: "win a free prize now", Labels: []string{"spam"}}, {ID: "1", Text: "see you at lunch", Labels: []string{"ham"}}}
	var weights [2][]float32
	for i, scale := range []float64{1, 8} {
		r, err := NewReplica(s, []string{"ham", "spam"}, nil, 10, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		r.ZeroGrad()
		if _, err := r.Backward(recs, scale, 9); err != nil {
			t.Fatal(err)
		}
		r.Grad() // the host's copy, which the all-reduce sums
		if scale != 1 && !r.Unscale(scale) {
			t.Fatal("a finite gradient overflowed")
		}
		if _, err := r.Apply(0, 1); err != nil {
			t.Fatal(err)
		}
		weights[i] = append([]float32(nil), r.State()[0]...)
		if scale != 1 {
			r.ZeroGrad()
			r.Grad()[3] = float32(math.Inf(1))
			if r.Unscale(scale) {
				t.Fatal("an infinite gradient did not overflow")
			}
		}
	}
	worst := 0.0
	for i, w := range weights[0] {
		worst = max(worst, math.Abs(float64(weights[1][i]-w)))
	}
	if worst > 1e-6 {
		t.Fatalf("the step with the loss scaled by 8 and unscaled moved a weight %g away from the unscaled step's", worst)
	}
}

// A node closes a replica when its session ends and makes the next: Close must let the
// model go and free its tensors then, not when the Go GC next happens to run, nor
// never (the soak in docs/cluster.md: a node grew by 75 MB per job). The trainer is
// collected, and the tensors live before the replica are all that are left.
func TestReplicaCloseFreesItsTensors(t *testing.T) {
	runtime.LockOSThread()
	s := smsSpec(t)
	s.BatchSize, s.Threads = 4, 1
	nativeenv.ReleaseMemory()
	before := liveTensors()
	r, err := NewReplica(s, []string{"ham", "spam"}, nil, 10, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	recs := []shard.Record{{ID: "0", Text: "win a free prize now", Labels: []string{"spam"}}, {ID: "1", Text: "see you at lunch", Labels: []string{"ham"}}}
	// Backward as a node runs it, watching the gradient (model.GradWatch) to overlap the
	// all-reduce with it, and as without.
	r.ZeroGrad()
	if _, err := r.BackwardReady(recs, 1, 1, func(int) {}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Backward(recs, 1, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Apply(1, 1); err != nil {
		t.Fatal(err)
	}
	trainer, during := weak.Make(r.t), liveTensors()
	if during <= before {
		t.Fatalf("%d live tensors with a replica, %d before", during, before)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if trainer.Value() != nil || liveTensors() > before {
		t.Fatalf("after Close: trainer collected %v, %d live tensors (%d with the replica, %d before)",
			trainer.Value() == nil, liveTensors(), during, before)
	}
	runtime.KeepAlive(r) // a node's session holds its closed replica a while longer
}

// liveTensors counts the tensors gotch has not freed, from its leak report (which reads
// its registry under its lock).
func liveTensors() int {
	_, list, _ := strings.Cut(ts.CheckCMemLeak(), "Tensors not been released: [")
	list, _, _ = strings.Cut(list, "]\n")
	return len(strings.Fields(list))
}
