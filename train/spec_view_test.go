package train

import (
	"reflect"
	"slices"
	"testing"

	"github.com/bertnode/bertnode/api"
)

// The coordinator and the node read a job spec through api.ParseSpec, which must mean
// what train.ParseSpec means for the fields both read, defaults included.
func TestAPISpecViewAgreesWithTrain(t *testing.T) {
	for _, text := range []string{
		"train: x.tsv\n",
		"train: x.tsv\ntask: ner\nmodel: m\ntokenizer: vocab.txt\ndistill: {teacher: runs/t, alpha: 0.3}\nseed: 7\nbatch_size: 8\ngrad_accum: 4\nepochs: 1.5\nlr: 0.001\nclip_norm: 0.5\nkeep_checkpoints: 3\nsave_steps: 10\neval_steps: 5\npatience: 2\nmax_steps: 40\ndata: {format: tsv}\nreport_to: [tensorboard]\n",
	} {
		ts, err := ParseSpec(text)
		if err != nil {
			t.Fatal(err)
		}
		if err := ts.Validate(); err != nil {
			t.Fatal(err)
		}
		as, err := api.ParseSpec(text)
		if err != nil {
			t.Fatal(err)
		}
		got := api.JobSpec{Task: ts.Task, Train: ts.Train, Eval: ts.Eval, EvalSplit: ts.EvalSplit, Data: ts.Data, Model: ts.Model,
			Tokenizer: ts.Tokenizer, Seed: ts.Seed, BatchSize: ts.BatchSize, GradAccum: ts.GradAccum, Epochs: ts.Epochs, MaxSteps: ts.MaxSteps, LR: ts.LR,
			ClipNorm: ts.ClipNorm, EvalEvery: ts.EvalEvery, SaveEvery: ts.SaveEvery, Keep: ts.KeepCheckpoints, Patience: ts.Patience,
			Metric: ts.Metric, Cluster: ts.Cluster.WithDefaults(), ReportTo: ts.ReportTo}
		got.Distill.Teacher = ts.Distill.Teacher
		if got.Data.Format != as.Data.Format || got.Data.Delimiter != as.Data.Delimiter {
			t.Fatalf("%q: data %+v vs %+v", text, got.Data, as.Data)
		}
		got.Data = as.Data
		if !slices.Equal(got.ReportTo, as.ReportTo) {
			t.Fatalf("%q: report_to %v vs %v", text, got.ReportTo, as.ReportTo)
		}
		got.ReportTo = as.ReportTo
		if !reflect.DeepEqual(got, as) {
			t.Errorf("%q:\ntrain reads %+v\napi reads   %+v", text, got, as)
		}
	}
}
