package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRun adapts gotch for this machine's libtorch as make gotch does, checks that a
// second run with nothing changed touches no file (which keeps Go's build cache of libtch
// warm), and that a run from scratch gives the same bytes.
//
// An adaptation costs ~30 s of CPU, so when the repository's build/gotch carries the stamp
// this run would write, a copy of it stands in for the first run: it was made by another
// process, so comparing it with a fresh run still checks determinism, and it also catches
// an adaptation that changed without a new adapterRev.
func TestRun(t *testing.T) {
	t.Parallel() // most of its time is g++ on one core
	lt, err := findLibtorch(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	a, b := filepath.Join(t.TempDir(), "gotch"), filepath.Join(t.TempDir(), "gotch")
	fresh := make(chan error, 1)
	go func() { fresh <- run(b) }()

	repo := filepath.Join("..", "..", "build", "gotch")
	stamp, _ := os.ReadFile(filepath.Join(repo, stampName))
	shared := string(stamp) == stampKey(lt)
	if shared {
		err = copyTree(repo, a)
	} else {
		err = run(a)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first run: a copy of build/gotch %v", shared)
	first := snapshot(t, a)
	start := time.Now()
	if err := run(a); err != nil {
		t.Fatal(err)
	}
	t.Logf("adapting again with nothing changed took %s", time.Since(start))
	if diff := compareTrees(first, snapshot(t, a), true); diff != "" {
		t.Errorf("a run with nothing changed touched files: %s", diff)
	}
	if _, err := os.Stat(a + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("%s.tmp left behind: %v", a, err)
	}

	if err := <-fresh; err != nil {
		t.Fatal(err)
	}
	if diff := compareTrees(first, snapshot(t, b), false); diff != "" && shared {
		t.Errorf("build/gotch differs from a fresh run with the same stamp: the adaptation changed without a new adapterRev, or build/gotch was edited: %s", diff)
	} else if diff != "" {
		t.Errorf("two runs gave different results: %s", diff)
	}
	if got := read(t, filepath.Join(b, stampName)); got != stampKey(lt) {
		t.Errorf("stamp %q, want %q", got, stampKey(lt))
	}
	ops := read(t, filepath.Join(b, "libtch", listName))
	if lt.Kind == "debian" && lt.Version == "1.13.1+dfsg-4" && (strings.Count(ops, "\n") != 104 || !strings.Contains(ops, "atg__cslt_compress\n")) {
		t.Errorf("Debian's libtorch 1.13.1 lacks 104 ops, but the list has %d:\n%s", strings.Count(ops, "\n"), ops)
	}
}

type fileState struct {
	data  []byte
	mtime time.Time
	mode  fs.FileMode
}

func snapshot(t *testing.T, dir string) map[string]fileState {
	t.Helper()
	files := map[string]fileState{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		files[rel] = fileState{b, info.ModTime(), info.Mode()}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// compareTrees describes the first differences in file set, content and mode, and in
// modification times when asked (for two snapshots of one folder).
func compareTrees(x, y map[string]fileState, mtimes bool) string {
	var diffs []string
	for name, fx := range x {
		fy, ok := y[name]
		switch {
		case !ok:
			diffs = append(diffs, name+" missing")
		case !bytes.Equal(fx.data, fy.data):
			diffs = append(diffs, name+" differs")
		case fx.mode != fy.mode:
			diffs = append(diffs, name+" mode "+fx.mode.String()+" vs "+fy.mode.String())
		case mtimes && !fx.mtime.Equal(fy.mtime):
			diffs = append(diffs, name+" modified at "+fy.mtime.Format(time.RFC3339Nano))
		}
	}
	for name := range y {
		if _, ok := x[name]; !ok {
			diffs = append(diffs, name+" added")
		}
	}
	if len(diffs) > 10 {
		diffs = append(diffs[:10], "…")
	}
	return strings.Join(diffs, ", ")
}
