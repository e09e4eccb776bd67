package onnx

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
)

// tiny is y = x·w + 1 with x [batch, 2], through the builder.
func tiny() *Graph {
	g := NewGraph("tiny")
	x := g.Input("x", TensorProto_FLOAT, Dim{Param: "batch_size"}, Dim{Size: 2})
	w := g.Float("w", []int64{2, 3}, []float32{1, 2, 3, 4, 5, 6})
	g.Output("y", g.Op("Add", []string{g.Op("MatMul", []string{x, w}), g.Scalar(1)}), TensorProto_FLOAT, Dim{Param: "batch_size"}, Dim{Size: 3})
	return g
}

// A built graph survives encoding and passes Check; each defect Check looks for is
// found.
func TestCheck(t *testing.T) {
	m, err := tiny().Model("test")
	if err != nil {
		t.Fatal(err)
	}
	data, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	back := &ModelProto{}
	if err := proto.Unmarshal(data, back); err != nil {
		t.Fatal(err)
	}
	if err := Check(back); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		spoil func(m *ModelProto)
		want  string
	}{
		{"opset", func(m *ModelProto) { m.OpsetImport[0].Version = proto.Int64(13) }, "want the default opset 17"},
		{"order", func(m *ModelProto) { n := m.Graph.Node; n[0], n[1] = n[1], n[0] }, "before anything produces it"},
		{"twice", func(m *ModelProto) { m.Graph.Node[1].Output[0] = m.Graph.Node[0].Output[0] }, "exists already"},
		{"short data", func(m *ModelProto) { m.Graph.Initializer[0].RawData = m.Graph.Initializer[0].RawData[4:] }, "holds 20 bytes, want 24"},
		{"output", func(m *ModelProto) { m.Graph.Output[0].Name = proto.String("z") }, `output "z" is not produced`},
	} {
		m := proto.Clone(back).(*ModelProto)
		c.spoil(m)
		if err := Check(m); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
	}
}

// Weights past what protobuf can hold are refused, with a word on external data.
func TestModelRefusesTwoGigabytes(t *testing.T) {
	g := tiny()
	g.bytes = MaxBytes
	if _, err := g.Model("test"); err == nil || !strings.Contains(err.Error(), "external data") {
		t.Fatalf("%v, want a refusal naming external data", err)
	}
}
