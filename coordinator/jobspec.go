package coordinator

import (
	"fmt"
	"strings"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/shard"
	"gopkg.in/yaml.v3"
)

// jobSpec is the part of a job spec the coordinator needs. The nodes read the whole
// spec with train.LoadSpec; unknown fields are theirs, so this parse is not strict.
type jobSpec struct {
	Task      string
	Train     string
	Eval      string
	EvalSplit float64
	Data      shard.Spec
	Seed      int64
	BatchSize int
	GradAccum int
	Epochs    float64
	MaxSteps  int
	Cluster   api.ClusterSpec
}

// parseJobSpec decodes text field by field, so that an error names its field; the
// defaults are train.Defaults' for the fields read here.
func parseJobSpec(text string) (jobSpec, error) {
	s := jobSpec{Task: "classify", Seed: 42, BatchSize: 32, GradAccum: 1, Epochs: 3}
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(text), &root); err != nil {
		return s, badField("spec", "%v", err)
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return s, badField("spec", "want a YAML mapping of job fields")
	}
	top := map[string]any{
		"task": &s.Task, "train": &s.Train, "eval": &s.Eval, "eval_split": &s.EvalSplit, "data": &s.Data,
		"seed": &s.Seed, "batch_size": &s.BatchSize, "grad_accum": &s.GradAccum, "epochs": &s.Epochs, "max_steps": &s.MaxSteps,
	}
	c := &s.Cluster
	cluster := map[string]any{
		"nodes": &c.Nodes, "min_nodes": &c.MinNodes, "batch": &c.Batch, "codec": &c.Codec, "ring_timeout": &c.RingTimeout,
		"rejoin_window": &c.RejoinWindow, "data": &c.Data, "block_records": &c.BlockRecords, "window_blocks": &c.WindowBlocks,
	}
	err := decodeFields(root.Content[0], func(key string, v *yaml.Node) error {
		if key != "cluster" {
			return decodeInto(top[key], key, v)
		}
		if v.Kind != yaml.MappingNode {
			return badField("cluster", "line %d: want a mapping", v.Line)
		}
		return decodeFields(v, func(k string, v *yaml.Node) error { return decodeInto(cluster[k], "cluster."+k, v) })
	})
	if err != nil {
		return s, err
	}
	switch s.Task {
	case "classify", "multilabel", "ner", "qa":
	default:
		return s, badField("task", "%q: want classify, multilabel, ner or qa", s.Task)
	}
	switch {
	case s.Train == "":
		return s, badField("train", "a training file is required")
	case s.EvalSplit < 0 || s.EvalSplit >= 1:
		return s, badField("eval_split", "%v is not in [0, 1)", s.EvalSplit)
	case s.BatchSize < 1:
		return s, badField("batch_size", "%d: must be positive", s.BatchSize)
	case s.GradAccum < 1:
		return s, badField("grad_accum", "%d: must be positive", s.GradAccum)
	case s.Epochs <= 0 && s.MaxSteps <= 0:
		return s, badField("epochs", "set epochs or max_steps")
	}
	if err := s.Data.Validate(); err != nil {
		return s, badField("data", "%v", err)
	}
	s.Cluster = s.Cluster.WithDefaults()
	if err := s.Cluster.Validate(); err != nil {
		// "job spec: cluster.nodes: ..." names the field.
		msg := strings.TrimPrefix(err.Error(), "job spec: ")
		field, _, _ := strings.Cut(msg, ":")
		return s, &api.Error{Status: 400, Field: field, Message: msg}
	}
	return s, nil
}

func decodeFields(m *yaml.Node, fn func(key string, v *yaml.Node) error) error {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if err := fn(m.Content[i].Value, m.Content[i+1]); err != nil {
			return err
		}
	}
	return nil
}

// decodeInto decodes v into dst, a pointer, or ignores a field the coordinator does
// not read (dst nil).
func decodeInto(dst any, field string, v *yaml.Node) error {
	if dst == nil {
		return nil
	}
	if err := v.Decode(dst); err != nil {
		msg := err.Error()
		if te, ok := err.(*yaml.TypeError); ok {
			msg = strings.Join(te.Errors, "; ")
		}
		return badField(field, "line %d: %s", v.Line, strings.TrimPrefix(msg, "yaml: "))
	}
	return nil
}

// datasets are the job's files by role.
func (s jobSpec) datasets() [][2]string {
	d := [][2]string{{"train", s.Train}}
	if s.Eval != "" {
		d = append(d, [2]string{"eval", s.Eval})
	}
	return d
}

// blobRef is the sha of a "blob:<sha256>" path, or "" for another path.
func blobRef(path string) (string, error) {
	sha, ok := strings.CutPrefix(path, "blob:")
	if !ok {
		return "", nil
	}
	if !ValidSHA(sha) {
		return "", fmt.Errorf("%q: want blob:<sha256 in hex>", path)
	}
	return sha, nil
}
