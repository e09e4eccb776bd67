package rate

import (
	"math"
	"testing"
	"time"
)

func TestMeterAveragesTheLastSteps(t *testing.T) {
	var m Meter
	if m.Rate() != 0 {
		t.Fatal("rate before any step")
	}
	for range 20 {
		m.Add(10, 100*time.Millisecond) // 100/s
	}
	if r := m.Rate(); math.Abs(r-100) > 1e-9 {
		t.Fatalf("steady rate %v, want 100", r)
	}
	r := m.Add(10, 1100*time.Millisecond) // one slow step: 100 items in 2 s
	if math.Abs(r-50) > 1e-9 {
		t.Fatalf("after a slow step %v, want 50", r)
	}
	for range Window {
		m.Add(10, 100*time.Millisecond)
	}
	if r := m.Rate(); math.Abs(r-100) > 1e-9 {
		t.Fatalf("the slow step is still counted after %d steps: %v", Window, r)
	}
}
