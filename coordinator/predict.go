package coordinator

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/bertnode/bertnode/api"
)

// Predict jobs (bertnode infer, docs/cluster.md "Predict jobs"): the input is planned
// as training data is, and each block of the plan is a unit of work (api.Work). Nodes
// on the job lease units one at a time, renew the lease while they work, upload each
// unit's output and report it; the state records a unit done once, from its lease
// holder. Units are independent: no ring, so a node lost gives its leases back and
// the others go on.

// freeUnit is the unit node should do at time t: the one it holds, else the first
// neither done nor under a live lease; -1 when none.
func freeUnit(j *api.Job, node string, t time.Time) int {
	w := j.Work
	if k := slices.IndexFunc(w.Leases, func(l api.UnitLease) bool { return l.Node == node }); k >= 0 {
		return w.Leases[k].Unit
	}
	for i := w.NextUndone(0); i < w.Units; i = w.NextUndone(i + 1) {
		if l := w.Lease(i); l == nil || l.Node == "" || !t.Before(l.Expires) {
			return i
		}
	}
	return -1
}

// outputBlobs are the output blobs of Outputs' units o, in unit order ("" for a
// unit not done).
func outputBlobs(o []byte) []string {
	out := make([]string, len(o)/sha256.Size)
	for i := range out {
		if sum := o[sha256.Size*i : sha256.Size*(i+1)]; slices.ContainsFunc(sum, func(b byte) bool { return b != 0 }) {
			out[i] = hex.EncodeToString(sum)
		}
	}
	return out
}

// hasWork says why j has no units: it is not a predict job, or its input is not
// planned.
func hasWork(j *api.Job) error {
	switch {
	case j.Kind != api.KindPredict:
		return errorf(http.StatusConflict, "job %s is not a predict job", j.ID)
	case j.Work == nil:
		return errorf(http.StatusConflict, "job %s: its input is not planned", j.ID)
	}
	return nil
}

// predictJob is job id, a running predict job that node works on.
func (s *State) predictJob(id, node string) (*api.Job, error) {
	j, err := s.runningJob(id)
	if err != nil {
		return nil, err
	}
	if err := hasWork(j); err != nil {
		return nil, err
	}
	if n := s.Nodes[node]; n == nil || n.Job != j.ID {
		return nil, errorf(http.StatusConflict, "node %s is not on job %s", node, j.ID)
	}
	return j, nil
}

// jobLease is predict job id, which node works on, and its lease period.
func (s *State) jobLease(id, node string) (*api.Job, api.Duration, error) {
	j, err := s.predictJob(id, node)
	if err != nil {
		return nil, 0, err
	}
	spec, err := api.ParsePredictSpec(j.Spec)
	return j, spec.Lease, err
}

// notHolder is the refusal of node's word on unit i of job j, which it does not hold.
func notHolder(j *api.Job, i int, node string) error {
	holder := "no one"
	if l := j.Work.Lease(i); l != nil {
		holder = cmp.Or(l.Node, holder)
	}
	return errorf(http.StatusConflict, "unit %d of job %s is leased to %s, not %s", i, j.ID, holder, node)
}

func (s *State) lease(t time.Time, b LeaseUnit) (api.Lease, error) {
	j, err := s.predictJob(b.Job, b.Node)
	if err != nil {
		return api.Lease{Unit: -1}, err
	}
	if b.For <= 0 {
		return api.Lease{Unit: -1}, badField("for", "%v: must be positive", b.For)
	}
	i := freeUnit(j, b.Node, t)
	if i < 0 {
		return api.Lease{Unit: -1}, nil
	}
	u := j.Work.AddLease(i)
	if u.Node != "" && u.Node != b.Node {
		s.event(j, t, "lease", b.Node, "unit %d: %s's lease expired; leased to %s", i, u.Node, b.Node)
		if !slices.Contains(u.Outlived, u.Node) {
			u.Outlived = append(u.Outlived, u.Node)
		}
	}
	u.Node, u.Expires = b.Node, t.Add(time.Duration(b.For))
	s.changedJob(j, false)
	return api.Lease{Unit: i, Expires: u.Expires}, nil
}

// renew extends b.Node's lease on b.Unit, which it still holds: a lease that ran out
// with no other node taking the unit is its holder's still, and renews (the holder
// was only slow to ask). One another node took is refused: the renewing node may still
// report the unit, and the first output in counts.
func (s *State) renew(t time.Time, b RenewLease) (api.Lease, error) {
	j, err := s.predictJob(b.Job, b.Node)
	if err != nil {
		return api.Lease{Unit: -1}, err
	}
	switch {
	case b.For <= 0:
		return api.Lease{Unit: -1}, badField("for", "%v: must be positive", b.For)
	case b.Unit < 0 || b.Unit >= j.Work.Units:
		return api.Lease{Unit: -1}, badField("unit", "%d is not in [0, %d)", b.Unit, j.Work.Units)
	case j.Work.IsDone(b.Unit):
		return api.Lease{Unit: -1}, errorf(http.StatusConflict, "unit %d of job %s is done", b.Unit, j.ID)
	}
	u := j.Work.Lease(b.Unit)
	if u == nil || u.Node != b.Node {
		return api.Lease{Unit: -1}, notHolder(j, b.Unit, b.Node)
	}
	u.Expires = t.Add(time.Duration(b.For))
	s.changedJob(j, false)
	return api.Lease{Unit: b.Unit, Expires: u.Expires}, nil
}

func (s *State) unitDone(t time.Time, b JobUnit) error {
	r := b.Report
	j, err := s.job(b.Job)
	if err != nil {
		return err
	}
	if err := hasWork(j); err != nil {
		return err
	}
	w := j.Work
	if r.Unit < 0 || r.Unit >= w.Units {
		return badField("unit", "%d is not in [0, %d)", r.Unit, w.Units)
	}
	if w.IsDone(r.Unit) {
		return nil // done once already: the output is the same, keep the first
	}
	u := w.Lease(r.Unit)
	sum, hexErr := hex.DecodeString(r.Blob)
	switch {
	case j.State != api.Running:
		return errorf(http.StatusConflict, "job %s is %s", j.ID, j.State)
	case u == nil || u.Node != r.Node && !slices.Contains(u.Outlived, r.Node):
		return notHolder(j, r.Unit, r.Node)
	case r.Records != w.UnitRecords(r.Unit):
		return badField("records", "%d lines for unit %d of %d records", r.Records, r.Unit, w.UnitRecords(r.Unit))
	case s.Blobs[r.Blob] == nil:
		return badField("blob", "%q is not in the blob store (upload it first)", r.Blob)
	case hexErr != nil || len(sum) != sha256.Size:
		return badField("blob", "%q is not a sha256", r.Blob)
	}
	w.DropLease(r.Unit)
	w.SetDone(r.Unit)
	if w.ByNode == nil {
		w.ByNode = map[string]int{}
	}
	w.ByNode[r.Node]++
	copy(s.Outputs[j.ID][sha256.Size*r.Unit:], sum)
	p := &j.Progress
	p.UnitsDone++
	p.Records += r.Records
	p.Updated = t
	if secs := t.Sub(j.Started).Seconds(); secs > 0 {
		p.SamplesPerSec = float64(p.Records) / secs
	}
	s.changedJob(j, false)
	if p.UnitsDone == w.Units {
		s.finish(j, t, api.Succeeded, r.Node, "")
	}
	return nil
}

// returnUnits takes back the leases of j's units that node holds: it died, or left
// the job. Its report of them, should it come, is refused, as is one of a unit whose
// lease it outlived.
func (s *State) returnUnits(j *api.Job, t time.Time, node, why string) {
	var back []string
	changed := false
	w := j.Work
	if w == nil {
		return // not planned: no units
	}
	for k := 0; k < len(w.Leases); k++ {
		u := &w.Leases[k]
		if i := slices.Index(u.Outlived, node); i >= 0 {
			u.Outlived, changed = slices.Delete(u.Outlived, i, i+1), true
		}
		if u.Node == node {
			u.Node, u.Expires = "", time.Time{}
			back = append(back, fmt.Sprint(u.Unit))
		}
		if u.Node == "" && len(u.Outlived) == 0 { // no one at it: a free unit, as one never leased
			w.Leases = slices.Delete(w.Leases, k, k+1)
			k--
		}
	}
	switch {
	case len(back) == 1:
		s.event(j, t, "lease", node, "%s %s: its unit %s goes to others", node, why, back[0])
	case len(back) > 1:
		s.event(j, t, "lease", node, "%s %s: its units %s go to others", node, why, strings.Join(back, ", "))
	}
	if changed || len(back) > 0 {
		s.changedJob(j, false)
	}
}

// decidePredict places nodes on running predict job j: its members that are alive and
// not drained stay, idle nodes join up to cluster.nodes, and the others are left out
// (their leases go back) in one new generation. A job with no member to work waits.
func decidePredict(st *State, j *api.Job, take func(int) []string, gone func(string) bool, emit func(string, any)) {
	var keep, lost []string
	for _, m := range members(j.Gen) {
		if gone(m) || st.Nodes[m].Drain {
			lost = append(lost, m)
		} else {
			keep = append(keep, m)
		}
	}
	joined := take(j.Cluster.Nodes - len(keep))
	if len(keep)+len(joined) == 0 {
		if reason := "waiting for nodes: none alive"; j.Reason != reason {
			emit(CmdJobReason, JobReason{Job: j.ID, Reason: reason})
		}
		return
	}
	if len(lost) > 0 || len(joined) > 0 {
		emit(CmdOpenGeneration, OpenGeneration{Job: j.ID, Gen: j.Gen.Gen + 1, Members: append(keep, joined...),
			Reason: describeChange(lost, joined, "units go on")})
	}
}

// postLease answers a node's lease request: a free unit by a command, or none without
// one (nodes ask again while others' units are in flight).
func (s *Server) postLease(w http.ResponseWriter, r *http.Request) {
	var req api.LeaseRequest
	if err := decodeBody(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	b := LeaseUnit{Job: r.PathValue("id"), Node: req.Node}
	var err error
	free := -1
	s.fsm.Read(func(st *State) {
		var j *api.Job
		if j, b.For, err = st.jobLease(b.Job, b.Node); err == nil {
			free = freeUnit(j, b.Node, s.clock.Now())
		}
	})
	switch {
	case err != nil:
		writeError(w, err)
	case free < 0:
		written(w, s.fsm.Index(), api.Lease{Unit: -1})
	default:
		s.write(w, r, CmdLease, b)
	}
}

// postRenew extends a node's lease on its unit by the job's lease, or says why not.
func (s *Server) postRenew(w http.ResponseWriter, r *http.Request) {
	var req api.RenewRequest
	if err := decodeBody(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	b := RenewLease{Job: r.PathValue("id"), Node: req.Node, Unit: req.Unit}
	var err error
	s.fsm.Read(func(st *State) { _, b.For, err = st.jobLease(b.Job, b.Node) })
	if err != nil {
		writeError(w, err)
		return
	}
	s.write(w, r, CmdRenew, b)
}

// newPredictJob checks a predict job's spec and that its model and input are stored.
func (s *Server) newPredictJob(req api.SubmitRequest) (api.Job, error) {
	spec, err := api.ParsePredictSpec(req.Spec)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "predict spec: ")
		msg = strings.TrimPrefix(msg, "job spec: ")
		field, _, _ := strings.Cut(msg, ":")
		if strings.ContainsAny(field, " \n") || field == "yaml" {
			field = "spec"
		}
		return api.Job{}, &api.Error{Status: http.StatusBadRequest, Field: field, Message: msg}
	}
	if req.ResumeOf != "" {
		return api.Job{}, badField("resume_of", "a predict job resumes nothing")
	}
	job := api.Job{Name: req.Name, Kind: api.KindPredict, Spec: req.Spec, Cluster: spec.Cluster}
	var missing error
	s.fsm.Read(func(st *State) {
		for _, f := range [][2]string{{"model", spec.Model}, {"input", spec.Input}} {
			sha, err := blobRef(f[1])
			switch {
			case err != nil:
				missing = badField(f[0], "%v", err)
			case sha == "":
				missing = badField(f[0], "%q: want blob:<sha256> (bertnode infer uploads it)", f[1])
			case st.Blobs[sha] == nil:
				missing = badField(f[0], "%s is not in the blob store: upload it first (bertnode infer does)", f[1])
			}
			if missing != nil {
				return
			}
		}
	})
	if missing != nil {
		return job, missing
	}
	model, _ := blobRef(spec.Model)
	input, _ := blobRef(spec.Input)
	job.Uploads = map[string]string{"model": model}
	job.Train = &api.Dataset{Path: spec.Input, Blob: input}
	return job, nil
}
