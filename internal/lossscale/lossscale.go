// Package lossscale is fp16's dynamic loss scale as torch.cuda.amp.GradScaler keeps it:
// the loss is multiplied by the scale before backward so that small gradients survive
// fp16's range; a step whose gradient overflowed is skipped and halves the scale, and
// GrowthInterval steps in a row without overflow double it. The single-machine trainer
// and the cluster's nodes follow the same rule, so that they take the same steps.
package lossscale

const (
	Initial        = 65536 // GradScaler's init_scale
	GrowthInterval = 2000  // GradScaler's growth_interval
)

// Next is the scale, and the count of steps in a row without overflow, that follow a
// step taken at scale after good such steps.
func Next(scale float64, good int, overflow bool) (float64, int) {
	switch {
	case overflow:
		return scale / 2, 0
	case good+1 == GrowthInterval:
		return scale * 2, 0
	}
	return scale, good + 1
}
