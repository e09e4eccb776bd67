package onnx

import (
	"fmt"
	"io"
	"strconv"

	"google.golang.org/protobuf/proto"
)

// ExternalDataFile is where the weights go beside model.onnx when they are written
// apart, as optimum and onnx.save_model(save_as_external_data=True,
// all_tensors_to_one_file=True) name the file.
const ExternalDataFile = "model.onnx_data"

// ExternalMin is the smallest initializer Externalize moves, onnx's default
// size_threshold: shapes and scalars stay in the graph.
const ExternalMin = 1024

// WeightBytes is the data m's initializers hold in the file.
func WeightBytes(m *ModelProto) int64 {
	var n int64
	for _, t := range m.GetGraph().GetInitializer() {
		n += int64(len(t.GetRawData()))
	}
	return n
}

// Externalize writes the data of every initializer of ExternalMin bytes or more to w,
// one after another, and leaves in m where it is, as ONNX's external data: the
// tensor's data_location EXTERNAL and its external_data the file (location, relative
// to the model file), offset and length. It is how a model of protobuf's 2 GiB or more
// is saved, and how ONNX Runtime reads one.
func Externalize(m *ModelProto, location string, w io.Writer) error {
	var off int64
	for _, t := range m.GetGraph().GetInitializer() {
		raw := t.GetRawData()
		if len(raw) < ExternalMin {
			continue
		}
		if _, err := w.Write(raw); err != nil {
			return err
		}
		t.RawData = nil
		t.DataLocation = TensorProto_EXTERNAL.Enum()
		t.ExternalData = []*StringStringEntryProto{
			{Key: proto.String("location"), Value: proto.String(location)},
			{Key: proto.String("offset"), Value: proto.String(strconv.FormatInt(off, 10))},
			{Key: proto.String("length"), Value: proto.String(strconv.Itoa(len(raw)))},
		}
		off += int64(len(raw))
	}
	return nil
}

// dataBytes is the bytes of data t holds: its raw_data's, or what its external_data
// says it has in another file.
func dataBytes(t *TensorProto) (int64, error) {
	if t.GetDataLocation() != TensorProto_EXTERNAL {
		return int64(len(t.GetRawData())), nil
	}
	var n int64 = -1
	for _, e := range t.GetExternalData() {
		if e.GetKey() == "length" {
			v, err := strconv.ParseInt(e.GetValue(), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("onnx: initializer %q: external_data length %q: %v", t.GetName(), e.GetValue(), err)
			}
			n = v
		}
	}
	if n < 0 || len(t.GetRawData()) > 0 {
		return 0, fmt.Errorf("onnx: initializer %q is external without a length, or with raw_data too", t.GetName())
	}
	return n, nil
}
