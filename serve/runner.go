package serve

import "github.com/bertnode/bertnode/tokenize"

// Runner runs one batch of encoded sequences through a model and returns each
// sequence's logits without padding, as train.Infer does. The batcher calls it from
// goroutines locked to their OS threads, one per BatchConfig.Instances: with more than
// one it must be safe for concurrent use (train.Trainer.InferBatch is).
type Runner interface {
	Run(seqs []*tokenize.Encoding) ([][]float32, error)
}

// RunnerFunc makes a function, such as train.Trainer.InferBatch, a Runner.
type RunnerFunc func(seqs []*tokenize.Encoding) ([][]float32, error)

// Run calls f.
func (f RunnerFunc) Run(seqs []*tokenize.Encoding) ([][]float32, error) { return f(seqs) }
