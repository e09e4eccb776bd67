package lossscale

import "testing"

// The scale halves on each overflow, counts good steps from zero again, and doubles on
// the GrowthInterval-th good step in a row (torch's GradScaler.update).
func TestNext(t *testing.T) {
	s, g := float64(Initial), 0
	for range 3 {
		s, g = Next(s, g, true)
	}
	if s != Initial/8 || g != 0 {
		t.Fatalf("after three overflows: scale %v, good %d", s, g)
	}
	for i := 1; i < GrowthInterval; i++ {
		if s, g = Next(s, g, false); s != Initial/8 || g != i {
			t.Fatalf("after %d good steps: scale %v, good %d", i, s, g)
		}
	}
	if s, g = Next(s, g, false); s != Initial/4 || g != 0 {
		t.Fatalf("after %d good steps: scale %v, good %d, want doubled", GrowthInterval, s, g)
	}
	if s, g = Next(s, 5, true); s != Initial/8 || g != 0 {
		t.Fatalf("an overflow after good steps: scale %v, good %d", s, g)
	}
}
