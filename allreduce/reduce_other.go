//go:build !amd64 || purego

package allreduce

// reduceVector: there are no vector loops in this build; the scalar loops do everything.
var reduceVector = false

func addScaledVector(dst []float32, src []byte, f float32) int { return 0 }
func addToVector(dst, a, b []float32) int                      { return 0 }
func finishVector(dst, acc, out []float32, f float32) int      { return 0 }
