package api

import (
	"math"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// specSeeds are job specs for the fuzz targets of this package and the coordinator's.
var specSeeds = []string{
	"", "train: x.tsv\n", "# only a comment\n", "- a list\n", "train: [x]\n", "train: a\ntrain: b\n",
	"train: x.tsv\ntask: ner\nmodel: m\ntokenizer: vocab.txt\nseed: 7\nbatch_size: 8\ngrad_accum: 4\nepochs: 1.5\nlr: 0.001\nclip_norm: 0.5\nkeep_checkpoints: 3\nsave_steps: 10\neval_steps: 5\npatience: 2\nmax_steps: 40\ndata: {format: tsv}\nreport_to: [tensorboard]\n",
	"task: classify\ntrain: data/sms_spam/SMSSpamCollection\ndata: {format: labeltext, delimiter: \"\\t\"}\neval_split: 0.2\nmodel: tiny\nmax_length: 64\nbatch_size: 32\nepochs: 2\nlr: 1.0e-3\nmetric: f1_spam\neval_steps: 50\nsave_steps: 50\ncluster:\n  nodes: 2\n  min_nodes: 1\n  batch: constant\n",
	"model: toy\ntrain: sms.txt\nbatch_size: 64\nepochs: 2\nlr: 0.05\neval_steps: 20\nsave_steps: 25\nmetric: accuracy\ncluster: {nodes: 3, ring_timeout: 3s}\n",
	"train: x\ncluster: {codec: powersgd, powersgd_rank: 8, powersgd_start_step: 250, batch: shrink, balance: true, data: shared, rejoin_window: 1m}\n",
	"train: x\nepochs: .nan\n", "train: x\neval_split: .nan\n", "train: x\nepochs: .inf\n",
	"train: x\nbatch_size: 4294967296\ngrad_accum: 4294967296\n", "train: x\ncluster: {ring_timeout: 1y}\n",
	"train: x\ndata: {format: csv, delimiter: '::'}\n", "train: &a x\neval: *a\n",
}

// specErrRE is what a ParseSpec error starts with: the field at fault, the data
// spec's field, or a YAML error, which names a line.
var specErrRE = regexp.MustCompile(`^job spec: ([a-z_]+(\.[a-z_]+)?|data: shard spec: [a-z_]+|yaml: .*line \d+): `)

// FuzzParseSpec: ParseSpec on any text returns a spec or an error that names the
// field or line at fault. A spec it accepts can be planned: its global batch and step
// counts are positive whatever the node and record counts (no overflow, no division
// by zero), and its learning rate scale is finite; and it round-trips: marshalled to
// YAML, it parses back to what marshals the same.
func FuzzParseSpec(f *testing.F) {
	for _, s := range specSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		s, err := ParseSpec(text)
		if err != nil {
			if !specErrRE.MatchString(err.Error()) {
				t.Fatalf("error names no field: %q", err)
			}
			return
		}
		if !(s.EvalSplit >= 0 && s.EvalSplit < 1) {
			t.Fatalf("accepted eval_split %v", s.EvalSplit)
		}
		for ranks := 1; ranks <= s.Cluster.Nodes; ranks++ {
			if b, l := s.GlobalBatch(ranks), s.LRScale(ranks); b < 1 || !(l > 0) || math.IsInf(l, 0) {
				t.Fatalf("%d ranks: global batch %d, learning rate scale %v", ranks, b, l)
			}
		}
		for _, records := range []int{1, 1000, math.MaxInt32} {
			if per, total := s.StepsPerEpoch(records), s.TotalSteps(records); per < 1 || total < 1 {
				t.Fatalf("%d records: %d steps per epoch, %d in all (epochs %v, max_steps %d, batch %d)", records, per, total, s.Epochs, s.MaxSteps, s.GlobalBatch(s.Cluster.Nodes))
			}
		}
		out, err := yaml.Marshal(s)
		if err != nil {
			t.Fatalf("accepted spec does not marshal: %v", err)
		}
		back, err := ParseSpec(string(out))
		if err != nil {
			t.Fatalf("marshalled spec does not parse: %v\n%s", err, out)
		}
		if again, err := yaml.Marshal(back); err != nil || string(again) != string(out) {
			t.Fatalf("round trip changed the spec (%v):\n%s\n%s", err, out, again)
		}
	})
}

// TestParseSpecErrors: an empty spec lacks its training file (it is not an EOF), and
// numbers that would make no plan (NaN, infinite, overflowing) are refused by field.
func TestParseSpecErrors(t *testing.T) {
	for text, want := range map[string]string{
		"":                                   "job spec: train: a training file is required",
		"# nothing\n":                        "job spec: train: a training file is required",
		"train: x\neval_split: .nan\n":       "job spec: eval_split: NaN is not in [0, 1)",
		"train: x\nepochs: .nan\n":           "job spec: epochs: NaN is more than 1e+06",
		"train: x\nepochs: .inf\n":           "job spec: epochs: +Inf is more than 1e+06",
		"train: x\nbatch_size: 4294967296\n": "job spec: batch_size: 4294967296 is more than 1048576",
		"train: x\ngrad_accum: 1048577\n":    "job spec: grad_accum: 1048577 is more than 1048576",
	} {
		if _, err := ParseSpec(text); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", text, err, want)
		}
	}
}
