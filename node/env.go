package node

import (
	"context"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/shard"
)

// Data is a job's training records as the step loop reads them.
type Data interface {
	// Records counts the training records.
	Records() int
	// Order is epoch's sequence of training record IDs: a pure function of the job,
	// the same on every node whatever the number of nodes.
	Order(epoch int) []int32
	// Read returns the records with these IDs, in that order.
	Read(ctx context.Context, ids []int32) ([]shard.Record, error)
}

// Env is what a node builds for a job before it trains (Config.Setup): the spec, the
// replica and the data.
type Env struct {
	Spec    api.JobSpec
	Replica Replica
	Data    Data
	// HasEval says the job has an eval set (Replica.Evaluate scores it).
	HasEval bool
	// Close, when set, releases the data when the job ends for this node.
	Close func()
}

// Setup builds a job's Env; the node calls it when first assigned to the job.
type Setup func(ctx context.Context, job *api.Job) (*Env, error)
