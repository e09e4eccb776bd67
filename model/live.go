package model

import (
	"runtime"
	"time"

	"github.com/sugarme/gotch/ts"
)

// LiveTensors is the number of tensors created and not yet freed.
func LiveTensors() int { return ts.LiveTensors() }

// FreeLeaked frees the tensors made since LiveTensors was live that nothing holds any
// more: those of an op that failed, and of the ops before it whose caller never got to
// drop them. Only their finalizers free them, and only after a collection; it collects
// until they are freed, for at most two seconds.
func FreeLeaked(live int) {
	deadline := time.Now().Add(2 * time.Second)
	for LiveTensors() > live && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(5 * time.Millisecond) // the finalizers run on a goroutine of their own
	}
}
