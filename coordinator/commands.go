package coordinator

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/bertnode/bertnode/api"
)

// Command is one raft log entry: a change to the replicated state. Time is the
// leader's clock when it made the command, so that applying it needs no clock.
type Command struct {
	Type string          `json:"type"`
	Time time.Time       `json:"time"`
	Body json.RawMessage `json:"body"`
}

// The command types and their bodies.
const (
	CmdMemberJoin     = "member_join"     // api.JoinMember
	CmdMemberRemove   = "member_remove"   // MemberRemove
	CmdNodeRegister   = "node_register"   // api.RegisterNode
	CmdNodeDrain      = "node_drain"      // NodeDrain
	CmdNodeRemove     = "node_remove"     // NodeRemove
	CmdHealth         = "health"          // HealthUpdates
	CmdJobSubmit      = "job_submit"      // JobSubmit
	CmdDatasetPlanned = "dataset_planned" // DatasetPlanned
	CmdJobReason      = "job_reason"      // JobReason
	CmdOpenGeneration = "open_generation" // OpenGeneration
	CmdBeginReconfig  = "begin_reconfig"  // BeginReconfig
	CmdWaitForNodes   = "wait_for_nodes"  // WaitForNodes
	CmdFailure        = "failure"         // JobFailure
	CmdProgress       = "progress"        // JobProgress
	CmdCheckpoint     = "checkpoint"      // JobCheckpoint
	CmdResult         = "result"          // JobResult
	CmdDone           = "done"            // JobDone
	CmdCancel         = "cancel"          // JobCancel
	CmdJobDelete      = "job_delete"      // JobDelete
	CmdBlobStored     = "blob_stored"     // BlobStored
	CmdBlobsCollect   = "blobs_collect"   // BlobsCollect
	CmdDeletedTrim    = "deleted_trim"    // DeletedTrim
	CmdLease          = "lease"           // LeaseUnit
	CmdUnitDone       = "unit_done"       // JobUnit
	CmdRenew          = "renew"           // RenewLease
)

// MemberRemove takes a coordinator out of the member list.
type MemberRemove struct {
	ID string `json:"id"`
}

// NodeDrain turns a node's drain on or off.
type NodeDrain struct {
	Node  string `json:"node"`
	Drain bool   `json:"drain"`
}

// NodeRemove takes a node that is neither alive nor busy out of the state: `bertnode
// nodes remove`, or the leader's node GC, which sets Before (its time less
// Timing.NodeGC): then the node must also have been dead or left since before it, so
// that one that came back and went again since the leader looked stays.
type NodeRemove struct {
	Node   string    `json:"node"`
	Before time.Time `json:"before,omitzero"`
}

// HealthUpdates carries what the leader reconciled from gossip.
type HealthUpdates struct {
	Updates []HealthUpdate `json:"updates"`
}

// HealthUpdate is one member's or node's new health.
type HealthUpdate struct {
	ID     string     `json:"id"`
	Member bool       `json:"member,omitempty"` // a coordinator, not a node
	Health api.Health `json:"health"`
	Why    string     `json:"why,omitempty"`
}

// JobSubmit adds a job; the state gives it its ID.
type JobSubmit struct {
	Job api.Job `json:"job"`
}

// DatasetPlanned is the leader's plan of one of a job's files, or why it failed.
type DatasetPlanned struct {
	Job     string   `json:"job"`
	Which   string   `json:"which"` // train | eval
	Plan    string   `json:"plan,omitempty"`
	Records int      `json:"records,omitempty"`
	Labels  []string `json:"labels,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// JobReason says what a pending job waits for.
type JobReason struct {
	Job    string `json:"job"`
	Reason string `json:"reason"`
}

// OpenGeneration gives a job its next ring: Members are node IDs in rank order.
type OpenGeneration struct {
	Job     string   `json:"job"`
	Gen     uint32   `json:"gen"` // must be the current one + 1
	Members []string `json:"members"`
	Reason  string   `json:"reason"`
}

// BeginReconfig starts gathering confirmations for a membership change of generation
// Gen that no report started: a member dead in gossip, or nodes that could join.
type BeginReconfig struct {
	Job   string `json:"job"`
	Gen   uint32 `json:"gen"`
	Cause string `json:"cause"`
	// Growth: the change only adds idle nodes (see api.Reconfig.Growth).
	Growth bool `json:"growth,omitempty"`
}

// WaitForNodes closes a reconfiguration that would leave fewer than min_nodes: Keep
// stay assigned (rank -1) for the next generation, the others are released.
type WaitForNodes struct {
	Job    string   `json:"job"`
	Gen    uint32   `json:"gen"`
	Keep   []string `json:"keep"`
	Reason string   `json:"reason"`
}

// JobFailure is a node's FailureReport.
type JobFailure struct {
	Job    string            `json:"job"`
	Report api.FailureReport `json:"report"`
}

// JobProgress is a node's ProgressReport.
type JobProgress struct {
	Job    string             `json:"job"`
	Report api.ProgressReport `json:"report"`
}

// JobCheckpoint is a node's CheckpointReport.
type JobCheckpoint struct {
	Job    string               `json:"job"`
	Report api.CheckpointReport `json:"report"`
}

// JobResult is a node's ResultReport.
type JobResult struct {
	Job    string           `json:"job"`
	Report api.ResultReport `json:"report"`
}

// JobDone is a node's DoneReport.
type JobDone struct {
	Job    string         `json:"job"`
	Report api.DoneReport `json:"report"`
}

// LeaseUnit gives Node a unit of predict job Job for For (api.Lease answers).
type LeaseUnit struct {
	Job  string       `json:"job"`
	Node string       `json:"node"`
	For  api.Duration `json:"for"`
}

// RenewLease extends Node's lease on Unit of predict job Job to the command's time
// plus For.
type RenewLease struct {
	Job  string       `json:"job"`
	Node string       `json:"node"`
	Unit int          `json:"unit"`
	For  api.Duration `json:"for"`
}

// JobUnit is a node's UnitReport.
type JobUnit struct {
	Job    string         `json:"job"`
	Report api.UnitReport `json:"report"`
}

// JobCancel cancels a job that has not ended.
type JobCancel struct {
	Job string `json:"job"`
}

// JobDelete removes an ended job and its event log, and unlists the blobs only it
// referenced.
type JobDelete struct {
	Job string `json:"job"`
}

// BlobStored says Member holds the blob SHA of Size bytes.
type BlobStored struct {
	SHA    string `json:"sha"`
	Size   int64  `json:"size"`
	Member string `json:"member"`
	// Upload: a client uploaded it (again); its grace starts over (Blob.Stored).
	Upload bool `json:"upload,omitempty"`
}

// BlobsCollect drops from the state the blobs no job references that no member has
// stored since Before (the leader's time less Timing.BlobGrace).
type BlobsCollect struct {
	Before time.Time `json:"before"`
}

// DeletedTrim forgets the deleted jobs deleted before Before (the leader's time less
// Timing.DeletedRetention): nodes away longer keep their files of them.
type DeletedTrim struct {
	Before time.Time `json:"before"`
}

// NewCommand encodes body as a command of type t made at time now.
func NewCommand(t string, now time.Time, body any) ([]byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("command %s: %w", t, err)
	}
	return json.Marshal(Command{Type: t, Time: now.UTC(), Body: b})
}
