//go:build amd64 && !purego

package model

import "testing"

// Without the AVX2 loops, Go's engine alone draws libtorch's noise too.
func TestDropoutNoiseScalarMatchesLibtorch(t *testing.T) {
	lockThread(t)
	if !hasAVX2 {
		t.Skip("no AVX2: TestDropoutNoiseMatchesLibtorch ran the scalar engine")
	}
	hasAVX2 = false
	defer func() { hasAVX2 = true }()
	checkDropoutNoise(t)
}
