package coordinator

import (
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/bertnode/bertnode/api"
)

// Blob retention (docs/cluster.md, "Blob retention"). The state decides which blobs
// stay listed; each member's sweepBlobs removes from its disk the files the state no
// longer lists. A blob is live while a job references it (State.jobBlobs), or while it is
// fresh: stored less than Timing.BlobGrace ago, in the log's time, so that an upload
// survives until the report or submission that references it. A reference goes away
// when a result of the same kind replaces it (result), a generation that restored a
// checkpoint is over (openGeneration), or the job is deleted (deleteJob): those drop
// the blob at once if nothing else holds on to it. Fresh blobs never referenced
// go when the leader proposes BlobsCollect, which it does when its own read of the
// state finds some (a command, so that every member drops the same ones at the same
// index; checking on every apply would cost a pass over all jobs per command).

// jobBlobs are the blobs j references: its uploaded data files, their plans, the
// uploaded model and tokenizer it starts from, its results, the checkpoint its
// current generation restores from, and a predict job's outputs.
func (s *State) jobBlobs(j *api.Job) []string {
	var out []string
	for _, d := range []*api.Dataset{j.Train, j.Eval} {
		if d != nil {
			out = append(out, d.Blob, d.Plan)
		}
	}
	out = append(out, slices.Sorted(maps.Values(j.Uploads))...)
	for _, r := range j.Results {
		out = append(out, r.Blob)
	}
	if j.Gen != nil {
		out = append(out, j.Gen.Restore)
	}
	out = append(out, outputBlobs(s.Outputs[j.ID])...)
	return slices.DeleteFunc(out, func(sha string) bool { return sha == "" })
}

// referenced says whether any job references sha.
func (s *State) referenced(sha string) bool {
	for _, j := range s.Jobs {
		if slices.Contains(s.jobBlobs(j), sha) {
			return true
		}
	}
	return false
}

// dropUnreferenced unlists sha, which j (whose event log says so) no longer
// references, unless some job still does.
func (s *State) dropUnreferenced(j *api.Job, t time.Time, sha, what string) {
	if sha == "" || s.Blobs[sha] == nil || s.referenced(sha) {
		return
	}
	delete(s.Blobs, sha)
	s.touch(topicBlobs)
	s.event(j, t, "collected", "", "blob %s (%s) dropped: no job references it", short(sha), what)
}

// deleteJob removes an ended job that no unended job continues (--resume), with its
// event log, and unlists the blobs no other job references.
func (s *State) deleteJob(t time.Time, b JobDelete) error {
	j, err := s.job(b.Job)
	if err != nil {
		return err
	}
	if !j.State.Done() {
		return errorf(http.StatusConflict, "job %s is %s: cancel it first", j.ID, j.State)
	}
	for _, o := range s.Jobs {
		if o.ResumeOf == j.ID && !o.State.Done() {
			return errorf(http.StatusConflict, "job %s continues job %s from its checkpoint", o.ID, j.ID)
		}
	}
	delete(s.Jobs, j.ID)
	delete(s.Events, j.ID)
	s.Deleted[j.ID], s.DeletedAt[j.ID] = j.Submitted, t
	for _, sha := range s.jobBlobs(j) {
		if s.Blobs[sha] != nil && !s.referenced(sha) {
			delete(s.Blobs, sha)
		}
	}
	delete(s.Outputs, j.ID)
	s.touch(topicJob(j.ID), topicGen(j.ID), topicLogs(j.ID), topicJobs, topicBlobs, topicDeleted)
	return nil
}

// lastStored is when a member last said it holds b (states before Stored existed
// have only Added).
func (b *Blob) lastStored() time.Time {
	if b.Stored.After(b.Added) {
		return b.Stored
	}
	return b.Added
}

// collectable are the blobs, sorted, that no job references and no member has stored
// since before.
func (s *State) collectable(before time.Time) []string {
	refs := map[string]bool{}
	for _, j := range s.Jobs {
		for _, sha := range s.jobBlobs(j) {
			refs[sha] = true
		}
	}
	var out []string
	for _, sha := range slices.Sorted(maps.Keys(s.Blobs)) {
		if !refs[sha] && s.Blobs[sha].lastStored().Before(before) {
			out = append(out, sha)
		}
	}
	return out
}

// blobsCollect drops the collectable blobs and answers their shas.
func (s *State) blobsCollect(t time.Time, b BlobsCollect) ([]string, error) {
	if b.Before.After(t) {
		return nil, errorf(http.StatusBadRequest, "before: %s is after the command's time %s", b.Before, t)
	}
	gone := s.collectable(b.Before)
	for _, sha := range gone {
		delete(s.Blobs, sha)
	}
	if len(gone) > 0 {
		s.touch(topicBlobs)
	}
	return gone, nil
}

// trimmable are the deleted jobs deleted before before, and those deleted before
// DeletedAt existed (whose time deletedTrim then records).
func (s *State) trimmable(before time.Time) []string {
	var out []string
	for _, id := range slices.Sorted(maps.Keys(s.Deleted)) {
		if at, ok := s.DeletedAt[id]; !ok || at.Before(before) {
			out = append(out, id)
		}
	}
	return out
}

// deletedTrim forgets the deleted jobs deleted before b.Before and answers their IDs.
// One deleted before DeletedAt existed counts as deleted now: it goes a retention later.
func (s *State) deletedTrim(t time.Time, b DeletedTrim) ([]string, error) {
	if b.Before.After(t) {
		return nil, errorf(http.StatusBadRequest, "before: %s is after the command's time %s", b.Before, t)
	}
	var gone []string
	for _, id := range s.trimmable(b.Before) {
		if _, ok := s.DeletedAt[id]; !ok {
			s.DeletedAt[id] = t
			continue
		}
		delete(s.Deleted, id)
		delete(s.DeletedAt, id)
		gone = append(gone, id)
	}
	if len(gone) > 0 {
		s.touch(topicDeleted)
	}
	return gone, nil
}
