//go:build !amd64 || purego

package model

// hasAVX2FMA: there is no vector loop in this build.
const hasAVX2FMA = false

// vector leaves the whole update to scalar where there is no vector loop.
func (k *adamwKernel) vector(p, g, m, v []float32, d float32) int { return 0 }

// sumSquaresVector and scaleVector leave all of x to Go where there is no vector loop.
func sumSquaresVector(x []float32) (float64, int) { return 0, 0 }
func scaleVector(x []float32, f float32) int      { return 0 }

// floorVector leaves BenchmarkAdamW's floor to Go where there is no vector loop.
func floorVector(p, g, m, v []float32) int { return 0 }
