package node

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"unsafe"
)

// Position is where a replica stands in its job, beyond its buffers: with them it is
// the whole state every rank agrees on, and what a joining node receives.
type Position struct {
	Step  int64 `json:"step"`  // optimizer steps applied
	Epoch int   `json:"epoch"` // the epoch the next batch comes from
	Pos   int   `json:"pos"`   // the next record's index in that epoch's order

	// The evaluation and checkpoint owed at a step are done once, even when a failure
	// interrupts them: the next generation sees they are missing and does them.
	EvaluatedAt int64 `json:"evaluated_at"`
	SavedAt     int64 `json:"saved_at"`

	BestStep  int64              `json:"best_step"`
	BestValue float64            `json:"best_value"`
	Bad       int                `json:"evals_without_improvement"`
	LastEval  map[string]float64 `json:"last_eval,omitempty"`
	Stopped   bool               `json:"stopped,omitempty"` // early stopping ended the run
	LastLoss  float64            `json:"last_loss"`

	// fp16 (a LossScaler): the loss scale, the steps in a row without overflow, and
	// the steps skipped for an overflow (the learning-rate schedule and the optimizer
	// count the steps taken, as the single-machine trainer does).
	LossScale     float64 `json:"loss_scale,omitempty"`
	LossScaleGood int     `json:"loss_scale_good_steps,omitempty"`
	Skipped       int64   `json:"skipped_steps,omitempty"`
}

func (p Position) marshal() []byte {
	b, err := json.Marshal(p)
	if err != nil {
		panic(err) // plain data: cannot fail
	}
	return b
}

// checksum is the SHA-256 of the replica's buffers and the position: equal on every
// rank of a healthy ring.
func checksum(bufs [][]float32, p Position) string {
	h := sha256.New()
	for _, b := range bufs {
		h.Write(f32bytes(b))
	}
	h.Write(p.marshal())
	return hex.EncodeToString(h.Sum(nil))
}

func f32bytes(f []float32) []byte {
	if len(f) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(f))), 4*len(f))
}
