package api

import (
	"strings"
	"testing"
	"time"
)

// TestParsePredictSpec: a predict spec reads with its defaults, and each bad field is
// refused by name.
func TestParsePredictSpec(t *testing.T) {
	const ok = "kind: predict\ntask: ner\nmodel: blob:m\ninput: blob:i\nbatch_size: 8\ndata: {format: conll}\n"
	s, err := ParsePredictSpec(ok)
	if err != nil {
		t.Fatal(err)
	}
	if s.Lease != Duration(5*time.Minute) || s.Cluster.Nodes != 1 || s.Cluster.BlockRecords != 256 || s.Data.Format != "conll" || SpecKind(ok) != KindPredict {
		t.Fatalf("parsed %+v", s)
	}
	if SpecKind("task: classify\ntrain: x.txt\n") != "" {
		t.Fatal("a training spec has a kind")
	}
	for _, c := range []struct{ change, want string }{
		{"kind: train", "kind: \"train\": want predict"},
		{"task: nli", "task: \"nli\": want one of classify, multilabel, regression, ner, qa, choice, embed, mlm"},
		{"model: ''", "model: a model is required"},
		{"input: ''", "input: an input file is required"},
		{"batch_size: 0", "batch_size: 0 is not in [1,"},
		{"cluster: {block_records: 12}", "cluster.block_records: 12 is not a multiple of batch_size 8"},
		{"cluster: {nodes: 100, block_records: 8}", "cluster.nodes: 100 is not in [1, 64]"},
		{"lease: 10ms", "lease: 10ms is too short"},
		{"epochs: 3", "field epochs not found"},
		{"truncate_dim: -1", "truncate_dim: -1: want a positive width"},
		{"truncate_dim: 64", "truncate_dim: cuts an embedding model's vectors; this job's task is ner"},
	} {
		field, _, _ := strings.Cut(c.change, ":")
		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(ok), "\n") {
			if !strings.HasPrefix(l, field+":") {
				lines = append(lines, l)
			}
		}
		if _, err := ParsePredictSpec(strings.Join(append(lines, c.change), "\n")); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.change, err, c.want)
		}
	}
}
