package train

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/bertnode/bertnode/allreduce"
	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/shard"
)

// ringSync averages gradients over a ring all-reduce: what a node plugs into GradSync.
type ringSync struct{ r *allreduce.Ring }

func (s ringSync) AllReduce(ctx context.Context, g []float32) error {
	return s.r.AllReduce(ctx, g, allreduce.OpAvg)
}

// Two replicas that train on different halves of the data and average their gradients
// over a real TCP ring stay bit-identical, and differ from a replica trained alone: for
// BERT and for the families with layers of their own (ModernBERT) or relative attention
// (DeBERTa, MPNet) or rotary positions (NomicBERT); and for regression's head and loss.
func TestReplicasStayIdenticalOverTheRing(t *testing.T) {
	for _, preset := range []string{"tiny", "modernbert-tiny", "deberta-v2-tiny", "mpnet-tiny", "nomic_bert-tiny"} {
		t.Run(preset, func(t *testing.T) {
			s := smsSpec(t)
			s.Model = preset
			replicasStayIdentical(t, s)
		})
	}
	t.Run("regression", func(t *testing.T) { replicasStayIdentical(t, stsSpec(t)) })
	t.Run("lora", func(t *testing.T) { // the ring carries the adapters' and head's gradient alone
		s := smsSpec(t)
		s.LoRA, s.LR = model.LoRA{R: 4, Alpha: 8, Dropout: 0.1, Merge: true}, 5e-3
		replicasStayIdentical(t, s)
	})
	t.Run("embed", func(t *testing.T) {
		s := smsSpec(t)
		s.Train = filepath.Join(t.TempDir(), "pairs.jsonl")
		translationPairs(t, s.Train, 200, 3)
		s.Task, s.Data, s.Metric, s.MaxLength = "embed", shard.Spec{}, "", 16
		replicasStayIdentical(t, s)
	})
	t.Run("mlm", func(t *testing.T) { // each rank masks its own batch; the gradients average
		s := smsSpec(t)
		s.Train = filepath.Join(t.TempDir(), "texts.jsonl")
		translationPairs(t, s.Train, 200, 4) // their "text" fields; mlm reads no text_pair
		s.Task, s.Data, s.Metric, s.MaxLength = "mlm", shard.Spec{}, "", 16
		replicasStayIdentical(t, s)
	})
	t.Run("choice", func(t *testing.T) {
		s := smsSpec(t)
		s.Train = filepath.Join(t.TempDir(), "choices.jsonl")
		choiceData(t, s.Train, 200, 3)
		s.Task, s.Data, s.Metric, s.MaxLength = "choice", shard.Spec{}, "", 16
		replicasStayIdentical(t, s)
	})
}

func replicasStayIdentical(t *testing.T, base Spec) {
	const n = 2
	// Each replica sees every other record of the data: its own shard.
	data, err := os.ReadFile(base.Train)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	specs := make([]Spec, n)
	for i := range specs {
		var part []byte
		for j := i; j < len(lines); j += n {
			part = append(part, lines[j]...)
		}
		path := filepath.Join(t.TempDir(), "shard"+filepath.Ext(base.Train))
		if err := os.WriteFile(path, part, 0o644); err != nil {
			t.Fatal(err)
		}
		s := base
		s.Train, s.EvalSplit, s.MaxSteps, s.BatchSize, s.Threads, s.Output = path, 0, 6, 16, 1, t.TempDir()
		specs[i] = s
	}
	// Replicas are processes in real use; here they share libtorch's generator, so
	// trainReplicasOverRing builds them one at a time.
	trainReplicasOverRing(t, specs, allreduce.CodecNone, allreduce.PowerSGDParams{})
	final := func(s Spec) []byte {
		b, err := os.ReadFile(filepath.Join(s.Output, "final", "model.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if !bytes.Equal(final(specs[0]), final(specs[1])) {
		t.Fatal("the replicas' weights differ after training with averaged gradients")
	}
	runtime.LockOSThread()
	alone := specs[0]
	alone.Output = t.TempDir()
	trainSpec(t, alone)
	if bytes.Equal(final(alone), final(specs[0])) {
		t.Fatal("training alone gave the same weights as with the ring: the gradients were not averaged")
	}
}
