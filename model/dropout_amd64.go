//go:build amd64 && !purego

package model

import "golang.org/x/sys/cpu"

// hasAVX2 says whether the engine's AVX2 loops can run.
var hasAVX2 = cpu.X86.HasAVX2

// twistAVX2 and noiseAVX2 are in dropout_amd64.s.
//
//go:noescape
func twistAVX2(s *uint32, n int, off int)

//go:noescape
func noiseAVX2(w *uint32, out *float32, n int, threshold uint64, scale float32)
