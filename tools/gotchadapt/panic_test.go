package main

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// TestPanicOnErrorGotch rewrites the real ts and nn packages of gotch v0.9.1: no
// log.Fatal(err) is left, every file still parses, and a file that no longer uses log
// no longer imports it (which would not compile).
func TestPanicOnErrorGotch(t *testing.T) {
	src, err := moduleDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var dirs []string
	for _, pkg := range []string{"ts", "nn"} {
		d := filepath.Join(dir, pkg)
		if err := copyTree(filepath.Join(src, pkg), d); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, d)
	}
	n, err := panicOnError(dirs...)
	if err != nil {
		t.Fatal(err)
	}
	if n < 2500 { // the generated Must ops alone have 2,485
		t.Errorf("rewrote %d exits, want every Must op's", n)
	}
	for _, d := range dirs {
		files, _ := filepath.Glob(filepath.Join(d, "*.go"))
		for _, path := range files {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, read(t, path), parser.AllErrors)
			if err != nil {
				t.Errorf("%v", err)
				continue
			}
			src := read(t, path)
			if strings.Contains(src, "log.Fatal(err)") {
				t.Errorf("%s still exits on an error", path)
			}
			for _, imp := range f.Imports {
				if imp.Path.Value == `"log"` && !logUse.MatchString(src) {
					t.Errorf("%s imports log without using it", path)
				}
			}
		}
	}
	if n, err := panicOnError(dirs...); err != nil || n != 0 {
		t.Errorf("a second pass rewrote %d (%v)", n, err)
	}
}
