package model

import (
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	lib "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/ts"
)

// GradWatch says, while backward runs, how much of the flat gradient is final: a hook on
// each trainable parameter's AccumulateGrad node (tools/gotchadapt/ext) marks the
// parameter once backward has added its gradient, and since the layout puts the
// parameters in the order backward finishes them (see Params), the final part grows as
// a prefix, which the all-reduce can send while backward computes the rest.
//
// A parameter that receives no gradient in a backward (unused by this forward) never
// fires, so the prefix stops before it: only the end of backward makes it final.
// CPU only: on a GPU the hook runs when the accumulation is queued, not done.
//
// It holds no pointer back to its Params, which hold it: a finalizer's object in a
// cycle is never finalized, so the watch (whose hooks hold the parameters) and the
// whole model stayed allocated for the process's life, 35 MB per job a node ran.
type GradWatch struct {
	h    unsafe.Pointer
	ends []int64 // ends[k]: where the first k+1 trainable parameters end
}

// Watch returns the Params' gradient watch, made on first use.
func (ps *Params) Watch() (*GradWatch, error) {
	if ps.watch != nil {
		return ps.watch, nil
	}
	if ps.device.IsCuda() {
		return nil, fmt.Errorf("model: gradient watch: CPU only (the model is on %v)", ps.device)
	}
	var cts []lib.Ctensor
	var ends []int64
	for _, p := range ps.list {
		if p.Trainable {
			cts = append(cts, ctensor(p.T))
			ends = append(ends, p.Offset+p.Numel)
		}
	}
	h := lib.BnGradWatchNew(cts)
	runtime.KeepAlive(ps)
	if err := ts.TorchErr(); err != nil || h == nil {
		return nil, fmt.Errorf("model: gradient watch: %v", err)
	}
	w := &GradWatch{h: h, ends: ends}
	runtime.SetFinalizer(w, func(w *GradWatch) { lib.BnGradWatchFree(w.h) })
	ps.watch = w
	return w, nil
}

// Run runs backward and, while it runs, calls ready(n) (from another goroutine) each
// time the final prefix [0, n) of the gradient grows. n only increases and stays below
// or at TrainEnd; Run returns after the last call. It does not call ready(TrainEnd) at
// the end unless the hooks got there: parameters without a gradient this backward are
// final only when it has returned, which the caller knows.
func (w *GradWatch) Run(backward func() error, ready func(n int64)) error {
	lib.BnGradWatchArm(w.h)
	var wg sync.WaitGroup
	wg.Go(func() {
		for k := 0; ; {
			next := lib.BnGradWatchWait(w.h, k)
			if next < 0 {
				return
			}
			k = next
			ready(w.ends[k-1])
		}
	})
	defer func() { // also when backward panics with a libtorch error (Catch)
		lib.BnGradWatchDisarm(w.h)
		wg.Wait()
		runtime.KeepAlive(w)
	}()
	return backward()
}

// Counts says how many times backward finished each trainable parameter's gradient
// since the last Run started, in buffer order.
func (w *GradWatch) Counts() []int32 {
	c := make([]int32, len(w.ends))
	lib.BnGradWatchCounts(w.h, c)
	runtime.KeepAlive(w)
	return c
}
