package node

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"
)

// auditLog records, for the exactly-once audit, which samples this rank contributed
// to each step (written before the all-reduce, so a rank killed right after still
// shows what the survivors' summed gradient holds) and which steps it applied. Each
// line is one write(2) on an O_APPEND file: a SIGKILL cannot tear it.
type auditLog struct{ f *os.File }

// AuditEntry is one line of a node's audit.jsonl.
type AuditEntry struct {
	Gen     uint32  `json:"gen"`
	Step    int64   `json:"step"`              // the step (1-based) contributed to, or applied
	Epoch   int     `json:"epoch,omitempty"`   // contributions: the batch's epoch
	Rank    int     `json:"rank,omitempty"`    // contributions: this node's rank
	IDs     []int32 `json:"ids,omitempty"`     // contributions: the records of its piece
	Applied bool    `json:"applied,omitempty"` // the node applied Step
	// Time is when the entry was written, in Unix milliseconds: a fault suite measures
	// the time from a fault to the next applied step with it.
	Time int64 `json:"t"`
}

func openAudit(path string) (*auditLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return &auditLog{f}, nil
}

func (a *auditLog) write(e AuditEntry) error {
	e.Time = time.Now().UnixMilli()
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return appendLine(a.f, b)
}

// appendLine appends b and a newline to f, an append-only log of JSON lines: whole or
// not at all, as a full disk can take part of a line, which would make the log
// unreadable once more lines follow it.
func appendLine(f *os.File, b []byte) error {
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		if terr := f.Truncate(end); terr != nil {
			return fmt.Errorf("%w (and cutting the partial line: %v)", err, terr)
		}
		return err
	}
	return nil
}

func (a *auditLog) contribute(gen uint32, step int64, epoch, rank int, ids []int32) error {
	return a.write(AuditEntry{Gen: gen, Step: step, Epoch: epoch, Rank: rank, IDs: ids})
}

func (a *auditLog) applied(gen uint32, step int64) error {
	return a.write(AuditEntry{Gen: gen, Step: step, Applied: true})
}

func (a *auditLog) close() error { return a.f.Close() }

// ReadAudit reads a node's audit.jsonl.
func ReadAudit(path string) ([]AuditEntry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []AuditEntry
	for i, line := range bytes.Split(b, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var e AuditEntry
		if err := json.Unmarshal(line, &e); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, i+1, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// AuditReport is what the audit logs of all the nodes of a job say about its samples.
type AuditReport struct {
	Steps    int64 // steps applied, 1..Steps
	Epochs   int   // epochs touched
	Aborted  int   // step attempts superseded by a later generation's attempt
	Trained  int   // samples in the applied steps
	Lost     int   // samples of a finished epoch that no applied step trained
	Repeated int   // samples an epoch's applied steps trained more than once
	// PerEpoch counts the distinct samples trained in each epoch.
	PerEpoch []int
}

// Audit checks exactly-once training from the audit entries of every node that took
// part in a job (order does not matter), for a job of records training records. The
// attempt of step s that counts is the one from the latest generation that applied s:
// the state that went on is the newest one, and a later attempt at s that nobody
// applied was aborted (a generation that started from older state, while the node
// that held the newer state was away, retrains s only until that node's state wins
// the next agreement). That attempt must hold a piece from every rank of its
// generation. Every epoch but the last must cover every one of the train IDs once.
func Audit(entries []AuditEntry, train []int32) (AuditReport, error) {
	valid := make(map[int32]bool, len(train))
	for _, id := range train {
		valid[id] = true
	}
	type attempt struct {
		epoch int
		ranks map[int][]int32
	}
	steps := map[int64]map[uint32]*attempt{} // step -> gen -> attempt
	size := map[uint32]int{}                 // gen -> ranks seen
	var applied int64
	appliedBy := map[int64]uint32{} // step -> the latest generation that applied it
	for _, e := range entries {
		if e.Applied {
			applied = max(applied, e.Step)
			appliedBy[e.Step] = max(appliedBy[e.Step], e.Gen)
			continue
		}
		if steps[e.Step] == nil {
			steps[e.Step] = map[uint32]*attempt{}
		}
		a := steps[e.Step][e.Gen]
		if a == nil {
			a = &attempt{epoch: e.Epoch, ranks: map[int][]int32{}}
			steps[e.Step][e.Gen] = a
		}
		if _, dup := a.ranks[e.Rank]; dup {
			return AuditReport{}, fmt.Errorf("step %d, generation %d: rank %d contributed twice", e.Step, e.Gen, e.Rank)
		}
		a.ranks[e.Rank] = e.IDs
		size[e.Gen] = max(size[e.Gen], e.Rank+1)
	}
	r := AuditReport{Steps: applied}
	seen := map[int]map[int32]int{} // epoch -> id -> times
	for s := int64(1); s <= applied; s++ {
		gen := appliedBy[s]
		a := steps[s][gen]
		if a == nil {
			return r, fmt.Errorf("step %d was applied but no audit entry of the generation that applied it (%d) says what it trained", s, gen)
		}
		r.Aborted += len(steps[s]) - 1
		if len(a.ranks) != size[gen] {
			return r, fmt.Errorf("step %d, generation %d: pieces from %d of %d ranks", s, gen, len(a.ranks), size[gen])
		}
		if seen[a.epoch] == nil {
			seen[a.epoch] = map[int32]int{}
		}
		for _, ids := range a.ranks {
			for _, id := range ids {
				if !valid[id] {
					return r, fmt.Errorf("step %d: sample %d is not one of the %d training records", s, id, len(train))
				}
				seen[a.epoch][id]++
				r.Trained++
			}
		}
		r.Epochs = max(r.Epochs, a.epoch+1)
	}
	r.PerEpoch = make([]int, r.Epochs)
	for e := range r.Epochs {
		for _, n := range seen[e] {
			r.Repeated += n - 1
		}
		r.PerEpoch[e] = len(seen[e])
		if e < r.Epochs-1 {
			r.Lost += len(train) - len(seen[e])
		}
	}
	return r, nil
}
