package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bertnode/bertnode/api"
)

// A job's directory is kept for the job that wrote it: a job of the same ID submitted
// later (the coordinators' state started over) gets a fresh one, and the old files are
// moved aside, not lost. A directory from before marks is taken as the job's own.
func TestClaimJobDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "jobs", "job-1")
	first := &api.Job{ID: "job-1", Submitted: time.Date(2026, 12, 1, 10, 0, 0, 5, time.UTC)}
	ckpt := filepath.Join(dir, ckptPrefix+"40")
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }

	if moved, err := claimJobDir(dir, first); err != nil || moved != "" {
		t.Fatalf("a new directory: moved %q, %v", moved, err)
	}
	if err := os.MkdirAll(ckpt, 0o755); err != nil {
		t.Fatal(err)
	}
	// The same job again (the node restarted): everything stays; the time's zone does
	// not matter.
	same := &api.Job{ID: "job-1", Submitted: first.Submitted.In(time.FixedZone("x", 3600))}
	if moved, err := claimJobDir(dir, same); err != nil || moved != "" || !exists(ckpt) {
		t.Fatalf("the same job: moved %q, %v, checkpoint kept %v", moved, err, exists(ckpt))
	}
	// Another job-1: its directory starts empty, the old one moves aside whole.
	second := &api.Job{ID: "job-1", Submitted: first.Submitted.Add(time.Hour)}
	moved, err := claimJobDir(dir, second)
	if err != nil || moved == "" {
		t.Fatalf("another job of the ID: moved %q, %v", moved, err)
	}
	if exists(ckpt) || !exists(filepath.Join(moved, ckptPrefix+"40")) {
		t.Fatalf("the old checkpoint is not (only) in %s", moved)
	}
	if dirs, _ := CheckpointDirs(dir); len(dirs) > 0 {
		t.Fatalf("the new job would resume from %s", dirs[0])
	}
	// A directory without a mark, from before marks: kept as the job's.
	old := filepath.Join(t.TempDir(), "jobs", "job-2")
	if err := os.MkdirAll(filepath.Join(old, ckptPrefix+"20"), 0o755); err != nil {
		t.Fatal(err)
	}
	if moved, err := claimJobDir(old, &api.Job{ID: "job-2", Submitted: first.Submitted}); err != nil || moved != "" || !exists(filepath.Join(old, ckptPrefix+"20")) {
		t.Fatalf("an unmarked directory: moved %q, %v", moved, err)
	}
	// A mark that does not parse is an error naming the file, not a reason to move.
	os.WriteFile(filepath.Join(old, jobMarkFile), []byte("{"), 0o644)
	if _, err := claimJobDir(old, &api.Job{ID: "job-2"}); err == nil || !strings.Contains(err.Error(), jobMarkFile) || !exists(filepath.Join(old, ckptPrefix+"20")) {
		t.Fatalf("a bad mark: %v", err)
	}
}

// pruneDeleted removes exactly the directories of deleted jobs: the mark's ID and
// submission time both match; not another cluster's job of the ID, not an unmarked
// directory, not the job a session runs.
func TestPruneDeleted(t *testing.T) {
	root := filepath.Join(t.TempDir(), "jobs")
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	mk := func(name, id string, sub time.Time) string {
		dir := filepath.Join(root, name)
		if id == "" {
			os.MkdirAll(filepath.Join(dir, ckptPrefix+"20"), 0o755)
			return dir
		}
		if _, err := claimJobDir(dir, &api.Job{ID: id, Submitted: sub}); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	gone := mk("job-1", "job-1", t0)
	olderCluster := mk("job-2", "job-2", t0)
	unmarked := mk("job-3", "", t0)
	active := mk("job-4", "job-4", t0)
	alive := mk("job-5", "job-5", t0)
	movedAside := mk("job-1.20261101T000000.000000000Z", "job-1", t0.Add(-time.Hour))
	deleted := map[string]time.Time{"job-1": t0, "job-2": t0.Add(time.Hour), "job-3": t0, "job-4": t0}
	removed, err := pruneDeleted(root, deleted, "job-4")
	if err != nil || len(removed) != 1 || removed[0] != gone {
		t.Fatalf("removed %v, %v; want only %s", removed, err, gone)
	}
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	for _, dir := range []string{olderCluster, unmarked, active, alive, movedAside} {
		if !exists(dir) {
			t.Errorf("%s was removed", dir)
		}
	}
	if exists(gone) {
		t.Errorf("%s stays", gone)
	}
	if removed, err := pruneDeleted(filepath.Join(t.TempDir(), "none"), deleted, ""); err != nil || removed != nil {
		t.Errorf("no jobs directory: %v %v", removed, err)
	}
}
