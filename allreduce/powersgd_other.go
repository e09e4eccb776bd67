//go:build !amd64 || purego

package allreduce

// psgdVector: there are no vector loops in this build; the scalar loops do everything.
var psgdVector = false

func dot4Vector(x, mem, q []float32, stride int, out *[4]float32) int                { return 0 }
func axpy4Vector(y []float32, stride int, x []float32, a *[4]float32) int            { return 0 }
func reconstructVector(row, mem, p, q []float32, stride int, inv, scale float32) int { return 0 }
