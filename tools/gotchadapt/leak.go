package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
)

// gotch allocates each op's out-pointer array with C.malloc(0) and never frees it: 32 bytes
// lost per op call, and ops with several outputs write past the zero-size block. Give each
// a 16-slot block (more than any op returns) that the wrapper frees when it returns; the
// wrappers copy the tensor handles out before returning. The one caller that already
// frees its block on the next line (RunBackward) keeps its own free and gets no second one.
var leakRe = regexp.MustCompile(`(?m)^([ \t]*)(\w+) := \(\*lib\.Ctensor\)\(unsafe\.Pointer\(C\.malloc\(0\)\)\)$(\n[ \t]*defer C\.free\(unsafe\.Pointer\((\w+)\)\)$)?`)

// gotch's in-place ops point their receiver at the new handle the op returns and drop the
// old one: 32 bytes per call, and the lost handle keeps the tensor's storage alive after
// Drop. The old handle is the receiver's own (handles are never shared), so free it.
var inPlaceRe = regexp.MustCompile(`(?m)^([ \t]*)ts\.ctensor = \*ptr$`)

// fixLeaks rewrites the ts package's Go files and returns how many out-pointer
// allocations it fixed.
func fixLeaks(tsDir string) (int, error) {
	files, err := filepath.Glob(filepath.Join(tsDir, "*.go"))
	if err != nil {
		return 0, err
	}
	total := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return 0, err
		}
		n := len(leakRe.FindAllIndex(b, -1))
		if n == 0 && !inPlaceRe.Match(b) {
			continue
		}
		b = leakRe.ReplaceAllFunc(b, func(m []byte) []byte {
			s := leakRe.FindSubmatch(m)
			indent, name, next, freed := s[1], s[2], s[3], s[4]
			out := fmt.Appendf(nil, "%s%s := (*lib.Ctensor)(unsafe.Pointer(C.calloc(16, 8)))", indent, name)
			if !bytes.Equal(freed, name) {
				out = fmt.Appendf(out, "\n%sdefer C.free(unsafe.Pointer(%s))", indent, name)
			}
			return append(out, next...)
		})
		b = inPlaceRe.ReplaceAll(b, []byte("${1}lib.AtFree(ts.ctensor)\n${1}ts.ctensor = *ptr"))
		if err := os.WriteFile(f, b, 0o644); err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}
