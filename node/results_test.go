package node

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestCheckpointOnAFullDiskLeavesTheLastOneIntact: a checkpoint that does not fit (a
// 256 KiB tmpfs as the job's directory) fails with ENOSPC and leaves the checkpoint
// before it as it was, the one a resume takes, and nothing of its own (its .tmp
// directory stayed before). Needs root (mount); skipped without.
func TestCheckpointOnAFullDiskLeavesTheLastOneIntact(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=256k"); err != nil {
		t.Skipf("mount a small tmpfs over %s: %v", dir, err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
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
	latest, err := latestCheckpoint(dir)
	if err != nil || latest != filepath.Join(dir, "checkpoint-10") {
		t.Fatalf("latest checkpoint %q, %v", latest, err)
	}
	got := [][]float32{make([]float32, 1000)}
	p, err := ReadState(latest, got, "test")
	if err != nil || p.Step != 10 || got[0][7] != 42 {
		t.Fatalf("checkpoint-10 after the failed one: step %d, value %v, %v", p.Step, got[0][7], err)
	}
}
