package coordinator

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bertnode/bertnode/api"
)

// predictState drives a State command by command, as the FSM applies them.
type predictState struct {
	t   *testing.T
	s   *State
	now time.Time
}

func (p *predictState) apply(typ string, body any) (any, error) {
	p.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		p.t.Fatal(err)
	}
	return p.s.Apply(p.s.Index+1, &Command{Type: typ, Time: p.now, Body: b})
}

func (p *predictState) must(typ string, body any) any {
	p.t.Helper()
	v, err := p.apply(typ, body)
	if err != nil {
		p.t.Fatalf("%s: %v", typ, err)
	}
	return v
}

func (p *predictState) lease(node string) int {
	p.t.Helper()
	return p.must(CmdLease, LeaseUnit{Job: "job-1", Node: node, For: api.Duration(time.Minute)}).(api.Lease).Unit
}

// outputOf is the blob node uploads for unit: its own, so that a unit's output says
// who did it.
func outputOf(node string, unit int) string { return sha(1000*int(node[len(node)-1]-'0') + unit) }

func (p *predictState) done(node string, unit, records int) error {
	p.t.Helper()
	p.must(CmdBlobStored, BlobStored{SHA: outputOf(node, unit), Size: 10, Member: "c1", Upload: true})
	_, err := p.apply(CmdUnitDone, JobUnit{Job: "job-1", Report: api.UnitReport{Node: node, Unit: unit, Blob: outputOf(node, unit), Records: records}})
	return err
}

// n2DoesTheRest has n2, holding unit 1, do it and unit 2 while n1 holds unit 0, and
// then find no unit to lease, for why.
func (p *predictState) n2DoesTheRest(why string) {
	p.t.Helper()
	if err := p.done("n2", 1, 4); err != nil {
		p.t.Fatal(err)
	}
	if u := p.lease("n2"); u != 2 {
		p.t.Fatalf("n2 leased %d, want 2 (%s)", u, why)
	}
	if err := p.done("n2", 2, 2); err != nil {
		p.t.Fatal(err)
	}
	if u := p.lease("n2"); u != -1 {
		p.t.Fatalf("n2 leased %d, want none (%s)", u, why)
	}
}

// output is unit's output blob ("" while it is not done).
func (p *predictState) output(unit int) string { return outputBlobs(p.s.Outputs["job-1"])[unit] }

func (p *predictState) job() *api.Job { return p.s.Jobs["job-1"] }

const predictSpecText = "kind: predict\ntask: classify\nmodel: blob:" +
	"0000000000000000000000000000000000000000000000000000000000000001\ninput: blob:" +
	"0000000000000000000000000000000000000000000000000000000000000002\nbatch_size: 2\ncluster: {nodes: 2, block_records: 4}\n"

// newPredictState holds a running predict job over records in blocks of 4 (10 records:
// units of 4, 4 and 2) on n1 and n2; n3 is idle.
func newPredictState(t *testing.T, records int) *predictState {
	p := newPredictJob(t, records, predictSpecText)
	if w := p.job().Work; w.Units != (records+3)/4 || w.UnitRecords(0) != 4 || w.UnitRecords(w.Units-1) != (records-1)%4+1 || len(p.s.Outputs["job-1"]) != 32*w.Units {
		t.Fatalf("work %+v of %d records in blocks of 4", w, records)
	}
	return p
}

// newPredictJob holds a running predict job of spec over records on n1 and n2; n3 is
// idle.
func newPredictJob(t *testing.T, records int, specText string) *predictState {
	p := &predictState{t: t, s: NewState(), now: time.Date(2026, 12, 6, 14, 0, 0, 0, time.UTC)}
	for _, n := range []string{"n1", "n2", "n3"} {
		p.must(CmdNodeRegister, api.RegisterNode{ID: n, RingAddr: n + ":1"})
	}
	spec, err := api.ParsePredictSpec(specText)
	if err != nil {
		t.Fatal(err)
	}
	p.must(CmdJobSubmit, JobSubmit{Job: api.Job{Kind: api.KindPredict, Spec: specText, Cluster: spec.Cluster,
		Train: &api.Dataset{Path: spec.Input, Blob: sha(2)}, Uploads: map[string]string{"model": sha(1)}}})
	p.must(CmdDatasetPlanned, DatasetPlanned{Job: "job-1", Which: "train", Plan: sha(3), Records: records})
	p.must(CmdOpenGeneration, OpenGeneration{Job: "job-1", Gen: 1, Members: []string{"n1", "n2"}, Reason: "start"})
	return p
}

func wantStatus(t *testing.T, err error, status int, msg string) {
	t.Helper()
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != status || !strings.Contains(ae.Message, msg) {
		t.Fatalf("error %v, want %d %q", err, status, msg)
	}
}

// TestPredictUnitsLeaseAndComplete: each unit is leased to one node at a time, only its
// holder completes it, a second completion is ignored, and the job succeeds when the
// last unit is done.
func TestPredictUnitsLeaseAndComplete(t *testing.T) {
	p := newPredictState(t, 10)
	if u := p.lease("n1"); u != 0 {
		t.Fatalf("n1 leased %d, want 0", u)
	}
	if u := p.lease("n1"); u != 0 {
		t.Fatalf("n1 asked again and got %d, want its unit 0", u)
	}
	if u := p.lease("n2"); u != 1 {
		t.Fatalf("n2 leased %d, want 1", u)
	}
	wantStatus(t, p.done("n2", 0, 4), http.StatusConflict, "unit 0 of job job-1 is leased to n1, not n2")
	wantStatus(t, p.done("n1", 0, 3), http.StatusBadRequest, "3 lines for unit 0 of 4 records")
	_, err := p.apply(CmdLease, LeaseUnit{Job: "job-1", Node: "n3", For: api.Duration(time.Minute)})
	wantStatus(t, err, http.StatusConflict, "node n3 is not on job job-1")
	p.now = p.now.Add(2 * time.Second)
	if err := p.done("n1", 0, 4); err != nil {
		t.Fatal(err)
	}
	if err := p.done("n1", 0, 4); err != nil {
		t.Fatalf("a repeated completion: %v", err)
	}
	if pr := p.job().Progress; pr.UnitsDone != 1 || pr.Records != 4 || pr.SamplesPerSec != 2 {
		t.Fatalf("progress after one unit: %+v", pr)
	}
	if u := p.lease("n1"); u != 2 {
		t.Fatalf("n1 leased %d, want 2", u)
	}
	if err := p.done("n2", 1, 4); err != nil {
		t.Fatal(err)
	}
	if p.job().State != api.Running {
		t.Fatalf("job %s with a unit to do", p.job().State)
	}
	if err := p.done("n1", 2, 2); err != nil {
		t.Fatal(err)
	}
	j := p.job()
	if j.State != api.Succeeded || j.Progress.UnitsDone != 3 || j.Progress.Records != 10 {
		t.Fatalf("job %s, progress %+v", j.State, j.Progress)
	}
	if err := p.done("n2", 2, 2); err != nil || p.output(2) != outputOf("n1", 2) {
		t.Fatalf("a late duplicate after the end: %v, unit 2's output %s", err, p.output(2))
	}
	if w := j.Work; w.Units != 3 || len(w.Done) != 1 || w.Done[0] != [2]int{0, 2} || len(w.Leases) != 0 || w.ByNode["n1"] != 2 || w.ByNode["n2"] != 1 {
		t.Errorf("work %+v, want units 0 to 2 done, n1 two and n2 one", w)
	}
	for i := range 3 {
		if !slices.Contains(p.s.jobBlobs(j), p.output(i)) || p.output(i) == "" {
			t.Errorf("the job does not reference its output %q", p.output(i))
		}
	}
	if n := p.s.Nodes["n1"]; n.Job != "" {
		t.Errorf("n1 still on %s", n.Job)
	}
}

// TestPredictDeadNodesLeasesGoBack: a node gossip calls dead gives its units back at
// once, and its report, should it come after all, is refused.
func TestPredictDeadNodesLeasesGoBack(t *testing.T) {
	p := newPredictState(t, 10)
	p.lease("n1")
	p.lease("n2")
	p.must(CmdHealth, HealthUpdates{Updates: []HealthUpdate{{ID: "n1", Health: api.Dead}}})
	if u := p.job().Work.Lease(0); u != nil {
		t.Fatalf("unit 0 still leased: %+v", u)
	}
	if err := p.done("n2", 1, 4); err != nil {
		t.Fatal(err)
	}
	if u := p.lease("n2"); u != 0 {
		t.Fatalf("n2 leased %d, want the dead node's 0", u)
	}
	wantStatus(t, p.done("n1", 0, 4), http.StatusConflict, "leased to n2, not n1")
	if p.job().Progress.UnitsDone != 1 {
		t.Fatalf("progress %+v", p.job().Progress)
	}
	if !slices.ContainsFunc(p.s.Events["job-1"], func(e api.Event) bool { return e.Message == "n1 is dead: its unit 0 goes to others" }) {
		t.Errorf("no event of the returned lease: %+v", p.s.Events["job-1"])
	}
}

// TestPredictExpiredLeaseGoesToAnother: a node silent past its lease loses the unit to
// the next that asks, but may still be at it: the first output in counts, the slow
// node's as well as the new holder's, and the other is ignored, so that a unit slower
// than its lease on every node still ends. Once the slow node is dead its report is
// refused.
func TestPredictExpiredLeaseGoesToAnother(t *testing.T) {
	p := newPredictState(t, 10)
	p.lease("n1")
	p.lease("n2")
	p.n2DoesTheRest("0 is n1's for a minute")
	p.now = p.now.Add(time.Minute)
	if u := p.lease("n2"); u != 0 {
		t.Fatalf("n2 leased %d after n1's lease ended, want 0", u)
	}
	if err := p.done("n1", 0, 4); err != nil { // n1 outlived its lease, alive: its output counts
		t.Fatalf("the slow node's output: %v", err)
	}
	if err := p.done("n2", 0, 4); err != nil {
		t.Fatal(err)
	}
	if p.output(0) != outputOf("n1", 0) || len(p.job().Work.Leases) != 0 || p.job().State != api.Succeeded {
		t.Fatalf("unit 0's output %s, leases %+v, job %s: want n1's output, the first in, and the job done", p.output(0), p.job().Work.Leases, p.job().State)
	}
}

// TestPredictLeaseRenewal: the holder of a unit renews its lease to the command's time
// plus the period, so that the unit goes to no other node while it works; a lease that
// ran out with no other node taking the unit renews too. A renewal from a node another
// took the unit from, or of a unit done, or from a node not on the job, is refused,
// and the output of the node that lost the unit, first in, still counts.
func TestPredictLeaseRenewal(t *testing.T) {
	p := newPredictState(t, 10)
	renew := func(node string, unit int) (time.Time, error) {
		t.Helper()
		v, err := p.apply(CmdRenew, RenewLease{Job: "job-1", Node: node, Unit: unit, For: api.Duration(time.Minute)})
		l, _ := v.(api.Lease)
		return l.Expires, err
	}
	p.lease("n1")
	p.lease("n2")
	p.now = p.now.Add(40 * time.Second)
	if exp, err := renew("n1", 0); err != nil || !exp.Equal(p.now.Add(time.Minute)) || !p.job().Work.Lease(0).Expires.Equal(exp) {
		t.Fatalf("n1's renewal: %v, expires %v, want %v", err, exp, p.now.Add(time.Minute))
	}
	p.now = p.now.Add(40 * time.Second) // past n1's first lease, within its renewal
	p.n2DoesTheRest("n1 renewed its lease on 0")
	p.now = p.now.Add(time.Minute) // n1 renews late, but no other node took its unit
	if _, err := renew("n1", 0); err != nil {
		t.Fatalf("a renewal after the lease ran out, the unit still n1's: %v", err)
	}
	if u := p.lease("n2"); u != -1 {
		t.Fatalf("n2 leased %d after n1's late renewal", u)
	}
	_, err := renew("n2", 0)
	wantStatus(t, err, http.StatusConflict, "unit 0 of job job-1 is leased to n1, not n2")
	_, err = renew("n2", 1)
	wantStatus(t, err, http.StatusConflict, "unit 1 of job job-1 is done")
	_, err = renew("n3", 0)
	wantStatus(t, err, http.StatusConflict, "node n3 is not on job job-1")
	_, err = renew("n1", 3)
	wantStatus(t, err, http.StatusBadRequest, "3 is not in [0, 3)")

	p.now = p.now.Add(time.Minute) // n1 silent past its lease: n2 takes the unit
	if u := p.lease("n2"); u != 0 {
		t.Fatalf("n2 leased %d after n1's lease ran out, want 0", u)
	}
	_, err = renew("n1", 0)
	wantStatus(t, err, http.StatusConflict, "unit 0 of job job-1 is leased to n2, not n1")
	if err := p.done("n1", 0, 4); err != nil {
		t.Fatalf("n1's output, first in after its renewal was refused: %v", err)
	}
	if p.output(0) != outputOf("n1", 0) || p.job().State != api.Succeeded {
		t.Fatalf("unit 0's output %s, job %s: want n1's output and the job done", p.output(0), p.job().State)
	}
}

// TestPredictDeadNodeOutlivedLeaseRefused: the output of a node that outlived its
// lease and then died is refused, as the holder's would be.
func TestPredictDeadNodeOutlivedLeaseRefused(t *testing.T) {
	p := newPredictState(t, 10)
	p.lease("n1")
	p.now = p.now.Add(time.Minute)
	if u := p.lease("n2"); u != 0 {
		t.Fatalf("n2 leased %d after n1's lease ended, want 0", u)
	}
	p.must(CmdHealth, HealthUpdates{Updates: []HealthUpdate{{ID: "n1", Health: api.Dead}}})
	wantStatus(t, p.done("n1", 0, 4), http.StatusConflict, "leased to n2, not n1")
	if err := p.done("n2", 0, 4); err != nil || p.output(0) != outputOf("n2", 0) {
		t.Fatalf("%v; unit 0's output %s", err, p.output(0))
	}
}

// TestPredictCancel: a cancelled job leases nothing and takes no more output.
func TestPredictCancel(t *testing.T) {
	p := newPredictState(t, 10)
	p.lease("n1")
	p.must(CmdCancel, JobCancel{Job: "job-1"})
	_, err := p.apply(CmdLease, LeaseUnit{Job: "job-1", Node: "n1", For: api.Duration(time.Minute)})
	wantStatus(t, err, http.StatusConflict, "job job-1 is cancelled")
	wantStatus(t, p.done("n1", 0, 4), http.StatusConflict, "job job-1 is cancelled")
	if j := p.job(); j.State != api.Cancelled || j.Work.IsDone(0) || p.output(0) != "" {
		t.Fatalf("job %s, work %+v", j.State, j.Work)
	}
	// Only the units end a predict job, and a node's error fails it.
	p = newPredictState(t, 10)
	_, err = p.apply(CmdDone, JobDone{Job: "job-1", Report: api.DoneReport{Node: "n1", Gen: 1}})
	wantStatus(t, err, http.StatusConflict, "ends when its last unit is done")
	p.must(CmdDone, JobDone{Job: "job-1", Report: api.DoneReport{Node: "n2", Gen: 1, Error: "bad model"}})
	if j := p.job(); j.State != api.Failed || j.Reason != "n2: bad model" {
		t.Fatalf("job %s: %s", j.State, j.Reason)
	}
}

// TestDecidePredict: a predict job starts on the idle nodes there are, a dead member is
// left out and an idle node takes its place, with no reconfiguration.
func TestDecidePredict(t *testing.T) {
	p := newPredictState(t, 10)
	p.must(CmdJobSubmit, JobSubmit{Job: api.Job{Kind: api.KindPredict, Spec: predictSpecText, Cluster: p.job().Cluster,
		Train: &api.Dataset{Path: "blob:" + sha(2), Blob: sha(2)}}})
	p.must(CmdDatasetPlanned, DatasetPlanned{Job: "job-2", Which: "train", Plan: sha(3), Records: 10})
	for _, n := range p.s.Nodes {
		n.Health = api.Alive
	}
	ds := decide(p.s, p.now)
	if len(ds) != 1 || ds[0].typ != CmdOpenGeneration || !slices.Equal(ds[0].body.(OpenGeneration).Members, []string{"n3"}) {
		t.Fatalf("decisions %+v, want job-2 started on n3 alone", ds)
	}
	p.lease("n1")
	p.must(CmdHealth, HealthUpdates{Updates: []HealthUpdate{{ID: "n1", Health: api.Dead}}})
	p.must(CmdCancel, JobCancel{Job: "job-2"})
	ds = decide(p.s, p.now)
	if len(ds) != 1 || ds[0].typ != CmdOpenGeneration {
		t.Fatalf("decisions %+v, want one new generation", ds)
	}
	g := ds[0].body.(OpenGeneration)
	if g.Job != "job-1" || g.Gen != 2 || !slices.Equal(g.Members, []string{"n2", "n3"}) || g.Reason != "n1 left out; n3 joined (units go on)" {
		t.Fatalf("generation %+v", g)
	}
	p.must(CmdOpenGeneration, g)
	if u := p.lease("n3"); u != 0 {
		t.Fatalf("n3 leased %d, want 0", u)
	}
	if ds = decide(p.s, p.now); len(ds) != 0 {
		t.Fatalf("decisions %+v, want none", ds)
	}
}

// TestPredictRandomExactlyOnce: under random leases, reports (from holders and not,
// right and wrong), deaths, revivals, expiries and the leader's decisions, a unit once
// done keeps its first output, leases are held by members only, progress counts the
// done units, and once the nodes stay alive the job ends with every unit done.
func TestPredictRandomExactlyOnce(t *testing.T) {
	nodes := []string{"n1", "n2", "n3"}
	seen := map[string]int{}
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 11))
		p := newPredictState(t, 50)
		first := map[int]string{} // each unit's output, once done
		check := func(step int) {
			t.Helper()
			j := p.job()
			done := 0
			for i, out := range outputBlobs(p.s.Outputs["job-1"]) {
				if f, ok := first[i]; ok && out != f {
					t.Fatalf("seed %d step %d: unit %d's output was %s, is %s", seed, step, i, f, out)
				}
				if (out != "") != j.Work.IsDone(i) {
					t.Fatalf("seed %d step %d: unit %d done %v with output %q", seed, step, i, j.Work.IsDone(i), out)
				}
				if out != "" {
					done++
					first[i] = out
				}
			}
			for k, u := range j.Work.Leases {
				if j.Work.IsDone(u.Unit) || k > 0 && j.Work.Leases[k-1].Unit >= u.Unit || u.Node == "" && len(u.Outlived) == 0 {
					t.Fatalf("seed %d step %d: leases %+v, done %v", seed, step, j.Work.Leases, j.Work.Done)
				}
				if u.Node != "" && j.State == api.Running && j.Gen.Rank(u.Node) < 0 {
					t.Fatalf("seed %d step %d: unit %d leased to %s, not in generation %d", seed, step, u.Unit, u.Node, j.Gen.Gen)
				}
			}
			if done != j.Progress.UnitsDone || j.State == api.Succeeded && done != j.Work.Units {
				t.Fatalf("seed %d step %d: job %s, %d of %d units done, progress %+v", seed, step, j.State, done, j.Work.Units, j.Progress)
			}
		}
		decideAll := func() {
			for _, d := range decide(p.s, p.now) {
				p.apply(d.typ, d.body) // a refusal is the leader's stale read: it decides again
			}
		}
		for step := range 400 {
			node := nodes[r.IntN(len(nodes))]
			switch k := r.IntN(10); {
			case k < 3:
				p.apply(CmdLease, LeaseUnit{Job: "job-1", Node: node, For: api.Duration(5 * time.Second)})
			case k < 4:
				u, holder := r.IntN(p.job().Work.Units), ""
				if l := p.job().Work.Lease(u); l != nil {
					holder = l.Node
				}
				if _, err := p.apply(CmdRenew, RenewLease{Job: "job-1", Node: node, Unit: u, For: api.Duration(5 * time.Second)}); err == nil && holder != node {
					t.Fatalf("seed %d step %d: %s renewed unit %d, leased to %q", seed, step, node, u, holder)
				}
			case k < 7:
				w := p.job().Work
				u := r.IntN(w.Units)
				if i := slices.IndexFunc(w.Leases, func(u api.UnitLease) bool { return u.Node != "" }); i >= 0 && r.IntN(3) > 0 {
					u = w.Leases[i].Unit
					if r.IntN(3) > 0 {
						node = w.Leases[i].Node
					}
				}
				records := w.UnitRecords(u)
				if r.IntN(10) == 0 {
					records++
				}
				p.done(node, u, records)
			case k < 8:
				h := api.Alive
				if r.IntN(3) == 0 {
					h = api.Dead
				}
				p.must(CmdHealth, HealthUpdates{Updates: []HealthUpdate{{ID: node, Health: h}}})
			case k < 9:
				p.must(CmdNodeRegister, api.RegisterNode{ID: node, RingAddr: node + ":1"})
			default:
				p.now = p.now.Add(time.Duration(1+r.IntN(8)) * time.Second)
			}
			decideAll()
			check(step)
		}
		for _, n := range nodes {
			p.must(CmdNodeRegister, api.RegisterNode{ID: n, RingAddr: n + ":1"})
		}
		p.now = p.now.Add(UnprovenGrace)
		for step := 0; p.job().State == api.Running; step++ {
			if step > 100 {
				t.Fatalf("seed %d: the job does not end with its nodes alive: %+v", seed, p.job().Work)
			}
			decideAll()
			for _, m := range p.job().Gen.Members {
				if u := p.lease(m.Node); u >= 0 {
					if err := p.done(m.Node, u, p.job().Work.UnitRecords(u)); err != nil {
						t.Fatalf("seed %d: %s's unit %d: %v", seed, m.Node, u, err)
					}
				}
			}
			check(400 + step)
		}
		if j := p.job(); j.State != api.Succeeded || len(first) != j.Work.Units || len(j.Work.Done) != 1 {
			t.Fatalf("seed %d: job %s with %d of %d units done (%v)", seed, j.State, len(first), j.Work.Units, j.Work.Done)
		}
		for _, e := range p.s.Events["job-1"] {
			seen[strings.Fields(e.Message)[0]+" "+e.Kind]++
		}
	}
	t.Logf("events: %v", seen)
}

// TestRestoreSnapshotWithUnits: a snapshot written before api.Work, with a predict
// job's units one by one in the job, restores to the state the same commands make now:
// the done units as a range with their outputs, the leases, the outlived nodes.
func TestRestoreSnapshotWithUnits(t *testing.T) {
	p := newPredictState(t, 10)
	p.lease("n1")
	p.lease("n2")
	if err := p.done("n1", 0, 4); err != nil {
		t.Fatal(err)
	}
	p.now = p.now.Add(time.Minute)
	if u := p.lease("n1"); u != 1 {
		t.Fatalf("n1 leased %d, want n2's expired 1", u)
	}
	f := NewFSM()
	f.state = p.s
	now := restored(t, snapshotBytes(t, f))

	var snap map[string]any
	if err := json.Unmarshal(snapshotBytes(t, f), &snap); err != nil {
		t.Fatal(err)
	}
	delete(snap, "outputs")
	job := snap["jobs"].(map[string]any)["job-1"].(map[string]any)
	delete(job, "work")
	job["units"] = []map[string]any{
		{"node": "n1", "records": 4, "blob": outputOf("n1", 0)},
		{"node": "n1", "expires": p.now.Add(time.Minute), "records": 4, "outlived": []string{"n2"}},
		{"records": 2},
	}
	b, err := json.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	old := restored(t, b)
	if d := firstDiff("state", reflect.ValueOf(old.state), reflect.ValueOf(now.state)); d != "" {
		t.Fatalf("the old snapshot restores to another state than the commands make now: %s differs\n%+v\n%+v", d, old.state.Jobs["job-1"].Work, now.state.Jobs["job-1"].Work)
	}
	if w := old.state.Jobs["job-1"].Work; len(w.Leases) != 1 || w.Leases[0].Node != "n1" || !slices.Equal(w.Leases[0].Outlived, []string{"n2"}) {
		t.Fatalf("work %+v", w)
	}
	job["cluster"].(map[string]any)["block_records"] = 3
	b, _ = json.Marshal(snap)
	if err := NewFSM().Restore(readCloser{bytes.NewBuffer(b)}); err == nil || !strings.Contains(err.Error(), "3 units of 10 records in blocks of 3") {
		t.Fatalf("restoring units that are not the job's blocks: %v", err)
	}
	job["cluster"].(map[string]any)["block_records"] = 4
	job["units"] = []map[string]any{{"records": 4, "blob": "not a sha"}, {"records": 4}, {"records": 2}}
	b, _ = json.Marshal(snap)
	if err := NewFSM().Restore(readCloser{bytes.NewBuffer(b)}); err == nil || !strings.Contains(err.Error(), `unit 0: blob "not a sha" is not a sha256`) {
		t.Fatalf("restoring a unit with a bad blob: %v", err)
	}
}

// TestPredictJobSize measures a predict job's record for an input of a million
// records in blocks of 256 (3,907 units), all done by two nodes: the job (what every
// listing, read and assignment ships) stays small, the outputs kept apart in the state.
func TestPredictJobSize(t *testing.T) {
	p := newPredictJob(t, 1_000_000, strings.Replace(predictSpecText, "block_records: 4", "block_records: 256", 1))
	size := func() (int, int) {
		jb, _ := json.Marshal(p.job())
		ob, _ := json.Marshal(p.s.Outputs)
		return len(jb), len(ob)
	}
	planned, _ := size()
	for n := 0; p.job().State == api.Running; n++ {
		node := []string{"n1", "n2"}[n%2]
		u := p.lease(node)
		if err := p.done(node, u, p.job().Work.UnitRecords(u)); err != nil {
			t.Fatal(err)
		}
	}
	done, outputs := size()
	t.Logf("a predict job of 1,000,000 records, 3,907 units: the job %d bytes planned, %d done; outputs %d bytes", planned, done, outputs)
	if j := p.job(); j.Work.Units != 3907 || j.State != api.Succeeded || done > 2000 || outputs > 3907*32*4/3+100 {
		t.Fatalf("job %s with %d units: %d bytes, outputs %d", j.State, j.Work.Units, done, outputs)
	}
}
