package coordinator

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/hashicorp/raft"
)

// logRun applies commands to an FSM at times the test chooses: the log's time.
type logRun struct {
	t   *testing.T
	f   *FSM
	idx uint64
	now time.Time
}

func newLogRun(t *testing.T) *logRun {
	return &logRun{t: t, f: NewFSM(), now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

// try applies a command made d after the previous one.
func (r *logRun) try(d time.Duration, typ string, body any) ApplyResult {
	r.t.Helper()
	r.now = r.now.Add(d)
	r.idx++
	b, err := NewCommand(typ, r.now, body)
	if err != nil {
		r.t.Fatal(err)
	}
	return r.f.Apply(&raft.Log{Index: r.idx, Data: b}).(ApplyResult)
}

func (r *logRun) apply(d time.Duration, typ string, body any) any {
	r.t.Helper()
	res := r.try(d, typ, body)
	if res.Err != nil {
		r.t.Fatalf("%s: %v", typ, res.Err)
	}
	return res.Value
}

// store records an upload of sha.
func (r *logRun) store(sha string) {
	r.apply(time.Second, CmdBlobStored, BlobStored{SHA: sha, Size: 10, Member: "c1", Upload: true})
}

// job submits a job whose train data is blob data, plans it into plan, and opens its
// first generation on node.
func (r *logRun) job(node, data, plan string) string {
	r.t.Helper()
	r.store(data)
	r.apply(0, CmdNodeRegister, api.RegisterNode{ID: node, RingAddr: node + ":1"})
	id := r.apply(time.Second, CmdJobSubmit, JobSubmit{Job: api.Job{Cluster: api.ClusterSpec{}.WithDefaults(),
		Train: &api.Dataset{Path: "blob:" + data, Blob: data}}}).(string)
	r.store(plan)
	r.apply(time.Second, CmdDatasetPlanned, DatasetPlanned{Job: id, Which: "train", Plan: plan, Records: 10})
	r.apply(time.Second, CmdOpenGeneration, OpenGeneration{Job: id, Gen: 1, Members: []string{node}, Reason: "start"})
	return id
}

// collect proposes BlobsCollect d after the previous command, with a grace of an hour.
func (r *logRun) collect(d time.Duration) []string {
	r.t.Helper()
	return r.apply(d, CmdBlobsCollect, BlobsCollect{Before: r.now.Add(d - time.Hour)}).([]string)
}

func (r *logRun) result(job, node, kind, sha string) {
	r.t.Helper()
	r.apply(time.Second, CmdResult, JobResult{Job: job, Report: api.ResultReport{Node: node, Kind: kind, Blob: sha, Step: 10}})
}

// listed are the blobs the state lists, sorted.
func (r *logRun) listed() []string {
	var out []string
	r.f.Read(func(s *State) {
		for sha := range s.Blobs {
			out = append(out, sha)
		}
	})
	slices.Sort(out)
	return out
}

func (r *logRun) wantListed(what string, want ...string) {
	r.t.Helper()
	slices.Sort(want)
	if got := r.listed(); !slices.Equal(got, want) {
		r.t.Fatalf("%s: the state lists %v, want %v", what, got, want)
	}
}

// TestReplacedResultIsDropped: a job's newer checkpoint unlists the one it replaces,
// and its event log says so; a blob still referenced, by another kind of the same job
// (final and best the same model) or by another job, stays.
func TestReplacedResultIsDropped(t *testing.T) {
	r := newLogRun(t)
	data, plan, ck1, ck2, model, other := sha(1), sha(2), sha(3), sha(4), sha(5), sha(6)
	j1 := r.job("n1", data, plan)
	for _, b := range []string{ck1, ck2, model, other} {
		r.store(b)
	}
	r.result(j1, "n1", "checkpoint", ck1)
	r.result(j1, "n1", "checkpoint", ck2)
	r.wantListed("after the second checkpoint", data, plan, ck2, model, other)
	r.f.Read(func(s *State) {
		ev := s.Events[j1]
		if last := ev[len(ev)-1]; last.Kind != "collected" || !strings.Contains(last.Message, short(ck1)) {
			t.Fatalf("last event: %+v", last)
		}
	})

	r.result(j1, "n1", "final", model)
	r.result(j1, "n1", "best", model)
	r.result(j1, "n1", "best", other)
	r.wantListed("best replaced, final the same model", data, plan, ck2, model, other)

	// Another job's result holds on to a blob this one lets go of; the same data
	// file is both jobs'.
	j2 := r.job("n2", data, sha(7))
	r.result(j2, "n2", "checkpoint", ck2)
	r.store(sha(8))
	r.result(j1, "n1", "checkpoint", sha(8))
	r.wantListed("a checkpoint job-2 holds", data, plan, sha(7), ck2, model, other, sha(8))
	r.result(j2, "n2", "checkpoint", model)
	r.wantListed("job-2 lets go of it too", data, plan, sha(7), model, other, sha(8))

	// Results name listed blobs only: a collected one must be uploaded again.
	if res := r.try(time.Second, CmdResult, JobResult{Job: j1, Report: api.ResultReport{Node: "n1", Kind: "best", Blob: ck1}}); res.Err == nil {
		t.Fatal("a result naming a dropped blob was accepted")
	}
}

// TestRestoredCheckpointStaysForItsGeneration: the checkpoint a generation restores
// from stays while that generation runs, even once a newer one replaces it, and goes
// with the generation.
func TestRestoredCheckpointStaysForItsGeneration(t *testing.T) {
	r := newLogRun(t)
	j := r.job("n1", sha(1), sha(2))
	r.store(sha(3))
	r.result(j, "n1", "checkpoint", sha(3))
	r.apply(0, CmdNodeRegister, api.RegisterNode{ID: "n2", RingAddr: "n2:1"})
	r.apply(time.Second, CmdOpenGeneration, OpenGeneration{Job: j, Gen: 2, Members: []string{"n2"}, Reason: "n1 lost"})
	r.f.Read(func(s *State) {
		if s.Jobs[j].Gen.Restore != sha(3) {
			t.Fatalf("generation 2 restores %q", s.Jobs[j].Gen.Restore)
		}
	})
	r.store(sha(4))
	r.result(j, "n2", "checkpoint", sha(4))
	r.wantListed("generation 2 restored from it", sha(1), sha(2), sha(3), sha(4))
	r.apply(0, CmdNodeRegister, api.RegisterNode{ID: "n3", RingAddr: "n3:1"})
	r.apply(time.Second, CmdOpenGeneration, OpenGeneration{Job: j, Gen: 3, Members: []string{"n3"}, Reason: "n2 lost"})
	r.wantListed("generation 3 restores from the newer one", sha(1), sha(2), sha(4))
}

// TestFreshBlobsLastTheirGrace: a blob no job references survives BlobsCollect until
// it was stored before Before, in the commands' time (the dates here are far from the
// machine's clock); an upload renews it; a job's blobs survive any Before.
func TestFreshBlobsLastTheirGrace(t *testing.T) {
	r := newLogRun(t)
	j := r.job("n1", sha(1), sha(2))
	r.store(sha(3))
	r.result(j, "n1", "final", sha(3))
	r.store(sha(10)) // never referenced
	stored := r.now
	r.store(sha(11))
	r.store(sha(12))
	if res := r.try(time.Second, CmdBlobsCollect, BlobsCollect{Before: r.now.Add(time.Minute)}); res.Err == nil {
		t.Fatal("a Before after the command's time was accepted")
	}
	if got := r.apply(time.Hour, CmdBlobsCollect, BlobsCollect{Before: stored}); len(got.([]string)) != 0 {
		t.Fatalf("collected %v of blobs stored at Before", got)
	}
	r.wantListed("nothing older than Before", sha(1), sha(2), sha(3), sha(10), sha(11), sha(12))
	r.store(sha(11))                                                                      // uploaded again: fresh again
	r.apply(time.Second, CmdBlobStored, BlobStored{SHA: sha(12), Size: 10, Member: "c2"}) // a copy: not
	if got := r.collect(time.Hour - 2*time.Second); !reflect.DeepEqual(got, []string{sha(10), sha(12)}) {
		t.Fatalf("collected %v, want %s and %s", got, sha(10), sha(12))
	}
	r.wantListed("past the grace", sha(1), sha(2), sha(3), sha(11))
	r.apply(time.Hour, CmdBlobsCollect, BlobsCollect{Before: r.now})
	r.wantListed("only the job's blobs stay", sha(1), sha(2), sha(3))
}

// TestLateCopyDoesNotRelistABlob: a member's record of a copy that arrives after the
// state dropped the blob (a checkpoint replaced meanwhile) leaves it dropped; an upload
// of it lists it again.
func TestLateCopyDoesNotRelistABlob(t *testing.T) {
	r := newLogRun(t)
	r.store(sha(1))
	r.apply(time.Second, CmdBlobsCollect, BlobsCollect{Before: r.now.Add(time.Second)})
	r.wantListed("collected")
	r.apply(time.Second, CmdBlobStored, BlobStored{SHA: sha(1), Size: 10, Member: "c2"})
	r.wantListed("a late copy's record")
	r.apply(time.Second, CmdBlobStored, BlobStored{SHA: sha(1), Size: 10, Member: "c3", Upload: true})
	r.wantListed("uploaded again", sha(1))
	r.apply(time.Second, CmdBlobStored, BlobStored{SHA: sha(1), Size: 10, Member: "c2"})
	if h := r.f.state.Blobs[sha(1)].Holders; !reflect.DeepEqual(h, []string{"c2", "c3"}) {
		t.Fatalf("holders %v after the upload and a copy", h)
	}
}

// TestUploadedModelStaysWithItsJob: the model and tokenizer a job starts from are
// its blobs; another job's are not.
func TestUploadedModelStaysWithItsJob(t *testing.T) {
	r := newLogRun(t)
	r.store(sha(1))
	r.store(sha(3))
	r.store(sha(4))
	r.store(sha(5)) // the model of a job never submitted
	r.apply(time.Second, CmdJobSubmit, JobSubmit{Job: api.Job{Cluster: api.ClusterSpec{}.WithDefaults(),
		Train: &api.Dataset{Path: "blob:" + sha(1), Blob: sha(1)}, Uploads: map[string]string{"model": sha(3), "tokenizer": sha(4)}}})
	r.apply(time.Hour, CmdBlobsCollect, BlobsCollect{Before: r.now})
	r.wantListed("the job's model and tokenizer stay", sha(1), sha(3), sha(4))
}

// TestDeleteJob: only an ended job that no unended job continues is deleted; its blobs
// go unless another job references them.
func TestDeleteJob(t *testing.T) {
	r := newLogRun(t)
	a := r.job("n1", sha(1), sha(2))
	r.store(sha(3))
	r.result(a, "n1", "final", sha(3))
	if res := r.try(time.Second, CmdJobDelete, JobDelete{Job: a}); res.Err == nil || !strings.Contains(res.Err.Error(), "cancel it first") {
		t.Fatalf("deleting a running job: %v", res.Err)
	}
	r.apply(time.Second, CmdCancel, JobCancel{Job: a})
	b := r.apply(time.Second, CmdJobSubmit, JobSubmit{Job: api.Job{Cluster: api.ClusterSpec{}.WithDefaults(), ResumeOf: a,
		Train: &api.Dataset{Path: "blob:" + sha(1), Blob: sha(1)}}}).(string)
	if res := r.try(time.Second, CmdJobDelete, JobDelete{Job: a}); res.Err == nil || !strings.Contains(res.Err.Error(), "continues job "+a) {
		t.Fatalf("deleting a job that another continues: %v", res.Err)
	}
	r.apply(time.Second, CmdCancel, JobCancel{Job: b})
	r.apply(time.Second, CmdJobDelete, JobDelete{Job: a})
	r.wantListed("b's data stays; a's plan and model go", sha(1))
	r.f.Read(func(s *State) {
		if s.Jobs[a] != nil || s.Events[a] != nil || s.Jobs[b] == nil {
			t.Errorf("after deleting %s: jobs %v, its events %v", a, s.Jobs, s.Events[a])
		}
		if sub, ok := s.Deleted[a]; !ok || sub.IsZero() || len(s.Deleted) != 1 {
			t.Errorf("after deleting %s: deleted %v, want it with its submission time", a, s.Deleted)
		}
	})
	if res := r.try(time.Second, CmdJobDelete, JobDelete{Job: a}); res.Err == nil || !strings.Contains(res.Err.Error(), "no job") {
		t.Fatalf("deleting it twice: %v", res.Err)
	}
	r.apply(time.Second, CmdJobDelete, JobDelete{Job: b})
	r.wantListed("nothing")
}

// TestRetentionSurvivesSnapshots: what retention decides by (when blobs were stored)
// is in the snapshot: a restored FSM collects the same blobs.
func TestRetentionSurvivesSnapshots(t *testing.T) {
	r := newLogRun(t)
	r.job("n1", sha(1), sha(2))
	r.store(sha(3))
	r.apply(30*time.Minute, CmdBlobStored, BlobStored{SHA: sha(1), Size: 10, Member: "c2"})
	r.store(sha(4))
	restored := &logRun{t: t, f: roundTrip(t, r.f), idx: r.idx, now: r.now}
	if !reflect.DeepEqual(r.f.state, restored.f.state) {
		t.Fatalf("restored state differs: %s", firstDiff("state", reflect.ValueOf(r.f.state), reflect.ValueOf(restored.f.state)))
	}
	for _, x := range []*logRun{r, restored} {
		x.collect(time.Hour - time.Second)
		x.wantListed("collected", sha(1), sha(2), sha(4))
	}
	if a, b := stateJSON(t, r.f), stateJSON(t, restored.f); a != b {
		t.Fatalf("states differ:\n%s\n%s", a, b)
	}
}

// TestDeletedJobsAreForgotten: DeletedTrim forgets the jobs deleted before its time,
// and keeps the rest; a job deleted before DeletedAt existed gets the trim's time and
// goes a retention later; the deletion times survive a snapshot.
func TestDeletedJobsAreForgotten(t *testing.T) {
	r := newLogRun(t)
	a := r.job("n1", sha(1), sha(2))
	r.apply(time.Second, CmdCancel, JobCancel{Job: a})
	r.apply(time.Second, CmdJobDelete, JobDelete{Job: a})
	deletedAt := r.now
	r.f.state.Deleted["job-0"] = deletedAt.Add(-time.Hour) // from a state without DeletedAt
	restored := &logRun{t: t, f: roundTrip(t, r.f), idx: r.idx, now: r.now}
	if !reflect.DeepEqual(r.f.state, restored.f.state) {
		t.Fatalf("restored state differs: %s", firstDiff("state", reflect.ValueOf(r.f.state), reflect.ValueOf(restored.f.state)))
	}
	trim := func(d time.Duration, before time.Time) []string {
		t.Helper()
		return r.apply(d, CmdDeletedTrim, DeletedTrim{Before: before}).([]string)
	}
	if gone := trim(time.Hour, deletedAt); len(gone) != 0 {
		t.Fatalf("trimmed %v at the deletion's own time", gone)
	}
	stamped := r.now
	r.f.Read(func(s *State) {
		if len(s.Deleted) != 2 || !s.DeletedAt[a].Equal(deletedAt) || !s.DeletedAt["job-0"].Equal(stamped) {
			t.Fatalf("after the first trim: deleted %v at %v", s.Deleted, s.DeletedAt)
		}
	})
	if gone := trim(time.Hour, deletedAt.Add(time.Second)); !slices.Equal(gone, []string{a}) {
		t.Fatalf("trimmed %v, want %s", gone, a)
	}
	if gone := trim(time.Hour, stamped.Add(time.Second)); !slices.Equal(gone, []string{"job-0"}) {
		t.Fatalf("trimmed %v, want job-0, a retention after the trim that stamped it", gone)
	}
	r.f.Read(func(s *State) {
		if len(s.Deleted) != 0 || len(s.DeletedAt) != 0 {
			t.Fatalf("after trimming all: deleted %v at %v", s.Deleted, s.DeletedAt)
		}
	})
	if res := r.try(time.Second, CmdDeletedTrim, DeletedTrim{Before: r.now.Add(time.Hour)}); res.Err == nil || !strings.Contains(res.Err.Error(), "after the command's time") {
		t.Fatalf("a trim reaching past its own time: %v", res.Err)
	}
}
