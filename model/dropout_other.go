//go:build !amd64 || purego

package model

// hasAVX2: there are no vector loops in this build; Go runs the whole engine.
const hasAVX2 = false

func twistAVX2(s *uint32, n int, off int) { panic("model: no AVX2 twist in this build") }

func noiseAVX2(w *uint32, out *float32, n int, threshold uint64, scale float32) {
	panic("model: no AVX2 noise in this build")
}
