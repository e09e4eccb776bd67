package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/bertnode/bertnode/api"
)

// TestCheckpointOnAFullDiskLeavesTheLastOneIntact: a checkpoint that does not fit (a
// 256 KiB tmpfs as the job's directory) fails with ENOSPC and leaves the checkpoint
// before it as it was, the one a resume takes, and nothing of its own (its .tmp
// directory stayed before). Needs root (mount); skipped without.
func TestCheckpointOnAFullDiskLeavesTheLastOneIntact(t *testing.T) {
	dir := smallDisk(t, 256<<10)
	saved := [][]float32{make([]float32, 1000)}
	saved[0][7] = 42
	if err := writeState(filepath.Join(dir, "checkpoint-10"), saved, Position{Step: 10}, "test"); err != nil {
		t.Fatal(err)
	}
	big := [][]float32{make([]float32, 1<<17)} // 512 KiB
	if err := writeState(filepath.Join(dir, "checkpoint-20"), big, Position{Step: 20}, "test"); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("checkpoint larger than the disk: %v, want ENOSPC", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != "checkpoint-10" {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("after the failed checkpoint the job's directory holds %v, want only checkpoint-10", names)
	}
	dirs, err := CheckpointDirs(dir)
	if err != nil || len(dirs) != 1 || dirs[0] != filepath.Join(dir, "checkpoint-10") {
		t.Fatalf("checkpoints %q, %v", dirs, err)
	}
	got := [][]float32{make([]float32, 1000)}
	p, err := ReadState(dirs[0], got, "test")
	if err != nil || p.Step != 10 || got[0][7] != 42 {
		t.Fatalf("checkpoint-10 after the failed one: step %d, value %v, %v", p.Step, got[0][7], err)
	}
}

// A node whose only checkpoint is damaged resumes from none, with its replica as the
// job's setup makes it: the failed load had written into the replica.
func TestResumeWithOnlyADamagedCheckpointStartsFresh(t *testing.T) {
	dir := t.TempDir()
	job := &api.Job{ID: "job-1", Spec: toySpec, State: api.Running,
		Checkpoints: []api.Checkpoint{{Step: 10, Gen: 1, Checksums: map[string]string{"n1": strings.Repeat("0", 64)}}}}
	a := New(Config{ID: "n1", Dir: dir, Setup: toySetup(t, 1)})
	s := newSession(a, job)
	s.dir = dir
	env, err := a.cfg.Setup(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	s.env = env
	fresh := checksum(env.Replica.State(), Position{})
	bufs := env.Replica.State()
	for _, b := range bufs {
		for i := range b {
			b[i] += 1
		}
	}
	if err := writeState(filepath.Join(dir, ckptPrefix+"10"), bufs, Position{Step: 10, SavedAt: 10}, layoutOf(env.Replica)); err != nil {
		t.Fatal(err)
	}
	if err := s.resume(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s.has {
		t.Fatal("resumed from the damaged checkpoint")
	}
	if got := checksum(s.env.Replica.State(), Position{}); got != fresh {
		t.Fatal("the replica is not as the setup makes it")
	}
	if _, err := os.Stat(filepath.Join(dir, ckptPrefix+"10.bad")); err != nil {
		t.Fatalf("the damaged checkpoint was not set aside: %v", err)
	}
}
