package coordinator

import (
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
	mu    sync.RWMutex
	state *State
	hook  func(index uint64)
}

// NewFSM is an FSM holding the empty state.
func NewFSM() *FSM { return &FSM{state: NewState()} }

// OnApply sets the function called, outside the lock, after each apply and restore.
// Set it before raft starts.
func (f *FSM) OnApply(hook func(index uint64)) { f.hook = hook }

// ApplyResult is what Apply returns to the proposer through raft's ApplyFuture.
type ApplyResult struct {
	Value any
	Err   error
}

// Apply implements raft.FSM.
func (f *FSM) Apply(l *raft.Log) any {
	var c Command
	if err := json.Unmarshal(l.Data, &c); err != nil {
		return ApplyResult{Err: errorf(http.StatusBadRequest, "command at index %d: %v", l.Index, err)}
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
	s := NewState() // the maps a snapshot lacks stay empty
	if err := json.NewDecoder(r).Decode(s); err != nil {
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
