package train

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/bertnode/bertnode/allreduce"
)

// ringSync averages gradients over a ring all-reduce: what a node plugs into GradSync.
type ringSync struct{ r *allreduce.Ring }

func (s ringSync) AllReduce(ctx context.Context, g []float32) error {
	return s.r.AllReduce(ctx, g, allreduce.OpAvg)
}

// Two replicas that train on different halves of the data and average their gradients
// over a real TCP ring stay bit-identical, and differ from a replica trained alone.
func TestReplicasStayIdenticalOverTheRing(t *testing.T) {
	const n = 2
	lns := make([]allreduce.Listener, n)
	addrs := make([]string, n)
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		lns[i], addrs[i] = ln.(*net.TCPListener), ln.Addr().String()
	}
	// Each replica sees every other record of the data: its own shard.
	data, err := os.ReadFile("../data/sms_spam/SMSSpamCollection")
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	specs := make([]Spec, n)
	for i := range specs {
		var part []byte
		for j := i; j < len(lines); j += n {
			part = append(part, lines[j]...)
		}
		path := filepath.Join(t.TempDir(), "shard.txt")
		if err := os.WriteFile(path, part, 0o644); err != nil {
			t.Fatal(err)
		}
		s := smsSpec(t)
		s.Train, s.EvalSplit, s.MaxSteps, s.BatchSize, s.Threads = path, 0, 6, 16, 1
		specs[i] = s
	}
	var wg sync.WaitGroup
	// Replicas are processes in real use; here they share libtorch's generator, so each
	// seeds and draws its initial weights while no other draws (dropout): one at a time,
	// and nobody trains before all are built.
	var initMu sync.Mutex
	var built sync.WaitGroup
	built.Add(n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			runtime.LockOSThread() // each replica drives libtorch from its own thread
			initMu.Lock()
			tr, err := Prepare(specs[i], io.Discard)
			initMu.Unlock()
			built.Done()
			built.Wait()
			if err != nil {
				errs[i] = err
				return
			}
			ring, err := allreduce.New(context.Background(), allreduce.Config{Peers: addrs, Rank: i, Generation: 1,
				Secret: []byte("replica-test-secret-0123456789"), Listener: lns[i], Timeout: 30 * time.Second})
			if err != nil {
				errs[i] = err
				return
			}
			defer ring.Close()
			tr.Sync = ringSync{ring}
			_, errs[i] = tr.Run(context.Background())
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}
	final := func(s Spec) []byte {
		b, err := os.ReadFile(filepath.Join(s.Output, "final", "model.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if !bytes.Equal(final(specs[0]), final(specs[1])) {
		t.Fatal("the replicas' weights differ after training with averaged gradients")
	}
	runtime.LockOSThread()
	alone := specs[0]
	alone.Output = t.TempDir()
	trainSpec(t, alone)
	if bytes.Equal(final(alone), final(specs[0])) {
		t.Fatal("training alone gave the same weights as with the ring: the gradients were not averaged")
	}
}
