package train

import (
	"fmt"

	"github.com/bertnode/bertnode/model"
)

// outOfMemory, deferred before model.CatchOn in the trainer's entry points, says which
// settings shrink a step when libtorch ran out of memory on dev: the job's shape does
// not fit the device, and a node fails the job with this error rather than crash, be
// restarted into the same step, and crash again.
func outOfMemory(dev model.Device, err *error) {
	if model.OutOfMemory(*err) {
		*err = fmt.Errorf("%w: the step does not fit in the memory of %s: lower batch_size (raising grad_accum keeps the batch) "+
			"or max_length, or set auto_micro_batch, gradient_checkpointing or mixed_precision", *err, model.DeviceName(dev))
	}
}
