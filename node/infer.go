package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/internal/failpoint"
	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/stream"
)

// Predictor runs a predict job's model: Predict writes what bertnode predict prints
// for recs, one JSON line per record, in their order; Close drops the model once the
// node is done with the job, freeing its memory. Its methods are called from one
// goroutine, locked to its OS thread.
type Predictor interface {
	Predict(recs []shard.Record, w io.Writer) error
	Close() error
}

// PredictorFactory loads a predict job's model; a node does so once per job.
type PredictorFactory func(ctx context.Context, job *api.Job, spec api.PredictSpec) (Predictor, error)

// InferEnv is what a node needs to work on a predict job: its input's plan and
// records, and the model.
type InferEnv struct {
	Plan      *stream.Plan
	Src       stream.Source
	Predictor Predictor
}

// InferSetup opens a predict job on this node; PlanInfer is the real one.
type InferSetup func(ctx context.Context, job *api.Job) (*InferEnv, error)

// PlanInfer is a real node's InferSetup: it opens the job's input as PlanSetup opens
// training data and loads the model with newPredictor.
func PlanInfer(c Blobs, cacheBytes int64, newPredictor PredictorFactory) InferSetup {
	return func(ctx context.Context, job *api.Job) (*InferEnv, error) {
		spec, err := api.ParsePredictSpec(job.Spec)
		if err != nil {
			return nil, err
		}
		if job.Train == nil || job.Train.Plan == "" {
			return nil, fmt.Errorf("job %s: its input is not planned yet", job.ID)
		}
		plan, src, err := openDataset(ctx, c, job.Train, spec.Cluster, cacheBytes)
		if err != nil {
			return nil, err
		}
		p, err := newPredictor(ctx, job, spec)
		if err != nil {
			src.Close()
			return nil, err
		}
		return &InferEnv{Plan: plan, Src: src, Predictor: p}, nil
	}
}

// idleLease is how long a node whose lease request found no free unit waits before it
// asks again (sooner when its assignment changes): others' units are in flight, and
// one may come back.
const idleLease = 500 * time.Millisecond

// infer works on predict job job until it ends or leaves this node: it leases a unit,
// predicts its block, uploads the output and reports it, and again. The goroutine
// stays on one OS thread (libtorch's rule) for the model's life.
func (a *Agent) infer(ctx context.Context, job *api.Job) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	logf := func(format string, args ...any) {
		a.cfg.Log.Printf("job %s: "+format, append([]any{job.ID}, args...)...)
	}
	gone := func() bool {
		x, _ := a.board.get()
		return x == nil || x.Job == nil || x.Job.ID != job.ID || x.Job.State.Done()
	}
	if a.cfg.Infer == nil {
		return a.failPredict(ctx, job, errors.New("this node runs no predict jobs"))
	}
	env, err := a.cfg.Infer(ctx, job)
	if err != nil {
		return a.failPredict(ctx, job, fmt.Errorf("setup: %w", err))
	}
	defer env.Src.Close()
	defer env.Predictor.Close()
	spec, err := api.ParsePredictSpec(job.Spec)
	if err != nil {
		return a.failPredict(ctx, job, err)
	}
	c := a.cfg.Coordinator
	for ctx.Err() == nil && !gone() {
		var l api.Lease
		if err := retry(ctx, a.cfg.Log, "lease", func() (err error) { l, err = c.Lease(ctx, job.ID, a.cfg.ID); return err }); err != nil {
			if ctx.Err() == nil && !gone() {
				logf("%v", err)
				sleep(ctx, idleLease)
			}
			continue
		}
		if l.Unit < 0 {
			_, changed := a.board.get()
			select {
			case <-changed:
			case <-time.After(idleLease):
			case <-ctx.Done():
			}
			continue
		}
		if l.Unit >= len(env.Plan.Blocks) {
			return a.failPredict(ctx, job, fmt.Errorf("unit %d: the input's plan has %d blocks", l.Unit, len(env.Plan.Blocks)))
		}
		if err := a.doUnit(ctx, job.ID, env, l.Unit, time.Duration(spec.Lease)/3); err != nil {
			return a.failPredict(ctx, job, err)
		}
	}
	return nil
}

// doUnit predicts unit, uploads its output and reports it, renewing its lease every
// renew meanwhile. It returns an error only when the unit's records cannot be
// predicted; the coordinator's refusals are logged, and the node asks for a unit again.
func (a *Agent) doUnit(ctx context.Context, job string, env *InferEnv, unit int, renew time.Duration) error {
	logf := func(format string, args ...any) {
		a.cfg.Log.Printf("job %s: unit %d: "+format, append([]any{job, unit}, args...)...)
	}
	defer a.renewLease(ctx, job, unit, renew)()
	start := time.Now()
	c := a.cfg.Coordinator
	b := env.Plan.Blocks[unit]
	ids := make([]int32, b.Count)
	for i := range ids {
		ids[i] = int32(b.First + i)
	}
	recs := make([]shard.Record, len(ids))
	if err := retry(ctx, a.cfg.Log, "reading the input", func() error { return env.Src.Read(ctx, ids, recs) }); err != nil {
		logf("%v", err) // the coordinator refused (or ctx ended): ask again, after a pause
		sleep(ctx, idleLease)
		return nil
	}
	var out bytes.Buffer
	if err := env.Predictor.Predict(recs, &out); err != nil {
		return fmt.Errorf("unit %d (records %d to %d): %w", unit, b.First, b.First+b.Count-1, err)
	}
	failpoint.Hit("node.unit") // a node lost holding a lease, its output unreported
	var blob string
	if err := retry(ctx, a.cfg.Log, "uploading", func() (err error) {
		blob, err = c.PutBlob(ctx, bytes.NewReader(out.Bytes()), int64(out.Len()))
		return err
	}); err != nil {
		logf("%v", err)
		sleep(ctx, idleLease)
		return nil
	}
	rep := api.UnitReport{Node: a.cfg.ID, Unit: unit, Blob: blob, Records: len(recs)}
	if err := retry(ctx, a.cfg.Log, "unit report", func() error { return c.UnitDone(ctx, job, rep) }); err != nil {
		logf("%v", err) // its lease went to another (this node was thought dead, or slow)
		return nil
	}
	logf("%d records in %v", len(recs), time.Since(start).Round(time.Millisecond))
	return nil
}

// renewLease renews this node's lease on unit every period until the returned stop is
// called, so that a unit slower than the lease stays this node's. A refusal (another
// node took the unit, or it is done) ends the renewals, not the work: the first output
// in counts.
func (a *Agent) renewLease(ctx context.Context, job string, unit int, every time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for sleep(ctx, every) {
			if err := retry(ctx, a.cfg.Log, "lease renewal", func() error {
				_, err := a.cfg.Coordinator.RenewLease(ctx, job, a.cfg.ID, unit)
				return err
			}); err != nil {
				if ctx.Err() == nil {
					a.cfg.Log.Printf("job %s: unit %d: %v (working on)", job, unit, err)
				}
				return
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// failPredict ends predict job job: its model or input cannot be predicted.
func (a *Agent) failPredict(ctx context.Context, job *api.Job, err error) error {
	rep := api.DoneReport{Node: a.cfg.ID, Error: err.Error()}
	if x, _ := a.board.get(); x != nil && x.Job != nil && x.Job.Gen != nil {
		rep.Gen = x.Job.Gen.Gen
	}
	if rerr := retry(ctx, a.cfg.Log, "done report", func() error { return a.cfg.Coordinator.Done(ctx, job.ID, rep) }); rerr != nil {
		a.cfg.Log.Printf("job %s: %v", job.ID, rerr)
	}
	return err
}
