package coordinator

import (
	"context"

	"github.com/bertnode/bertnode/shard"
)

// Planner plans one data file of a job: it reads the file (I/O, outside the FSM) and
// returns the plan the nodes stream by. The real one is the stream package's Build;
// its errors name the file and line.
type Planner interface {
	Plan(ctx context.Context, path string, data shard.Spec, opts PlanOptions) (Planned, error)
}

// PlanOptions are the job's settings a plan depends on.
type PlanOptions struct {
	BlockRecords int     // cluster.block_records
	EvalSplit    float64 // the share of the training file held out for evaluation (0 for an eval file)
	Task         string
	// Name is the file as the job names it (blob:<sha256> for an upload): plans and
	// errors name it so, not by where this member keeps it.
	Name string
}

// Planned is a plan: its JSON (stored as a blob, named by Dataset.Plan), the file's
// good records and, for training data, its labels in id order.
type Planned struct {
	Plan    []byte
	Records int
	Labels  []string
}

// PlannerFunc is a function that is a Planner.
type PlannerFunc func(ctx context.Context, path string, data shard.Spec, opts PlanOptions) (Planned, error)

func (f PlannerFunc) Plan(ctx context.Context, path string, data shard.Spec, opts PlanOptions) (Planned, error) {
	return f(ctx, path, data, opts)
}
