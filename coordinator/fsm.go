package coordinator

import (
	"cmp"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strings"
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
	// halt: why a command or a snapshot this build cannot hold halted it, "" until one
	// does; then it applies, restores and snapshots nothing more, and stopped is closed.
	halt    halt
	stopped chan struct{}
}

// NewFSM is an FSM of this build's protocol holding the empty state.
func NewFSM() *FSM { return newFSM(Protocol) }

func newFSM(protocol int) *FSM {
	return &FSM{state: NewState(), protocol: protocol, stopped: make(chan struct{})}
}

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
// for good; halted, the member applies nothing more (each later entry answers the
// halt), and Snapshot refuses, so that no snapshot counts the command applied and the
// log keeps it: raft counts an entry applied once Apply returns, but only in memory,
// and a restart resumes from the latest snapshot. The member stops raft (Server.halt);
// the upgraded build applies the command from its log. (Consul's FSM panics on an
// unknown message type, which ends the process from raft's goroutine with a goroutine
// dump, again at every start under systemd; halted, the member stays up and says why
// on /v1/self.)
func (f *FSM) Apply(l *raft.Log) any {
	if h := f.Halted(); h != nil {
		return ApplyResult{Err: h}
	}
	var c Command
	if err := json.Unmarshal(l.Data, &c); err != nil {
		return ApplyResult{Err: errorf(http.StatusBadRequest, "command at index %d: %v", l.Index, err)}
	}
	if !applies(c.Type, f.protocol) {
		return ApplyResult{Err: f.stop(haltCommand(c.Type, l.Index, f.protocol))}
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

// stop halts the FSM with h and returns it. Apply and Restore, which one goroutine
// calls (raft's FSM goroutine, or RecoverCluster's replay), return the halt before they
// get here once halted: stopped is closed once.
func (f *FSM) stop(h halt) halt {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.halt = h
	close(f.stopped)
	return h
}

// halt is what an FSM halts with when raft gives it what its build cannot hold: the
// operator's instructions. Apply answers it, Restore and Snapshot return it (Halted).
type halt string

func (h halt) Error() string { return string(h) }

// haltCommand is what a member halts with on command typ at index, which its protocol
// lacks. An older build does not know typ at all.
func haltCommand(typ string, index uint64, protocol int) halt {
	need, build := fmt.Sprintf("is unknown to this member's protocol %d", protocol), "the build the other members run"
	if a, ok := appliers[typ]; ok {
		need = fmt.Sprintf("needs coordinator protocol %d, newer than this member's protocol %d", a.since, protocol)
		build = fmt.Sprintf("a build of protocol %d or later", a.since)
	}
	return halted(fmt.Sprintf("at raft index %d: command %q %s", index, typ, need), build, "applies the command from its log")
}

// halted is the message a member halts with on what, which came from a newer build:
// the operator is to run it on build, where it then does then.
func halted(what, build, then string) halt {
	return halt(fmt.Sprintf("coordinator: halted %s (from a newer build: this member was rolled back, or joined on an "+
		"older build). Upgrade this member to %s (after a rollback, the one it ran before) and start it with its data "+
		"directory as it is: it %s. Starting it afresh on this build does not help: the other members' logs and snapshots "+
		"hold what this build cannot apply. While it is down the others go on if they are a majority (docs/cluster.md, "+
		"Rolling upgrades)", what, build, then))
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

// snapshotState is what a snapshot holds: the state as JSON, with the protocols a
// build restoring it checks against its own (a build before them ignores them, as any
// field it does not know).
type snapshotState struct {
	*State
	snapshotProtocols
}

// snapshotProtocols are a snapshot's protocols; a snapshot written before them has
// neither, and needs no build newer than one that restores it.
type snapshotProtocols struct {
	// Writer is the protocol of the build that wrote it.
	Writer int `json:"written_by_protocol,omitempty"`
	// Needs is the oldest protocol whose builds hold its state whole (State.needs).
	Needs int `json:"needs_protocol,omitempty"`
}

// Snapshot implements raft.FSM: the state as JSON, encoded now, written later. Halted,
// it refuses: raft would label the state with the index of the last entry it gave
// Apply, past the command that halted it, and a restart, on the upgraded build too,
// would resume from that snapshot and never apply the command (which raft then
// compacts from the log in time). raft logs a refused snapshot and tries again later;
// RecoverCluster, which replays the log into an FSM, fails on it before it compacts
// anything (openRaft).
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	if h := f.Halted(); h != nil {
		return nil, h
	}
	f.mu.RLock()
	b, err := json.Marshal(snapshotState{f.state, snapshotProtocols{Writer: f.protocol, Needs: f.state.needs()}})
	f.mu.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("fsm snapshot: %w", err)
	}
	return snapshot(b), nil
}

// Restore implements raft.FSM: it replaces the state with the snapshot's. A snapshot
// whose state this build cannot hold whole halts it, the state as it was: decoded, the
// state would lack what the build does not know, without a word, and diverge from the
// other members'. The halt is its error, to raft, and every later restore's: raft,
// starting, would restore an older snapshot instead and replay a log compacted since;
// refusing them all, it fails to start (openRaft). Sent by the leader, the snapshot is
// not applied (raft moves on only once a restore succeeds), and the member stops raft
// (Server.halt). A panic would end the process from raft's goroutine.
func (f *FSM) Restore(r io.ReadCloser) error {
	defer r.Close()
	if h := f.Halted(); h != nil {
		return h
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("fsm restore: %w", err)
	}
	s := NewState() // the maps a snapshot lacks stay empty
	if err := f.holds(b, s); err != nil {
		if h, ok := err.(halt); ok {
			return f.stop(h)
		}
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

// Halted is why a command (Apply) or a snapshot (Restore) halted the FSM, nil while
// none has.
func (f *FSM) Halted() error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.halt == "" {
		return nil
	}
	return f.halt
}

// holds decodes snapshot b into s, or returns a halt when this build cannot hold its
// state whole: it needs a newer protocol, or a newer build wrote what this one fails to
// decode or has no field for. Another build of this protocol or an older one wrote
// nothing this one lacks: its unknown fields are ones this build dropped, which a
// state of it may hold.
func (f *FSM) holds(b []byte, s *State) error {
	var p struct {
		snapshotProtocols
		Index uint64 `json:"index"`
	}
	_ = json.Unmarshal(b, &p) // a snapshot that fails to decode says why below
	at := func(why string) string {
		return fmt.Sprintf("restoring the snapshot of raft index %d: its state %s", p.Index, why)
	}
	if p.Needs > f.protocol {
		return halted(at(fmt.Sprintf("needs coordinator protocol %d, newer than this member's protocol %d", p.Needs, f.protocol)),
			fmt.Sprintf("a build of protocol %d or later", p.Needs), "restores the snapshot")
	}
	err := json.Unmarshal(b, &snapshotState{State: s})
	if p.Writer <= f.protocol {
		return err
	}
	why := ""
	if err != nil {
		why = fmt.Sprintf("does not decode on this member's protocol %d (%v)", f.protocol, err)
	} else {
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		if u := unknownFields(v, reflect.TypeFor[snapshotState](), "", nil); len(u) > 0 {
			why = fmt.Sprintf("holds what this member's protocol %d does not know: %s", f.protocol, strings.Join(u, ", "))
		}
	}
	if why == "" {
		return nil
	}
	return halted(at(why+fmt.Sprintf(", written by a build of protocol %d", p.Writer)),
		fmt.Sprintf("a build of protocol %d or later", p.Writer), "restores the snapshot")
}

// needs is the oldest protocol whose builds hold s whole, which its snapshots claim.
// A field added to the state tells a build that lacks it by its name (unknownFields,
// when a newer build wrote it); a new meaning of a field an older build has (a new
// value) is counted here, as is a progress's loss scale (protocolLossScale), so that
// the halt names the protocol that holds it.
func (s *State) needs() int {
	n := ProtocolOldest
	for _, j := range s.Jobs {
		if j.Kind == api.KindPredict { // a predict job came with leases
			n = max(n, appliers[CmdLease].since)
		}
		if j.Progress.LossScale != 0 || j.Progress.Skipped != 0 {
			n = max(n, protocolLossScale)
		}
	}
	return n
}

// unknownFields appends to out the paths, under path, of the keys in JSON value v,
// decoded as a t, that no field of t takes, sorted; a key of a zero value (null,
// false, 0, "", empty, a zero time, an object of those) is absent to a build that lacks it as to one that
// has it. A type that decodes itself is opaque.
func unknownFields(v any, t reflect.Type, path string, out []string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if p := reflect.PointerTo(t); p.Implements(reflect.TypeFor[json.Unmarshaler]()) || p.Implements(reflect.TypeFor[encoding.TextUnmarshaler]()) {
		return out
	}
	switch x := v.(type) {
	case map[string]any:
		keys := slices.Sorted(maps.Keys(x))
		switch t.Kind() {
		case reflect.Map:
			for _, k := range keys {
				out = unknownFields(x[k], t.Elem(), fmt.Sprintf("%s[%q]", path, k), out)
			}
		case reflect.Struct:
			fields := jsonFields(t, map[string]reflect.Type{})
			for _, k := range keys {
				at := strings.TrimPrefix(path+"."+k, ".")
				if ft, ok := fields[k]; ok {
					out = unknownFields(x[k], ft, at, out)
				} else if !zeroJSON(x[k]) {
					out = append(out, at)
				}
			}
		}
	case []any:
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			for i, e := range x {
				out = unknownFields(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), out)
			}
		}
	}
	return out
}

// jsonFields adds to fields the JSON keys of struct t's fields, those of embedded
// structs without a name promoted, as encoding/json encodes them (it decodes a key
// that differs in case too, which no build writes).
func jsonFields(t reflect.Type, fields map[string]reflect.Type) map[string]reflect.Type {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		ft := f.Type
		if f.Anonymous && name == "" {
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				jsonFields(ft, fields)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		fields[cmp.Or(name, f.Name)] = f.Type
	}
	return fields
}

// zeroJSON says whether v, decoded JSON, is the zero value of any Go type that
// encodes as it.
func zeroJSON(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case bool:
		return !x
	case float64:
		return x == 0
	case string:
		return x == "" || x == "0001-01-01T00:00:00Z"
	case []any:
		return len(x) == 0
	case map[string]any:
		for _, e := range x {
			if !zeroJSON(e) {
				return false
			}
		}
		return true
	}
	return false
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
