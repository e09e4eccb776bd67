package node

import (
	"context"
	"io"
	"time"

	"github.com/bertnode/bertnode/api"
)

// Coordinator is what a node asks of the coordinator; *api.Client implements it over
// HTTP, and tests can play the coordinator's part through it.
type Coordinator interface {
	RegisterNode(ctx context.Context, r api.RegisterNode) error
	// Assignment blocks until the node's assignment changes past index, or wait ends.
	Assignment(ctx context.Context, node string, index uint64, wait time.Duration) (*api.Assignment, error)
	Progress(ctx context.Context, job string, r api.ProgressReport) error
	Failure(ctx context.Context, job string, r api.FailureReport) error
	Checkpoint(ctx context.Context, job string, r api.CheckpointReport) error
	Result(ctx context.Context, job string, r api.ResultReport) error
	Done(ctx context.Context, job string, r api.DoneReport) error
	PutBlob(ctx context.Context, r io.Reader, size int64) (string, error)
	GetBlob(ctx context.Context, sha string) (io.ReadCloser, int64, error)
	Job(ctx context.Context, id string) (*api.Job, error)
	// Lease, RenewLease and UnitDone are a predict job's: a unit to do, the lease on it
	// kept while the node works, and its output reported.
	Lease(ctx context.Context, job, node string) (api.Lease, error)
	RenewLease(ctx context.Context, job, node string, unit int) (api.Lease, error)
	UnitDone(ctx context.Context, job string, r api.UnitReport) error
	// DeletedJobs are the jobs bertnode delete removed, with their submission times.
	DeletedJobs(ctx context.Context) (map[string]time.Time, error)
	// Drain turns a node's drain on or off: a node whose disk failed drains itself.
	Drain(ctx context.Context, node string, on bool) error
}
