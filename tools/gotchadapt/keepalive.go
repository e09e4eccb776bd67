package main

import (
	"fmt"
	"os"
	"regexp"
	"strings"
)

// gotch frees a tensor's C++ handle from a Go finalizer. A wrapper passed straight from
// one op into the next (ts.MustDropout(lin.Forward(x), ...)) is unreachable as soon as
// its handle is loaded for the cgo call, so the collector may free the handle while
// libtorch is still using it: a segfault under GC pressure, seen in training runs. Every
// generated op therefore keeps its tensor and scalar arguments alive until it returns.
var (
	genFuncRe  = regexp.MustCompile(`(?m)^func(?:\((\w+) \*Tensor\))? ?\w+\(([^)]*)\)\(([^)]*)\) ?\{ *$`)
	genParamRe = regexp.MustCompile(`(\w+) (?:\*Tensor|\[\]\*Tensor|\*Scalar|\[\]\*Scalar)\b`)
)

func keepAlive(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	src := string(b)
	n := 0
	src = genFuncRe.ReplaceAllStringFunc(src, func(sig string) string {
		m := genFuncRe.FindStringSubmatch(sig)
		var keep []string
		if m[1] != "" {
			keep = append(keep, m[1])
		}
		for _, p := range genParamRe.FindAllStringSubmatch(m[2], -1) {
			keep = append(keep, p[1])
		}
		if len(keep) == 0 {
			return sig
		}
		n++
		return sig + "\n  defer runtime.KeepAlive([]any{" + strings.Join(keep, ", ") + "})"
	})
	const imp = "import(\n  \"unsafe\"\n"
	if !strings.Contains(src, imp) {
		return 0, fmt.Errorf("%s: no import block to add runtime to", path)
	}
	src = strings.Replace(src, imp, imp+"  \"runtime\"\n", 1)
	return n, os.WriteFile(path, []byte(src), 0o644)
}
