package model

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"unsafe"

	"github.com/sugarme/gotch"
	lib "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/ts"
)

// Dynamic int8 quantization for inference on a CPU, as PyTorch's quantize_dynamic (its
// "Dynamic Quantization on BERT" tutorial) with per-channel weights: each encoder
// layer's six dense layers keep their weights as int8, one scale per output row, and
// quantize their input per tensor as it comes, so no calibration data is needed. These
// layers are nearly all of a short text's forward, and libtorch's int8 GEMMs (onednn's
// here) ran a 768 x 3072 layer (one input, repeated) 3.6-3.8x as fast as OpenBLAS's
// float32 on one core; base served 2.25-3.25x the requests (README: int8 on the CPU).
// The embeddings, LayerNorms, attention and the head stay float32: the head is a sliver
// of the work and its logits are the answer.

// quantEngine is the quantized engine Quantize uses (x86, fbgemm or onednn), made
// current; an error when this libtorch has none.
func quantEngine() (string, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	e := lib.BnQEngine()
	if err := ts.TorchErr(); err != nil {
		return "", fmt.Errorf("model: quantized engines: %w", err)
	}
	if e == "" {
		return "", fmt.Errorf("model: int8 needs libtorch's x86, fbgemm or onednn quantized engine, and this libtorch has none")
	}
	return e, nil
}

// ideepCacheOff keeps libtorch 1.x's ideep from reusing its cached int8 computations
// across models: ideep reads LRU_CACHE_CAPACITY when a thread first computes with it,
// so Quantize sets it to 1 unless the user set it. With its default (1,024), a process
// that quantized one model, freed it and quantized another computed one layer of the
// second with the first's state: MPNet's NER logits after a RoBERTa model's were 1.3%
// off instead of 0.03%, the same with bit-identical inputs and weights, and right with
// the cache off. The cache bought nothing measurable: base int8 at 16 x 40 ran 2.73x
// float32 with it, 2.70x without (one run, one thread).
var ideepCacheOff sync.Once

// Quantize packs the encoder layers' dense weights as int8 for inference (above). It
// reads the weights as they are now: the model then serves predictions only, and
// Forward refuses to train it.
func (m *Model) Quantize() error {
	if m.Opts.Device.IsCuda() {
		return fmt.Errorf("model: int8 quantization is for CPU inference (the model is on %v)", m.Opts.Device)
	}
	if m.quantized {
		return nil
	}
	if m.lora != nil && !m.lora.merged {
		return fmt.Errorf("model: int8 packs the dense layers' weights alone: merge the LoRA adapters first (MergeLoRA)")
	}
	if _, err := quantEngine(); err != nil {
		return err
	}
	ideepCacheOff.Do(func() {
		if _, ok := os.LookupEnv("LRU_CACHE_CAPACITY"); !ok {
			os.Setenv("LRU_CACHE_CAPACITY", "1")
		}
	})
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var dense [][]*linear
	for _, ly := range m.layers { // ALBERT repeats its shared layer: packed once
		dense = append(dense, ly.dense())
	}
	if m.modern != nil {
		for _, ly := range m.modern.layers {
			dense = append(dense, ly.dense())
		}
	}
	for _, ls := range dense {
		for _, l := range ls {
			if l.int8 != nil {
				continue
			}
			q, err := newInt8Linear(l)
			if err != nil {
				return fmt.Errorf("model: quantizing %s: %w", l.w.Name, err)
			}
			l.int8 = q
		}
	}
	m.quantized = true
	return nil
}

// int8Linear is a dense layer's weight and bias packed by libtorch's quantized engine.
type int8Linear struct{ h unsafe.Pointer }

func newInt8Linear(l *linear) (*int8Linear, error) {
	w := l.w.T.MustDetach(false)
	defer w.MustDrop()
	var b *ts.Tensor
	if l.b != nil {
		b = l.b.T.MustDetach(false)
	} else { // a layer without bias packs zeros: the same products
		b = ts.MustZeros([]int64{l.w.Shape[0]}, gotch.Float, gotch.CPU)
	}
	defer b.MustDrop()
	h := lib.BnQLinearNew(ctensor(w), ctensor(b))
	if err := ts.TorchErr(); err != nil || h == nil {
		return nil, fmt.Errorf("packing int8 weights: %v", err)
	}
	q := &int8Linear{h: h}
	runtime.SetFinalizer(q, func(q *int8Linear) { lib.BnQLinearFree(q.h) })
	return q, nil
}

func (q *int8Linear) fwd(x *ts.Tensor) *ts.Tensor {
	var out lib.Ctensor
	lib.BnQLinearForward(q.h, ctensor(x), &out)
	runtime.KeepAlive(x)
	runtime.KeepAlive(q)
	if err := ts.TorchErr(); err != nil {
		panic(fmt.Errorf("int8 linear: %w", err))
	}
	return ts.New(out)
}
