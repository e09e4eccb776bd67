package coordinator

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/hashicorp/raft"
)

// FSM is the raft state machine: it decodes committed commands and applies them to
// State. It does no I/O and keeps no clock; after each apply it calls the hook set
// with OnApply, which wakes blocking queries.
type FSM struct {
	mu       sync.RWMutex
	state    *State
	hook     func(index uint64)
	protocol int // the command types it applies (protocol.go)
}

// NewFSM is an FSM of this build's protocol holding the empty state.
func NewFSM() *FSM { return newFSM(Protocol) }

func newFSM(protocol int) *FSM { return &FSM{state: NewState(), protocol: protocol} }

// OnApply sets the function called, outside the lock, after each apply and restore.
// Set it before raft starts.
func (f *FSM) OnApply(hook func(index uint64)) { f.hook = hook }

// ApplyResult is what Apply returns to the proposer through raft's ApplyFuture.
type ApplyResult struct {
	Value any
	Err   error
}

// Apply implements raft.FSM. A command type its protocol lacks halts it: a newer
// leader proposed it while this member's build was older (which leaders of protocol
// versions refuse to do). Skipping it would leave this state diverged from the others'
// for good, as raft counts it applied, snapshots past it and compacts it from the log;
// halted, the member stops before applying it, and the upgraded build applies it from
// the log that still holds it (as Consul's FSM panics on an unknown message type).
func (f *FSM) Apply(l *raft.Log) any {
	var c Command
	if err := json.Unmarshal(l.Data, &c); err != nil {
		return ApplyResult{Err: errorf(http.StatusBadRequest, "command at index %d: %v", l.Index, err)}
	}
	if !applies(c.Type, f.protocol) {
		panic(halted(c.Type, l.Index, f.protocol))
	}
	f.mu.Lock()
	v, err := f.state.Apply(l.Index, &c)
	f.mu.Unlock()
	if f.hook != nil {
		f.hook(l.Index)
	}
	if err != nil {
		return ApplyResult{Err: err}
	}
	return ApplyResult{Value: v}
}

// halted is what a member halts with on command typ at index, which its protocol
// lacks: what the operator must do. An older build does not know typ at all.
func halted(typ string, index uint64, protocol int) string {
	need, build := fmt.Sprintf("is unknown to this member's protocol %d", protocol), "the build the other members run"
	if a, ok := appliers[typ]; ok {
		need = fmt.Sprintf("needs coordinator protocol %d, newer than this member's protocol %d", a.since, protocol)
		build = fmt.Sprintf("a build of protocol %d or later", a.since)
	}
	return fmt.Sprintf("coordinator: halted at raft index %d: command %q %s (a newer build proposed it: this member was "+
		"rolled back, or joined on an older build). Upgrade this member to %s (after a rollback, the one it ran before) and "+
		"start it with its data directory as it is: it applies the command from its log. Starting it afresh on this build "+
		"does not help: the other members' logs and snapshots hold what this build cannot apply. While it is down the "+
		"others go on if they are a majority (docs/cluster.md, Rolling upgrades)", index, typ, need, build)
}

// Read calls fn with the state under the read lock; fn must not keep references to
// it after returning.
func (f *FSM) Read(fn func(s *State)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	fn(f.state)
}

// Index is the raft index of the last command applied.
func (f *FSM) Index() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.state.Index
}

// Snapshot implements raft.FSM: the state as JSON, encoded now, written later.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	b, err := json.Marshal(f.state)
	f.mu.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("fsm snapshot: %w", err)
	}
	return snapshot(b), nil
}

// Restore implements raft.FSM: it replaces the state with the snapshot's.
func (f *FSM) Restore(r io.ReadCloser) error {
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("fsm restore: %w", err)
	}
	s := NewState() // the maps a snapshot lacks stay empty
	if err := json.Unmarshal(b, s); err != nil {
		return fmt.Errorf("fsm restore: %w", err)
	}
	if err := s.upgradeUnits(b); err != nil {
		return fmt.Errorf("fsm restore: %w", err)
	}
	if err := s.check(); err != nil {
		return fmt.Errorf("fsm restore: %w", err)
	}
	f.mu.Lock()
	f.state = s
	f.mu.Unlock()
	if f.hook != nil {
		f.hook(s.Index)
	}
	return nil
}

// legacyUnit is a predict job's unit as states kept them before api.Work, one by one
// in the job (jobs[].units).
type legacyUnit struct {
	Node     string    `json:"node"`
	Expires  time.Time `json:"expires"`
	Records  int       `json:"records"`
	Blob     string    `json:"blob"`
	Outlived []string  `json:"outlived"`
}

// upgradeUnits turns the units of snapshot b's jobs, written before api.Work, into
// the jobs' Work and the state's Outputs.
func (s *State) upgradeUnits(b []byte) error {
	var old struct {
		Jobs map[string]struct {
			Units []legacyUnit `json:"units"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal(b, &old); err != nil {
		return err
	}
	for id, o := range old.Jobs {
		j := s.Jobs[id]
		if len(o.Units) == 0 || j == nil || j.Work != nil {
			continue
		}
		records := 0
		for _, u := range o.Units {
			records += u.Records
		}
		if j.Cluster.BlockRecords < 1 {
			return fmt.Errorf("jobs[%q]: units, but block_records %d", id, j.Cluster.BlockRecords)
		}
		w := api.NewWork(records, j.Cluster.BlockRecords)
		if w.Units != len(o.Units) {
			return fmt.Errorf("jobs[%q]: %d units of %d records in blocks of %d", id, len(o.Units), records, w.BlockRecords)
		}
		out := make([]byte, sha256.Size*w.Units)
		for i, u := range o.Units {
			switch {
			case u.Blob != "":
				sum, err := hex.DecodeString(u.Blob)
				if err != nil || len(sum) != sha256.Size {
					return fmt.Errorf("jobs[%q]: unit %d: blob %q is not a sha256", id, i, u.Blob)
				}
				copy(out[sha256.Size*i:], sum)
				w.SetDone(i)
				if w.ByNode == nil {
					w.ByNode = map[string]int{}
				}
				w.ByNode[u.Node]++
			case u.Node != "" || len(u.Outlived) > 0:
				w.Leases = append(w.Leases, api.UnitLease{Unit: i, Node: u.Node, Expires: u.Expires, Outlived: u.Outlived})
			}
		}
		j.Work, s.Outputs[id] = w, out
	}
	return nil
}

type snapshot []byte

func (b snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(b); err != nil {
		sink.Cancel()
		return fmt.Errorf("fsm snapshot: %w", err)
	}
	return sink.Close()
}

func (snapshot) Release() {}

// check refuses a decoded snapshot whose state apply and the leader would trip on,
// which no Snapshot writes: a null entry, an entry under another ID, a running job
// without a generation, or whose generation has a member that is no node (nodeRemove
// refuses those; a finished job's may). A null map is empty.
func (s *State) check() error {
	for _, m := range []*map[string]time.Time{&s.Deleted, &s.DeletedAt} {
		if *m == nil {
			*m = map[string]time.Time{}
		}
	}
	if s.Topics == nil {
		s.Topics = map[string]uint64{}
	}
	if s.Events == nil {
		s.Events = map[string][]api.Event{}
	}
	if s.Blobs == nil {
		s.Blobs = map[string]*Blob{}
	}
	if s.Outputs == nil {
		s.Outputs = map[string][]byte{}
	}
	for sha, b := range s.Blobs {
		if b == nil {
			return fmt.Errorf("blobs[%q] is null", sha)
		}
	}
	if err := checkEntries("members", &s.Members, func(m *api.Member) string { return m.ID }); err != nil {
		return err
	}
	if err := checkEntries("nodes", &s.Nodes, func(n *api.Node) string { return n.ID }); err != nil {
		return err
	}
	if err := checkEntries("jobs", &s.Jobs, func(j *api.Job) string { return j.ID }); err != nil {
		return err
	}
	for id, j := range s.Jobs {
		if w := j.Work; w != nil && (w.Units < 0 || len(s.Outputs[id]) != sha256.Size*w.Units) {
			return fmt.Errorf("jobs[%q]: %d units, %d bytes of outputs", id, w.Units, len(s.Outputs[id]))
		}
		if j.State == api.Running && j.Gen == nil {
			return fmt.Errorf("jobs[%q] is running without a generation", id)
		}
		if j.State != api.Running {
			continue // a finished job's generation may name nodes removed since
		}
		for _, m := range j.Gen.Members {
			if s.Nodes[m.Node] == nil {
				return fmt.Errorf("jobs[%q]: generation %d has member %q, which is no node", id, j.Gen.Gen, m.Node)
			}
		}
	}
	return nil
}

// checkEntries makes a null map *m empty and refuses a null entry or one under
// another key than its ID.
func checkEntries[T any](what string, m *map[string]*T, id func(*T) string) error {
	if *m == nil {
		*m = map[string]*T{}
	}
	for k, v := range *m {
		if v == nil {
			return fmt.Errorf("%s[%q] is null", what, k)
		}
		if id(v) != k {
			return fmt.Errorf("%s[%q] has ID %q", what, k, id(v))
		}
	}
	return nil
}
