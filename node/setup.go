package node

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/stream"
)

// Blobs is how a node reaches a job's data through the coordinator: plans are blobs,
// records come a block at a time. *api.Client implements it.
type Blobs interface {
	GetBlob(ctx context.Context, sha string) (io.ReadCloser, int64, error)
	DatasetBlock(ctx context.Context, plan string, i int, header http.Header) (*http.Response, error)
}

// ReplicaFactory builds a job's replica once its spec, eval records and length are
// known.
type ReplicaFactory func(ctx context.Context, job *api.Job, spec api.JobSpec, eval []shard.Record, totalSteps int64) (Replica, error)

// PlanSetup is a real node's Setup: it reads the job's data plans, opens its records
// (streamed from the coordinator, or from the shared path with cluster.data: shared,
// keeping at most cacheBytes of blocks in memory), reads the eval records, and builds
// the replica with newReplica.
func PlanSetup(c Blobs, cacheBytes int64, newReplica ReplicaFactory) Setup {
	return func(ctx context.Context, job *api.Job) (*Env, error) {
		spec, err := api.ParseSpec(job.Spec)
		if err != nil {
			return nil, err
		}
		if job.Train == nil || job.Train.Plan == "" {
			return nil, fmt.Errorf("job %s: its training data is not planned yet", job.ID)
		}
		plan, src, err := openDataset(ctx, c, job.Train, spec.Cluster, cacheBytes)
		if err != nil {
			return nil, err
		}
		data := &planData{plan: plan, src: src, seed: spec.Seed, window: spec.Cluster.WindowBlocks}
		var eval []shard.Record
		if job.Eval != nil {
			ep, esrc, err := openDataset(ctx, c, job.Eval, spec.Cluster, cacheBytes)
			if err != nil {
				src.Close()
				return nil, err
			}
			eval, err = readAll(ctx, esrc, allIDs(ep.Records))
			esrc.Close()
			if err != nil {
				src.Close()
				return nil, err
			}
		} else if eval, err = readAll(ctx, src, plan.EvalIDs()); err != nil {
			src.Close()
			return nil, err
		}
		rep, err := newReplica(ctx, job, spec, eval, spec.TotalSteps(plan.Train))
		if err != nil {
			src.Close()
			return nil, err
		}
		return &Env{Spec: spec, Replica: rep, Data: data, HasEval: len(eval) > 0, Close: func() { src.Close() }}, nil
	}
}

// openDataset fetches a dataset's plan and opens its records.
func openDataset(ctx context.Context, c Blobs, ds *api.Dataset, cluster api.ClusterSpec, cacheBytes int64) (*stream.Plan, stream.Source, error) {
	rc, _, err := c.GetBlob(ctx, ds.Plan)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: plan: %w", ds.Path, err)
	}
	defer rc.Close()
	var plan stream.Plan
	if err := json.NewDecoder(rc).Decode(&plan); err != nil {
		return nil, nil, fmt.Errorf("%s: plan: %w", ds.Path, err)
	}
	if cluster.Data == "shared" {
		src, err := stream.OpenFile(&plan, ds.Path)
		return &plan, src, err
	}
	fetch := func(ctx context.Context, b int) (io.ReadCloser, error) {
		resp, err := c.DatasetBlock(ctx, ds.Plan, b, nil)
		if err != nil {
			return nil, err
		}
		return stream.DecodeBlock(resp)
	}
	return &plan, stream.NewRemote(&plan, fetch, cacheBytes), nil
}

func allIDs(n int) []int32 {
	ids := make([]int32, n)
	for i := range ids {
		ids[i] = int32(i)
	}
	return ids
}

func readAll(ctx context.Context, src stream.Source, ids []int32) ([]shard.Record, error) {
	out := make([]shard.Record, len(ids))
	return out, src.Read(ctx, ids, out)
}

// planData is a job's training records through its plan.
type planData struct {
	plan   *stream.Plan
	src    stream.Source
	seed   int64
	window int
}

func (d *planData) Records() int { return d.plan.Train }

func (d *planData) Order(epoch int) []int32 { return d.plan.Order(d.seed, epoch, d.window) }

func (d *planData) Read(ctx context.Context, ids []int32) ([]shard.Record, error) {
	out := make([]shard.Record, len(ids))
	return out, d.src.Read(ctx, ids, out)
}
