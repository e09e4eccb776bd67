package ringbench

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
)

// BERT-base (uncased) dimensions.
const (
	bertVocab   = 30522
	bertHidden  = 768
	bertFFN     = 3072
	bertLayers  = 12
	bertMaxPos  = 512
	bertSeqLen  = 128 // positions a fine-tuning batch touches
	bertClasses = 2
)

// tensor is one parameter's gradient in the flat buffer.
type tensor struct {
	rows, cols int
	sparseRows int // >0: only this many rows (tokens in the batch) are non-zero
	denseRows  int // >0: only the first denseRows rows are non-zero (positions)
}

func bertTensors() []tensor {
	h := bertHidden
	ts := []tensor{
		{rows: bertVocab, cols: h, sparseRows: bertVocab / 50}, // ~2% of the vocabulary per batch
		{rows: bertMaxPos, cols: h, denseRows: bertSeqLen},
		{rows: 2, cols: h}, {rows: 2, cols: h}, // token types, embedding LayerNorm
	}
	for l := 0; l < bertLayers; l++ {
		ts = append(ts,
			tensor{rows: 3*h + 3, cols: h},                                 // Q, K, V weights and biases
			tensor{rows: h + 1, cols: h},                                   // attention output
			tensor{rows: 2, cols: h},                                       // LayerNorm
			tensor{rows: bertFFN, cols: h}, tensor{rows: 1, cols: bertFFN}, // intermediate
			tensor{rows: h, cols: bertFFN}, tensor{rows: 1, cols: h}, // output
			tensor{rows: 2, cols: h}) // LayerNorm
	}
	return append(ts, tensor{rows: h + 1, cols: h}, tensor{rows: bertClasses, cols: h + 1})
}

// BERTBaseParams is the number of values in a BERT-base gradient (about 110M).
func BERTBaseParams() int {
	n := 0
	for _, t := range bertTensors() {
		n += t.rows * t.cols
	}
	return n
}

// SyntheticBERTGradient fills a BERT-base-sized buffer with what one rank's gradient
// looks like after a fine-tuning step on a batch: the word-embedding gradient is zero
// except for the rows of tokens in the batch (drawn Zipf-like, so ranks share the common
// tokens but not the rare ones), position embeddings are non-zero for the first 128
// positions, and every other tensor is dense, with a per-tensor scale spread over two
// orders of magnitude as real gradients are.
func SyntheticBERTGradient(rank int, seed uint64) []float32 {
	buf := make([]float32, BERTBaseParams())
	rng := rand.New(rand.NewPCG(seed, uint64(rank)+1))
	zipf := rand.NewZipf(rng, 1.1, 50, bertVocab-1)
	off := 0
	for _, t := range bertTensors() {
		v := buf[off : off+t.rows*t.cols]
		off += len(v)
		scale := math.Pow(10, -5+2*rng.Float64())
		switch {
		case t.sparseRows > 0:
			seen := make([]bool, t.rows)
			for i := 0; i < t.sparseRows; {
				if r := int(zipf.Uint64()); !seen[r] {
					seen[r] = true
					normal(rng, v[r*t.cols:(r+1)*t.cols], scale)
					i++
				}
			}
		case t.denseRows > 0:
			normal(rng, v[:t.denseRows*t.cols], scale)
		default:
			normal(rng, v, scale)
		}
	}
	return buf
}

func normal(rng *rand.Rand, v []float32, scale float64) {
	for i := range v {
		v[i] = float32(rng.NormFloat64() * scale)
	}
}

// RandomGradient is a dense gradient: normal values at one scale.
func RandomGradient(n, rank int, seed uint64) []float32 {
	v := make([]float32, n)
	normal(rand.New(rand.NewPCG(seed, uint64(rank)+1)), v, 1e-3)
	return v
}

// LoadGradFile reads rank's gradient from paths, raw little-endian float32 files (for
// example the model package's flat gradient buffer after a backward pass): rank i reads
// paths[i mod len(paths)]. When ranks share a file, each scales every value by its own
// factor 1 + 0.05 N(0,1), so that they differ in every bit but share the zeros, as
// ranks whose batches touch similar tokens do; with a file per rank the values are used
// as they are.
func LoadGradFile(paths []string, rank, ranks int, seed uint64) ([]float32, error) {
	path := paths[rank%len(paths)]
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b)%4 != 0 || len(b) == 0 {
		return nil, fmt.Errorf("%s: %d bytes is not a non-empty whole number of little-endian float32", path, len(b))
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	if len(paths) < ranks {
		rng := rand.New(rand.NewPCG(seed, uint64(rank)+1))
		for i := range v {
			v[i] *= float32(1 + 0.05*rng.NormFloat64())
		}
	}
	return v, nil
}
