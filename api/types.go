// Package api is the contract between the coordinator, the worker nodes and the CLI:
// the replicated state as clients see it, the requests they send, and (client.go) the
// Go client all of them share. It depends on nothing heavier than the standard library
// and yaml, so the coordinator and its tests never link libtorch.
package api

import (
	"fmt"
	"strings"
	"time"
)

// Health is a member's liveness as the raft leader last reconciled it from gossip.
type Health string

const (
	Alive   Health = "alive"
	Suspect Health = "suspect"
	Dead    Health = "dead"
	Left    Health = "left"
)

// Node is a worker: one `bertnode join` process, one device.
type Node struct {
	ID       string `json:"id"`        // stable across restarts (kept in its data directory)
	Name     string `json:"name"`      // for people: host and device
	RingAddr string `json:"ring_addr"` // its all-reduce listener, host:port
	HTTPAddr string `json:"http_addr"` // its own HTTP server: /metrics, results for download
	Device   string `json:"device"`
	Health   Health `json:"health"`
	// Job is the job the node is assigned to, "" when idle.
	Job string `json:"job,omitempty"`
	// Unproven: the node was left out of a generation (at LeftOut) and gets no work
	// until it registers again, which its agent does as soon as its assignment says so,
	// or gossip has called it alive for coordinator.UnprovenGrace since. A killed node
	// never registers, while gossip may still call it alive for seconds.
	Unproven bool      `json:"unproven,omitempty"`
	LeftOut  time.Time `json:"left_out,omitzero"`
	// Drain: the node takes no new work (bertnode nodes drain), and leaves its job as
	// soon as the job can go on without it; it stays registered. It survives restarts.
	Drain       bool       `json:"drain,omitempty"`
	Registered  time.Time  `json:"registered"`
	HealthSince time.Time  `json:"health_since"`
	Stats       *NodeStats `json:"stats,omitempty"` // as last reported
}

// NodeDrain turns a node's drain on or off.
type NodeDrain struct {
	Drain bool `json:"drain"`
}

// NodeStats is what a node last said about its own training.
type NodeStats struct {
	Job           string    `json:"job"`
	Gen           uint32    `json:"gen"`
	Rank          int       `json:"rank"`
	Step          int64     `json:"step"`
	SamplesPerSec float64   `json:"samples_per_s"`
	StepMillis    float64   `json:"step_ms"` // compute of its share, all-reduce excluded
	Updated       time.Time `json:"updated"`
}

// Member is a coordinator: one raft server.
type Member struct {
	ID         string `json:"id"`
	RaftAddr   string `json:"raft_addr"`
	APIAddr    string `json:"api_addr"`
	GossipAddr string `json:"gossip_addr"`
	Voter      bool   `json:"voter"`
	Leader     bool   `json:"leader"` // filled in when read
	Health     Health `json:"health"`
	// Protocol is the coordinator protocol the member speaks (coordinator.Protocol);
	// 0: it has not said, as members before protocol versions did not (the oldest).
	Protocol int `json:"protocol,omitempty"`
}

// JobState is a job's life cycle: pending -> running -> succeeded | failed | cancelled.
type JobState string

const (
	Pending   JobState = "pending"
	Running   JobState = "running"
	Succeeded JobState = "succeeded"
	Failed    JobState = "failed"
	Cancelled JobState = "cancelled"
)

// Done says whether the state is final.
func (s JobState) Done() bool { return s == Succeeded || s == Failed || s == Cancelled }

// KindPredict is Job.Kind for a predict job (bertnode infer): its Spec is a
// PredictSpec and its work is Work's units, not a ring.
const KindPredict = "predict"

// Job is a distributed training job, or with Kind predict a distributed prediction.
type Job struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
	Kind string `json:"kind,omitempty"` // "" (train) or KindPredict
	// Spec is the job's YAML text as submitted, with dataset paths replaced by
	// "blob:<sha256>" when the CLI uploaded them. Nodes parse it with train.LoadSpec.
	Spec    string      `json:"spec"`
	Cluster ClusterSpec `json:"cluster"` // parsed from Spec's cluster: section, defaults applied
	Seed    int64       `json:"seed"`

	State     JobState  `json:"state"`
	Reason    string    `json:"reason,omitempty"` // why it failed or was cancelled; what it waits for
	Submitted time.Time `json:"submitted"`
	Started   time.Time `json:"started,omitzero"`
	Finished  time.Time `json:"finished,omitzero"`
	// ResumeOf names the job this one continues (bertnode submit --resume).
	ResumeOf string `json:"resume_of,omitempty"`

	Train *Dataset `json:"train"`
	Eval  *Dataset `json:"eval,omitempty"` // nil when the spec holds out eval_split of Train
	// Uploads are the blobs of the model and tokenizer the CLI uploaded (the spec names
	// them blob:<sha256>, or blob:<sha256>/<file> for a single file), by spec field.
	Uploads map[string]string `json:"uploads,omitempty"`
	// Labels are the classes in id order, from the training data's plan.
	Labels []string `json:"labels,omitempty"`

	Gen      *Generation `json:"generation,omitempty"` // the current one; nil before the first
	Reconfig *Reconfig   `json:"reconfig,omitempty"`   // a membership change under way
	// Waiting lists the nodes kept for the next generation while a running job has
	// fewer than cluster.min_nodes (Reason says so): the current generation is
	// closed, and these nodes, their state intact, are assigned with rank -1. It is
	// null while the job does not wait, and [] when it waits with no node kept.
	Waiting  []string `json:"waiting"`
	Progress Progress `json:"progress"`
	// Checkpoints are the manifests of the last few save steps, oldest first.
	Checkpoints []Checkpoint `json:"checkpoints,omitempty"`
	// Results are the models the job produced, by kind: "final", "best", and
	// "checkpoint" (the latest resumable one).
	Results map[string]Artifact `json:"results,omitempty"`
	// Work is a predict job's units, made when its input is planned.
	Work *Work `json:"work,omitempty"`
}

// Dataset is one data file of a job and the plan the coordinator made of it.
type Dataset struct {
	Path string `json:"path"`           // as submitted
	Blob string `json:"blob,omitempty"` // sha256 of the uploaded content; "" for a shared path
	// Plan is the blob holding the stream.Plan (JSON) once the leader has planned the
	// file; empty while planning.
	Plan    string `json:"plan,omitempty"`
	Records int    `json:"records,omitempty"` // good records in the file
	Error   string `json:"error,omitempty"`   // why planning failed
}

// Generation is one membership of a job's ring. Ranks are indexes into Members.
type Generation struct {
	Gen     uint32       `json:"gen"`
	Members []RingMember `json:"members"`
	Opened  time.Time    `json:"opened"`
	Reason  string       `json:"reason"` // "start", "n2 lost: ...", "n4 joined"
	// Restore is the job's latest checkpoint (a blob) when no member of the previous
	// generation is in this one: its members load it rather than start the job over.
	Restore string `json:"restore,omitempty"`
}

// RingMember is one rank of a generation.
type RingMember struct {
	Node string `json:"node"`
	Addr string `json:"addr"` // the node's ring address
}

// Ranks is the member count.
func (g *Generation) Ranks() int { return len(g.Members) }

// Rank is node's rank in g, or -1.
func (g *Generation) Rank(node string) int {
	if g == nil {
		return -1
	}
	for i, m := range g.Members {
		if m.Node == node {
			return i
		}
	}
	return -1
}

// Peers lists the ring addresses in rank order.
func (g *Generation) Peers() []string {
	p := make([]string, len(g.Members))
	for i, m := range g.Members {
		p[i] = m.Addr
	}
	return p
}

// Reconfig is a membership change the leader is gathering: after a member reported a
// failure of generation Gen, every member still alive confirms (FailureReport) until
// all have or Deadline passes — or, once the members had a moment to confirm
// (SuspectGrace), until every member yet to confirm is one a ring error named; the
// next generation is made of those that confirmed, plus idle nodes joining.
type Reconfig struct {
	Gen       uint32    `json:"gen"`
	Started   time.Time `json:"started"`
	Deadline  time.Time `json:"deadline"`
	Confirmed []string  `json:"confirmed"` // node IDs
	Cause     string    `json:"cause"`
	// Suspects maps a member that reported a ring error to the member the error named.
	Suspects map[string]string `json:"suspects,omitempty"`
	// Growth says the change only adds idle nodes: members that have not confirmed by
	// the deadline are slow, not lost, and stay (a failure report ends that).
	Growth bool `json:"growth,omitempty"`
}

// Progress is where the job stands, as its ranks report it.
type Progress struct {
	Step          int64     `json:"step"` // optimizer steps applied
	TotalSteps    int64     `json:"total_steps"`
	Epoch         int       `json:"epoch"`
	Loss          float64   `json:"loss"` // the last step's, averaged over the global batch
	SamplesPerSec float64   `json:"samples_per_s"`
	Updated       time.Time `json:"updated,omitzero"`
	// Eval is the latest evaluation: metric name -> value, at EvalStep.
	Eval     map[string]float64 `json:"eval,omitempty"`
	EvalStep int64              `json:"eval_step,omitempty"`
	// Recoveries counts the generations opened after the first.
	Recoveries int `json:"recoveries"`
	// UnitsDone and Records are a predict job's units done and their records;
	// SamplesPerSec is then those records over the time since the job started.
	UnitsDone int `json:"units_done,omitempty"`
	Records   int `json:"records,omitempty"`
	// LossScale and Skipped are an fp16 job's dynamic loss scale and the steps it
	// skipped for a gradient overflow, as of Step (zero for fp32 and bf16 jobs, and
	// while a coordinator member too old to record them is in the cluster).
	LossScale float64 `json:"loss_scale,omitempty"`
	Skipped   int64   `json:"skipped_steps,omitempty"`
}

// ETA estimates the time to the end from the reported rate.
func (p Progress) ETA(globalBatch int) time.Duration {
	if p.SamplesPerSec <= 0 || p.TotalSteps <= p.Step {
		return 0
	}
	return time.Duration(float64(p.TotalSteps-p.Step) * float64(globalBatch) / p.SamplesPerSec * float64(time.Second))
}

// Checkpoint is the manifest of one save step: each rank's checksum of its weights and
// optimizer state. Ranks hold identical replicas, so the checksums must agree.
type Checkpoint struct {
	Step      int64             `json:"step"`
	Gen       uint32            `json:"gen"`
	Checksums map[string]string `json:"checksums"` // node -> hex sha256
	Time      time.Time         `json:"time"`
}

// Artifact is a model kept by the coordinator: a tar of a checkpoint directory in the
// blob store.
type Artifact struct {
	Blob    string             `json:"blob"`
	Size    int64              `json:"size"`
	Step    int64              `json:"step"`
	Node    string             `json:"node"` // who uploaded it
	Metrics map[string]float64 `json:"metrics,omitempty"`
}

// ClusterSpec is the cluster: section of a job spec. `bertnode train` ignores it.
type ClusterSpec struct {
	// Nodes is how many replicas the job trains on; MinNodes how few it keeps going
	// with after failures (default 1) and how many it needs to start (default Nodes).
	Nodes    int `json:"nodes" yaml:"nodes"`
	MinNodes int `json:"min_nodes" yaml:"min_nodes"`
	// Batch is constant (default: the global batch, batch_size x grad_accum, stays
	// the same whatever the number of nodes; survivors take larger shares) or shrink
	// (each node keeps batch_size x grad_accum; the learning rate scales with the
	// number of nodes against Nodes).
	Batch string `json:"batch" yaml:"batch"`
	// Balance cuts each global batch among the ranks in proportion to their measured
	// speed (samples per second of compute over the last steps) instead of evenly, so
	// a slow node holds the others back less. Same samples, same order; only the
	// summation's grouping changes.
	Balance bool `json:"balance" yaml:"balance"`
	// Codec is the gradient all-reduce's compression: none, s2, zstd, bf16, fp16, powersgd.
	Codec string `json:"codec" yaml:"codec"`
	// PowerSGDRank is codec powersgd's rank (default 4). PowerSGDStartStep is its first
	// compressed step (default 100): the steps before it are reduced exactly, as with
	// codec none (torch's start_powerSGD_iter); 0 means the default, 1 compresses all
	// but the first step. See allreduce/README.md, "Training with each codec".
	PowerSGDRank      int `json:"powersgd_rank" yaml:"powersgd_rank"`
	PowerSGDStartStep int `json:"powersgd_start_step" yaml:"powersgd_start_step"`
	// RingTimeout bounds how long a rank waits for a neighbour (default 10s);
	// RejoinWindow how long the leader waits for the members' confirmations after a
	// failure before it leaves out those that did not confirm (default 3s).
	RingTimeout  Duration `json:"ring_timeout" yaml:"ring_timeout"`
	RejoinWindow Duration `json:"rejoin_window" yaml:"rejoin_window"`
	// Data is stream (default: nodes read records from the coordinator over HTTP) or
	// shared (the paths are visible to every node and coordinator).
	Data string `json:"data" yaml:"data"`
	// BlockRecords and WindowBlocks set the shuffle: the order is a permutation of
	// blocks of consecutive records, then of records within windows of blocks.
	BlockRecords int `json:"block_records" yaml:"block_records"`
	WindowBlocks int `json:"window_blocks" yaml:"window_blocks"`
}

// WithDefaults fills the zero fields.
func (c ClusterSpec) WithDefaults() ClusterSpec {
	if c.Nodes == 0 {
		c.Nodes = 1
	}
	if c.MinNodes == 0 {
		c.MinNodes = 1
	}
	if c.Batch == "" {
		c.Batch = "constant"
	}
	if c.Codec == "" {
		c.Codec = "none"
	}
	if c.PowerSGDRank == 0 {
		c.PowerSGDRank = 4
	}
	if c.PowerSGDStartStep == 0 {
		c.PowerSGDStartStep = 100
	}
	if c.RingTimeout == 0 {
		c.RingTimeout = Duration(10 * time.Second)
	}
	if c.RejoinWindow == 0 {
		c.RejoinWindow = Duration(3 * time.Second)
	}
	if c.Data == "" {
		c.Data = "stream"
	}
	if c.BlockRecords == 0 {
		c.BlockRecords = 256
	}
	if c.WindowBlocks == 0 {
		c.WindowBlocks = 4
	}
	return c
}

// Validate names the first bad field.
func (c ClusterSpec) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("job spec: cluster.%s: %s", field, fmt.Sprintf(format, args...))
	}
	switch {
	case c.Nodes < 1 || c.Nodes > 64:
		return bad("nodes", "%d is not in [1, 64]", c.Nodes)
	case c.MinNodes < 1 || c.MinNodes > c.Nodes:
		return bad("min_nodes", "%d is not in [1, nodes=%d]", c.MinNodes, c.Nodes)
	case c.Batch != "constant" && c.Batch != "shrink":
		return bad("batch", "%q: want constant or shrink", c.Batch)
	case c.Data != "stream" && c.Data != "shared":
		return bad("data", "%q: want stream or shared", c.Data)
	case c.RingTimeout < Duration(100*time.Millisecond):
		return bad("ring_timeout", "%v is too short (at least 100ms)", time.Duration(c.RingTimeout))
	case c.RejoinWindow < Duration(100*time.Millisecond):
		return bad("rejoin_window", "%v is too short (at least 100ms)", time.Duration(c.RejoinWindow))
	case c.BlockRecords < 1:
		return bad("block_records", "%d: must be positive", c.BlockRecords)
	case c.WindowBlocks < 1:
		return bad("window_blocks", "%d: must be positive", c.WindowBlocks)
	case c.PowerSGDRank < 1 || c.PowerSGDRank > 64:
		return bad("powersgd_rank", "%d is not in [1, 64]", c.PowerSGDRank)
	case c.PowerSGDStartStep < 1:
		return bad("powersgd_start_step", "%d: must be positive", c.PowerSGDStartStep)
	}
	switch c.Codec {
	case "none", "s2", "zstd", "bf16", "fp16", "powersgd":
	default:
		return bad("codec", "%q: want none, s2, zstd, bf16, fp16 or powersgd", c.Codec)
	}
	return nil
}

// Duration is a time.Duration written as "5s" in YAML and JSON.
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Assignment is what a node is told to do: the answer to its blocking watch.
type Assignment struct {
	// Index is the raft index the answer reflects; pass it back to wait for a change.
	Index uint64 `json:"index"`
	// Job is nil when the node is idle (or its job was cancelled or finished).
	Job *Job `json:"job,omitempty"`
	// Gen and Rank place the node: the ring of Job.Gen, at Rank. Rank is -1 when the
	// node is assigned to the job but not in its current generation (it joins the next).
	Gen  uint32 `json:"gen"`
	Rank int    `json:"rank"`
	// Reregister asks the node to register again: it was left out of a generation
	// (Node.Unproven), and registering shows it is alive.
	Reregister bool `json:"reregister,omitempty"`
}

// Requests.

// SubmitRequest submits a job. Spec is the YAML text.
type SubmitRequest struct {
	Name     string `json:"name,omitempty"`
	Spec     string `json:"spec"`
	ResumeOf string `json:"resume_of,omitempty"`
}

// SubmitResponse names the new job.
type SubmitResponse struct {
	ID string `json:"id"`
}

// RegisterNode adds or refreshes a worker.
type RegisterNode struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	RingAddr string `json:"ring_addr"`
	HTTPAddr string `json:"http_addr"`
	Device   string `json:"device"`
}

// JoinMember asks the leader to add a coordinator as a raft voter, or to update its
// record: a member restarted with other addresses or an upgraded build sends it again.
type JoinMember struct {
	ID         string `json:"id"`
	RaftAddr   string `json:"raft_addr"`
	APIAddr    string `json:"api_addr"`
	GossipAddr string `json:"gossip_addr"`
	Protocol   int    `json:"protocol,omitempty"` // see Member.Protocol
}

// Self is GET /v1/self: the member that answers, from itself rather than the
// replicated state (which a member that belongs to no cluster yet lacks): what
// --bootstrap-expect's members find each other by.
type Self struct {
	JoinMember
	// Clustered: its raft configuration lists servers (it bootstrapped, or a cluster
	// took it in).
	Clustered bool `json:"clustered"`
	// Halted: why the member stopped, a snapshot from a newer build that its build
	// cannot hold; "" while it runs (docs/cluster.md, Rolling upgrades).
	Halted string `json:"halted,omitempty"`
}

// ProgressReport is a node's periodic report (at most about once a second). Every
// rank sends its own rate; the global fields (Step, Epoch, Loss, Eval) are the same on
// every rank, and the coordinator keeps the newest.
type ProgressReport struct {
	Node          string             `json:"node"`
	Gen           uint32             `json:"gen"`
	Rank          int                `json:"rank"`
	Step          int64              `json:"step"`
	TotalSteps    int64              `json:"total_steps"`
	Epoch         int                `json:"epoch"`
	Loss          float64            `json:"loss"`
	SamplesPerSec float64            `json:"samples_per_s"` // the whole ring's
	NodeRate      float64            `json:"node_samples_per_s"`
	StepMillis    float64            `json:"step_ms"`
	Eval          map[string]float64 `json:"eval,omitempty"`
	EvalStep      int64              `json:"eval_step,omitempty"`
	// LossScale and Skipped: an fp16 job's loss scale and steps skipped so far.
	LossScale float64 `json:"loss_scale,omitempty"`
	Skipped   int64   `json:"skipped_steps,omitempty"`
}

// FailureReport says a node's ring of generation Gen failed (Error), or, with Error
// empty, confirms the node is alive and ready for the next generation after another
// member's report. Applied is the last optimizer step the node applied.
type FailureReport struct {
	Node    string `json:"node"`
	Gen     uint32 `json:"gen"`
	Applied int64  `json:"applied"`
	Error   string `json:"error,omitempty"`
	// Suspect is the node the error names (the neighbour that closed or timed out),
	// when known. The leader treats it as a hint, not a verdict.
	Suspect string `json:"suspect,omitempty"`
}

// CheckpointReport is one rank's checksum at a save step.
type CheckpointReport struct {
	Node     string `json:"node"`
	Gen      uint32 `json:"gen"`
	Step     int64  `json:"step"`
	Checksum string `json:"checksum"`
}

// ResultReport registers a model a node uploaded to the blob store.
type ResultReport struct {
	Node    string             `json:"node"`
	Kind    string             `json:"kind"` // final | best | checkpoint
	Blob    string             `json:"blob"`
	Size    int64              `json:"size"`
	Step    int64              `json:"step"`
	Metrics map[string]float64 `json:"metrics,omitempty"`
}

// DoneReport ends a job: rank 0 sends it after the final model is uploaded, or any
// rank when the job cannot go on (Error: the job fails).
type DoneReport struct {
	Node  string `json:"node"`
	Gen   uint32 `json:"gen"`
	Step  int64  `json:"step"`
	Error string `json:"error,omitempty"`
	// Eval is the last evaluation's metrics, at step EvalStep: its progress report may
	// have been refused when a generation change came between the two.
	Eval     map[string]float64 `json:"eval,omitempty"`
	EvalStep int64              `json:"eval_step,omitempty"`
}

// LeaseRequest asks for a unit of a predict job to work on.
type LeaseRequest struct {
	Node string `json:"node"`
}

// JobOutputs are a predict job's units' output blobs, in unit order ("" for a unit
// not done): its output is their concatenation.
type JobOutputs struct {
	Blobs []string `json:"blobs"`
}

// RenewRequest extends a node's lease on the unit it works on: a working node renews
// at a third of the lease, so that a unit slower than the lease stays its own.
type RenewRequest struct {
	Node string `json:"node"`
	Unit int    `json:"unit"`
}

// Lease is the answer: the unit to do (a block of the input's plan) until Expires, or
// Unit -1 when none is free now (all are done or leased to others).
type Lease struct {
	Unit    int       `json:"unit"`
	Expires time.Time `json:"expires,omitzero"`
}

// UnitReport says a node did a unit of a predict job: Blob holds its output, Records
// lines. Only the lease holder's report counts; one for a unit already done is ignored.
type UnitReport struct {
	Node    string `json:"node"`
	Unit    int    `json:"unit"`
	Blob    string `json:"blob"`
	Records int    `json:"records"`
}

// Error is every non-2xx answer's body, and the error the client returns for it.
type Error struct {
	Message string `json:"error"`
	// Field names the request field at fault, when one is.
	Field string `json:"field,omitempty"`
	// Leader is the leader's API address when the answering member is not it and the
	// request could not be forwarded.
	Leader string `json:"leader,omitempty"`
	// Superseded: a node reported for a generation the job has left (a newer one is
	// open, or it waits for nodes). The node's generation is over, not the job: it goes
	// on with the next one.
	Superseded bool `json:"superseded,omitempty"`
	// Status is the HTTP status it came with (not sent: it is the answer's status line).
	Status int `json:"-"`
}

func (e *Error) Error() string {
	if e.Field != "" && !strings.Contains(e.Message, e.Field) {
		return e.Field + ": " + e.Message
	}
	return e.Message
}

// Event is one entry of a job's log: what happened to it, in the order the replicated
// state saw it.
type Event struct {
	Seq     int64     `json:"seq"` // 1, 2, ... per job; the log keeps the newest few hundred
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"` // submitted, planned, generation, reconfig, failure, confirm, waiting, checkpoint, eval, result, succeeded, failed, cancelled
	Gen     uint32    `json:"gen,omitempty"`
	Node    string    `json:"node,omitempty"`
	Message string    `json:"message"`
	// Step and Metrics are an eval event's evaluation, for those who read a job's
	// learning curve (bertnode sweep prunes by it).
	Step    int64              `json:"step,omitempty"`
	Metrics map[string]float64 `json:"metrics,omitempty"`
}

// JobLogs is GET /v1/jobs/{id}/logs.
type JobLogs struct {
	Index  uint64  `json:"index"`
	Events []Event `json:"events"`
}

// Cluster is GET /v1/cluster: where to reach the coordinators, for joining.
type Cluster struct {
	Leader string   `json:"leader"` // leader member ID
	API    []string `json:"api"`    // members' API addresses
	Gossip []string `json:"gossip"` // members' gossip addresses
	// GossipProfile is the answering member's gossip timing (lan, local): a node that
	// gossips with another one detects failures on another clock.
	GossipProfile string `json:"gossip_profile,omitempty"`
}

// BlobHolder is POST /v1/blobs/{sha256}/holders: a member says it stores a blob.
type BlobHolder struct {
	Member string `json:"member"`
	Size   int64  `json:"size"`
	// Upload: a client uploaded it (again), not a copy between members: the grace an
	// unreferenced blob has starts over.
	Upload bool `json:"upload,omitempty"`
}

// Status is GET /v1/status: the cluster at a glance.
type Status struct {
	Leader  string   `json:"leader"` // leader member ID
	Members []Member `json:"members"`
	Nodes   []Node   `json:"nodes"`
	Jobs    []Job    `json:"jobs"`
	Index   uint64   `json:"index"`
}
