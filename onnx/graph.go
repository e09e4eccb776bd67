package onnx

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"google.golang.org/protobuf/proto"
)

// Opset is the version of ONNX's default operator set the graphs use: 17 has
// LayerNormalization as one operator, which ONNX Runtime runs fused.
const Opset = 17

// MaxBytes is the most a model with its weights inside can take: protobuf refuses
// messages of 2 GiB and more. Larger models need ONNX's external data.
const MaxBytes = math.MaxInt32

// Dim is one dimension of a graph input or output: a named dynamic one (Param, as
// "batch_size") or a fixed size.
type Dim struct {
	Param string
	Size  int64
}

// Graph builds an inference graph in order: each node's inputs are produced before it
// by the graph's inputs, its initializers or earlier nodes, which Check verifies.
type Graph struct {
	g *GraphProto
	n int // the next value number
}

// NewGraph starts an empty graph.
func NewGraph(name string) *Graph {
	return &Graph{g: &GraphProto{Name: proto.String(name)}}
}

func valueInfo(name string, elem TensorProto_DataType, dims []Dim) *ValueInfoProto {
	shape := &TensorShapeProto{}
	for _, d := range dims {
		if d.Param != "" {
			shape.Dim = append(shape.Dim, &TensorShapeProto_Dimension{Value: &TensorShapeProto_Dimension_DimParam{DimParam: d.Param}})
		} else {
			shape.Dim = append(shape.Dim, &TensorShapeProto_Dimension{Value: &TensorShapeProto_Dimension_DimValue{DimValue: d.Size}})
		}
	}
	return &ValueInfoProto{Name: proto.String(name), Type: &TypeProto{Value: &TypeProto_TensorType{TensorType: &TypeProto_Tensor{
		ElemType: proto.Int32(int32(elem)), Shape: shape,
	}}}}
}

// Input declares a graph input and returns its name.
func (g *Graph) Input(name string, elem TensorProto_DataType, dims ...Dim) string {
	g.g.Input = append(g.g.Input, valueInfo(name, elem, dims))
	return name
}

// Output makes value a graph output under name, through an Identity node, so that the
// output's name is the interface's whatever node computed it.
func (g *Graph) Output(name, value string, elem TensorProto_DataType, dims ...Dim) {
	g.g.Node = append(g.g.Node, &NodeProto{OpType: proto.String("Identity"), Name: proto.String(name), Input: []string{value}, Output: []string{name}})
	g.g.Output = append(g.g.Output, valueInfo(name, elem, dims))
}

// Float adds a float32 initializer of the given shape (row-major data), stored as
// little-endian raw_data, and returns its name.
func (g *Graph) Float(name string, shape []int64, data []float32) string {
	raw := make([]byte, 0, 4*len(data))
	for _, v := range data {
		raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(v))
	}
	return g.init(name, TensorProto_FLOAT, shape, raw)
}

// Int64 adds an int64 initializer of the given shape and returns its name.
func (g *Graph) Int64(name string, shape []int64, data []int64) string {
	raw := make([]byte, 0, 8*len(data))
	for _, v := range data {
		raw = binary.LittleEndian.AppendUint64(raw, uint64(v))
	}
	return g.init(name, TensorProto_INT64, shape, raw)
}

func (g *Graph) init(name string, elem TensorProto_DataType, shape []int64, raw []byte) string {
	g.g.Initializer = append(g.g.Initializer, &TensorProto{
		Name: proto.String(name), DataType: proto.Int32(int32(elem)), Dims: slices.Clone(shape), RawData: raw,
	})
	return name
}

// Scalar adds a float32 constant of shape [] (it broadcasts) and returns its name.
func (g *Graph) Scalar(v float32) string { return g.Float(g.fresh("const"), nil, []float32{v}) }

// IntScalar adds an int64 constant of shape [].
func (g *Graph) IntScalar(v int64) string { return g.Int64(g.fresh("const"), nil, []int64{v}) }

// Ints adds an int64 vector constant, as the shape and axes inputs of operators take.
func (g *Graph) Ints(v ...int64) string {
	return g.Int64(g.fresh("const"), []int64{int64(len(v))}, v)
}

func (g *Graph) fresh(op string) string {
	g.n++
	return fmt.Sprintf("/%s_%d", op, g.n)
}

// Op adds a node with one output and returns the output's name.
func (g *Graph) Op(op string, inputs []string, attrs ...*AttributeProto) string {
	return g.OpN(op, inputs, 1, attrs...)[0]
}

// OpN adds a node with n outputs and returns their names.
func (g *Graph) OpN(op string, inputs []string, n int, attrs ...*AttributeProto) []string {
	name := g.fresh(op)
	outs := make([]string, n)
	for i := range outs {
		outs[i] = fmt.Sprintf("%s_output_%d", name, i)
	}
	g.g.Node = append(g.g.Node, &NodeProto{OpType: proto.String(op), Name: proto.String(name), Input: inputs, Output: outs, Attribute: attrs})
	return outs
}

// Int is an integer attribute.
func Int(name string, v int64) *AttributeProto {
	return &AttributeProto{Name: proto.String(name), Type: AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

// Float32 is a float attribute.
func Float32(name string, v float32) *AttributeProto {
	return &AttributeProto{Name: proto.String(name), Type: AttributeProto_FLOAT.Enum(), F: proto.Float32(v)}
}

// Ints is an attribute of integers.
func Ints(name string, v ...int64) *AttributeProto {
	return &AttributeProto{Name: proto.String(name), Type: AttributeProto_INTS.Enum(), Ints: v}
}

// Model wraps the graph in a model of IR version 8 on opset Opset, checked by Check.
// Weights of MaxBytes or more must be written apart (Externalize).
func (g *Graph) Model(producer string) (*ModelProto, error) {
	m := &ModelProto{
		IrVersion:    proto.Int64(int64(Version_IR_VERSION)),
		OpsetImport:  []*OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(Opset)}},
		ProducerName: proto.String(producer),
		Graph:        g.g,
	}
	if err := Check(m); err != nil {
		return nil, err
	}
	return m, nil
}

// elemSize is the bytes of one element of the types graphs here hold.
var elemSize = map[TensorProto_DataType]int64{TensorProto_FLOAT: 4, TensorProto_INT64: 8}

// Check verifies what ONNX Runtime would otherwise reject when loading: the opset, that
// every node reads only values produced before it (graph inputs, initializers, earlier
// nodes' outputs), that no value is produced twice, that every initializer's data fills
// its shape, and that every graph output is produced.
func Check(m *ModelProto) error {
	if len(m.GetOpsetImport()) != 1 || m.GetOpsetImport()[0].GetDomain() != "" || m.GetOpsetImport()[0].GetVersion() != Opset {
		return fmt.Errorf("onnx: want the default opset %d alone; the model imports %v", Opset, m.GetOpsetImport())
	}
	g := m.GetGraph()
	known := map[string]bool{}
	produce := func(name, by string) error {
		if name == "" {
			return fmt.Errorf("onnx: %s produces a value without a name", by)
		}
		if known[name] {
			return fmt.Errorf("onnx: %s produces %q, which exists already", by, name)
		}
		known[name] = true
		return nil
	}
	for _, in := range g.GetInput() {
		if err := produce(in.GetName(), "input"); err != nil {
			return err
		}
	}
	for _, t := range g.GetInitializer() {
		if err := produce(t.GetName(), "initializer"); err != nil {
			return err
		}
		size, ok := elemSize[TensorProto_DataType(t.GetDataType())]
		if !ok {
			return fmt.Errorf("onnx: initializer %q has data type %d", t.GetName(), t.GetDataType())
		}
		n := int64(1)
		for _, d := range t.GetDims() {
			if d < 0 {
				return fmt.Errorf("onnx: initializer %q has shape %v", t.GetName(), t.GetDims())
			}
			n *= d
		}
		if got, err := dataBytes(t); err != nil {
			return err
		} else if got != n*size {
			return fmt.Errorf("onnx: initializer %q of shape %v holds %d bytes, want %d", t.GetName(), t.GetDims(), got, n*size)
		}
	}
	for i, nd := range g.GetNode() {
		by := fmt.Sprintf("node %d (%s %s)", i, nd.GetOpType(), nd.GetName())
		for _, in := range nd.GetInput() {
			if in != "" && !known[in] { // "" is an optional input left out
				return fmt.Errorf("onnx: %s reads %q before anything produces it", by, in)
			}
		}
		for _, out := range nd.GetOutput() {
			if err := produce(out, by); err != nil {
				return err
			}
		}
	}
	for _, out := range g.GetOutput() {
		if !known[out.GetName()] {
			return fmt.Errorf("onnx: output %q is not produced", out.GetName())
		}
	}
	return nil
}
