//go:build !amd64 || purego

package allreduce

// halfVector: there are no vector loops in this build; the scalar loops do everything.
var halfVector = false

func bf16EncodeVector([]byte, []float32) int             { return 0 }
func fp16EncodeVector([]byte, []float32) int             { return 0 }
func halfDecodeVector(bool, []float32, []byte, bool) int { return 0 }
func halfQuantizeVector(bool, []float32) int             { return 0 }
