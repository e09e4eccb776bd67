package train

import (
	"errors"
	"fmt"

	"github.com/bertnode/bertnode/model"
)

// libtorchFailed, deferred before model.Catch in the trainer's entry points, answers a
// libtorch error that Catch turned into *err. Out of memory: the job's shape does not
// fit the device, so *err says which settings shrink it (and a node fails the job with
// it, rather than crash, be restarted into the same step, and crash again). Any other
// on a GPU is the device's (a CUDA error leaves the process's context unusable): the
// process ends as before, and its supervisor starts it afresh (bertnode join
// --devices, systemd) while the cluster goes on without it. On the CPU it stays an error.
func (t *Trainer) libtorchFailed(err *error) {
	var te *model.TorchError
	if !errors.As(*err, &te) {
		return
	}
	dev := t.Model.Opts.Device
	if te.OutOfMemory() {
		*err = fmt.Errorf("%w: the step does not fit in the memory of %s: lower batch_size (raising grad_accum keeps the batch) "+
			"or max_length, or set gradient_checkpointing: true or mixed_precision", *err, model.DeviceName(dev))
		return
	}
	if dev.IsCuda() {
		panic(*err)
	}
}
