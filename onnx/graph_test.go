package onnx

import (
	"bytes"
	"slices"
	"strconv"
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

// Externalize moves each initializer of ExternalMin bytes or more out, in order, and
// leaves where it is; the rest stay in the graph, and Check counts both.
func TestExternalize(t *testing.T) {
	g := NewGraph("test")
	big := make([]float32, ExternalMin/4+1)
	for i := range big {
		big[i] = float32(i)
	}
	g.Float("a", []int64{int64(len(big))}, big)
	g.Float("small", []int64{2}, []float32{1, 2})
	g.Float("b", []int64{int64(len(big))}, big)
	m, err := g.Model("test")
	if err != nil {
		t.Fatal(err)
	}
	inline := proto.Clone(m).(*ModelProto)
	var data bytes.Buffer
	if err := Externalize(m, ExternalDataFile, &data); err != nil {
		t.Fatal(err)
	}
	if err := Check(m); err != nil {
		t.Fatal(err)
	}
	n := len(inline.Graph.Initializer[0].RawData)
	if !bytes.Equal(data.Bytes(), append(slices.Clone(inline.Graph.Initializer[0].RawData), inline.Graph.Initializer[2].RawData...)) {
		t.Fatalf("the data file holds %d bytes, not a's and b's %d each in order", data.Len(), n)
	}
	for i, want := range []string{"location=model.onnx_data offset=0 length=" + strconv.Itoa(n), "", "location=model.onnx_data offset=" + strconv.Itoa(n) + " length=" + strconv.Itoa(n)} {
		t0 := m.Graph.Initializer[i]
		var got []string
		for _, e := range t0.ExternalData {
			got = append(got, e.GetKey()+"="+e.GetValue())
		}
		if strings.Join(got, " ") != want || (want == "") != (t0.GetDataLocation() == TensorProto_DEFAULT) || (want == "") != (len(t0.RawData) > 0) {
			t.Errorf("initializer %s: external_data %v, location %v, %d raw bytes; want %q", t0.GetName(), got, t0.GetDataLocation(), len(t0.RawData), want)
		}
	}
	m.Graph.Initializer[2].ExternalData[2].Value = proto.String(strconv.Itoa(n - 4))
	if err := Check(m); err == nil || !strings.Contains(err.Error(), "holds") {
		t.Errorf("a wrong external length: %v", err)
	}
}
