package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// gotch's Must ops, and the ts and nn functions built on them, end the process with
// log.Fatal on a libtorch error: no deferred function runs and no caller can answer
// the error (a node cannot report a device out of memory; a server cannot fail one
// batch). They panic with the error instead, which model.Catch turns back into one.
var (
	fatalErr  = []byte("log.Fatal(err)")
	panicErr  = []byte("panic(err)")
	logUse    = regexp.MustCompile(`\blog\.`)
	logImport = regexp.MustCompile(`(?m)^\s*"log"\n`)
)

// panicOnError rewrites every log.Fatal(err) in the non-test Go files of dirs, dropping
// the "log" import from files that no longer use it. It returns the count rewritten.
func panicOnError(dirs ...string) (int, error) {
	n := 0
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			return 0, err
		}
		for _, path := range files {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return 0, err
			}
			k := bytes.Count(b, fatalErr)
			if k == 0 {
				continue
			}
			b = bytes.ReplaceAll(b, fatalErr, panicErr)
			if !logUse.Match(b) {
				if len(logImport.FindAllIndex(b, -1)) != 1 {
					return 0, fmt.Errorf("%s: no longer uses log, but its import of it is not one line of its own", path)
				}
				b = logImport.ReplaceAll(b, nil)
			}
			if err := os.WriteFile(path, b, 0o644); err != nil {
				return 0, err
			}
			n += k
		}
	}
	return n, nil
}
