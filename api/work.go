package api

import (
	"slices"
	"time"
)

// Work is a predict job's units, one per block of its input's plan (Job.Train), in
// record order, kept compact so that the job stays small whatever its input's size:
// the units done as ranges, the units under lease one by one, and each unit's output
// blob in the coordinators' state apart from the job (GET /v1/jobs/{id}/outputs).
type Work struct {
	Units        int `json:"units"`
	BlockRecords int `json:"block_records"` // each unit's records but the last's
	Records      int `json:"records"`       // the input's, in all units
	// Done are the units done as sorted, disjoint ranges [first, last], none adjacent.
	Done [][2]int `json:"done,omitempty"`
	// ByNode counts the units each node did.
	ByNode map[string]int `json:"by_node,omitempty"`
	// Leases are the units not done that a node holds or outlived a lease on, by unit.
	Leases []UnitLease `json:"leases,omitempty"`
}

// UnitLease is a unit not done that a node works on: its lease holder's until Expires
// (then another node may take it), and the nodes that outlived theirs on it.
type UnitLease struct {
	Unit    int       `json:"unit"`
	Node    string    `json:"node,omitempty"` // "" when the holder died or left the job
	Expires time.Time `json:"expires,omitzero"`
	// Outlived are the nodes whose lease on the unit ran out while they stayed alive on
	// the job: they may still be at it, and their output counts as the holder's does
	// (the first one in), so that a unit slower than its lease on every node still ends.
	Outlived []string `json:"outlived,omitempty"`
}

// NewWork is the work of an input of records in blocks of blockRecords.
func NewWork(records, blockRecords int) *Work {
	return &Work{Units: (records + blockRecords - 1) / blockRecords, BlockRecords: blockRecords, Records: records}
}

// UnitRecords is unit i's records.
func (w *Work) UnitRecords(i int) int { return min(w.BlockRecords, w.Records-i*w.BlockRecords) }

// doneRange is the index of the first range of Done that does not end before unit i.
func (w *Work) doneRange(i int) int {
	k, _ := slices.BinarySearchFunc(w.Done, i, func(r [2]int, i int) int { return r[1] - i })
	return k
}

// IsDone says whether unit i is done.
func (w *Work) IsDone(i int) bool {
	k := w.doneRange(i)
	return k < len(w.Done) && w.Done[k][0] <= i
}

// NextUndone is the first unit from i on that is not done; Units when none.
func (w *Work) NextUndone(i int) int {
	if k := w.doneRange(i); k < len(w.Done) && w.Done[k][0] <= i {
		i = w.Done[k][1] + 1
	}
	return min(i, w.Units)
}

// SetDone records unit i done (once), merging it with the ranges beside it.
func (w *Work) SetDone(i int) {
	k := w.doneRange(i)
	if k < len(w.Done) && w.Done[k][0] <= i {
		return
	}
	before := k > 0 && w.Done[k-1][1] == i-1
	after := k < len(w.Done) && w.Done[k][0] == i+1
	switch {
	case before && after:
		w.Done[k-1][1] = w.Done[k][1]
		w.Done = slices.Delete(w.Done, k, k+1)
	case before:
		w.Done[k-1][1] = i
	case after:
		w.Done[k][0] = i
	default:
		w.Done = slices.Insert(w.Done, k, [2]int{i, i})
	}
}

// Lease is unit i's lease, or nil.
func (w *Work) Lease(i int) *UnitLease {
	if k, ok := w.leaseIndex(i); ok {
		return &w.Leases[k]
	}
	return nil
}

// AddLease is unit i's lease, made empty if it had none.
func (w *Work) AddLease(i int) *UnitLease {
	k, ok := w.leaseIndex(i)
	if !ok {
		w.Leases = slices.Insert(w.Leases, k, UnitLease{Unit: i})
	}
	return &w.Leases[k]
}

// DropLease forgets unit i's lease.
func (w *Work) DropLease(i int) {
	if k, ok := w.leaseIndex(i); ok {
		w.Leases = slices.Delete(w.Leases, k, k+1)
	}
}

func (w *Work) leaseIndex(i int) (int, bool) {
	return slices.BinarySearchFunc(w.Leases, i, func(l UnitLease, i int) int { return l.Unit - i })
}
