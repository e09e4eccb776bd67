// Package rate measures throughput over the last few steps of a training loop, so the
// figure a progress bar or a status shows moves smoothly: a single slow step (an
// evaluation, a checkpoint) shows without dominating, and the figure never drops to
// zero because a window was just reset.
package rate

import "time"

// Window is the number of steps a Meter averages over.
const Window = 10

// Meter is items per second over the last Window steps.
type Meter struct {
	items []int
	times []time.Duration
}

// Add records a step of n items that took d and returns the rate over the window.
func (m *Meter) Add(n int, d time.Duration) float64 {
	m.items, m.times = append(m.items, n), append(m.times, d)
	if len(m.items) > Window {
		m.items, m.times = m.items[1:], m.times[1:]
	}
	return m.Rate()
}

// Rate is the rate over the window, 0 before any step.
func (m *Meter) Rate() float64 {
	var n int
	var t time.Duration
	for i := range m.items {
		n, t = n+m.items[i], t+m.times[i]
	}
	if t <= 0 {
		return 0
	}
	return float64(n) / t.Seconds()
}
