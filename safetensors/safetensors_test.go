package safetensors

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func f32s(vs ...float32) []byte {
	b := make([]byte, 0, 4*len(vs))
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

func tensor(name string, d DType, shape []int64, data []byte) Tensor {
	return Tensor{Info: Info{Name: name, DType: d, Shape: shape}, Data: data}
}

func saveBytes(t *testing.T, tensors []Tensor, meta map[string]string) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "m.safetensors")
	if err := Save(path, tensors, meta); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The expected bytes are upstream's own test vectors (safetensors/src/tensor.rs
// and bindings/python/tests/test_pt_comparison.py), i.e. what save_file writes.
func TestMatchesUpstreamBytes(t *testing.T) {
	le := func(n byte) string { return string([]byte{n, 0, 0, 0, 0, 0, 0, 0}) }
	cases := []struct {
		name    string
		tensors []Tensor
		meta    map[string]string
		want    string
	}{
		{"serialization", []Tensor{tensor("attn.0", F32, []int64{1, 2, 3}, f32s(0, 1, 2, 3, 4, 5))}, nil,
			le(64) + `{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}` + string(f32s(0, 1, 2, 3, 4, 5))},
		{"forced alignment", []Tensor{tensor("attn0", F32, []int64{1, 1, 2, 3}, f32s(0, 1, 2, 3, 4, 5))}, nil,
			le(72) + `{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       ` + string(f32s(0, 1, 2, 3, 4, 5))},
		{"empty", nil, nil, le(8) + `{}      `},
		{"empty with metadata", nil, map[string]string{"framework": "pt"},
			le(40) + `{"__metadata__":{"framework":"pt"}}     `},
		{"safetensors.torch.save", []Tensor{tensor("test", F32, []int64{2, 2}, make([]byte, 16))}, nil,
			le(64) + `{"test":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}    ` + strings.Repeat("\x00", 16)},
		{"F4", []Tensor{tensor("attn.0", F4, []int64{1, 2}, []byte{0})}, nil,
			le(64) + `{"attn.0":{"dtype":"F4","shape":[1,2],"data_offsets":[0,1]}}    ` + "\x00"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := saveBytes(t, c.tensors, c.meta)
			if string(got) != c.want {
				t.Fatalf("bytes differ\n got %q\nwant %q", got, c.want)
			}
			f, err := Parse(got)
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Tensors) != len(c.tensors) || !reflect.DeepEqual(f.Metadata, c.meta) {
				t.Fatalf("parsed %d tensors, metadata %v", len(f.Tensors), f.Metadata)
			}
		})
	}
}

func TestOrderIsDTypeDescendingThenName(t *testing.T) {
	tensors := []Tensor{
		tensor("b", F32, []int64{1}, f32s(1)),
		tensor("mask", BOOL, []int64{3}, []byte{1, 0, 1}),
		tensor("a", F16, []int64{1}, []byte{0, 0x3c}),
		tensor("ids", I64, []int64{1}, make([]byte, 8)),
		tensor("a2", F32, []int64{2}, f32s(2, 3)),
		tensor("h", BF16, []int64{1}, []byte{0x80, 0x3f}),
	}
	got := saveBytes(t, tensors, map[string]string{"format": "pt"})
	hdr := `{"__metadata__":{"format":"pt"},` +
		`"ids":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},` +
		`"a2":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},` +
		`"b":{"dtype":"F32","shape":[1],"data_offsets":[16,20]},` +
		`"h":{"dtype":"BF16","shape":[1],"data_offsets":[20,22]},` +
		`"a":{"dtype":"F16","shape":[1],"data_offsets":[22,24]},` +
		`"mask":{"dtype":"BOOL","shape":[3],"data_offsets":[24,27]}}`
	hdr += strings.Repeat(" ", (8-len(hdr)%8)%8)
	n := binary.LittleEndian.Uint64(got)
	if string(got[8:8+n]) != hdr {
		t.Fatalf("header\n got %s\nwant %s", got[8:8+n], hdr)
	}
	f, err := Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, x := range f.Tensors {
		names = append(names, x.Name)
	}
	if want := []string{"ids", "a2", "b", "h", "a", "mask"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("file order %v, want %v", names, want)
	}
	h, _ := f.Tensor("h")
	if !bytes.Equal(h.Data, []byte{0x80, 0x3f}) {
		t.Fatalf("h data %v", h.Data)
	}
}

func randomTensors(r *rand.Rand, n int) []Tensor {
	var ts []Tensor
	for i := range n {
		d := DType(r.IntN(int(numDTypes)))
		shape := make([]int64, r.IntN(4))
		for j := range shape {
			shape[j] = int64(r.IntN(5))
		}
		if d.Bits() < 8 && len(shape) > 0 {
			shape[len(shape)-1] = 4 // 4 sub-byte elements always fill whole bytes
		}
		size, err := byteSize(d, shape)
		if err != nil {
			continue
		}
		data := make([]byte, size)
		for j := range data {
			data[j] = byte(r.Uint32())
		}
		ts = append(ts, tensor(fmt.Sprintf("layer.%d.%s", i, d), d, shape, data))
	}
	return ts
}

func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	tensors := randomTensors(r, 60)
	tensors = append(tensors, tensor("odd \"name\"\n\t\x01é", U8, []int64{2}, []byte{7, 9}))
	meta := map[string]string{"format": "pt", "note": "quote \" backslash \\ tab \t ctl \x1f ü", "": ""}
	path := filepath.Join(t.TempDir(), "model.safetensors")
	if err := Save(path, tensors, meta); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !reflect.DeepEqual(f.Metadata, meta) {
		t.Fatalf("metadata %q, want %q", f.Metadata, meta)
	}
	if len(f.Tensors) != len(tensors) {
		t.Fatalf("%d tensors, want %d", len(f.Tensors), len(tensors))
	}
	for _, want := range tensors {
		got, err := f.Tensor(want.Name)
		if err != nil {
			t.Fatal(err)
		}
		if got.DType != want.DType || !reflect.DeepEqual(got.Shape, want.Shape) || !bytes.Equal(got.Data, want.Data) {
			t.Fatalf("%q: got %v %v %d bytes, want %v %v %d bytes", want.Name, got.DType, got.Shape, len(got.Data), want.DType, want.Shape, len(want.Data))
		}
	}
	// Every tensor must start at a file offset aligned to its element size,
	// which is what the dtype-descending order and 8-byte header padding buy.
	raw, _ := os.ReadFile(path)
	off := 8 + binary.LittleEndian.Uint64(raw)
	for _, x := range f.Tensors {
		if w := uint64(x.DType.Bits() / 8); w > 0 && off%w != 0 {
			t.Fatalf("%q (%s) starts at unaligned offset %d", x.Name, x.DType, off)
		}
		off += uint64(len(x.Data))
	}
	if _, err := f.Tensor("missing"); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), `"missing"`) {
		t.Fatalf("missing tensor error %v", err)
	}
}

// Files from other writers may list entries in any order, pad differently and
// carry fields we do not know; they are still valid.
func TestParseHandMade(t *testing.T) {
	json := `{"z":{"dtype":"U8","shape":[2],"data_offsets":[0,2],"extra":{"x":[1]}},` +
		"\n" + ` "a" : {"data_offsets":[2,6],"shape":[],"dtype":"F32"}}` + "\n\t "
	buf := binary.LittleEndian.AppendUint64(nil, uint64(len(json)))
	buf = append(buf, json...)
	buf = append(buf, 1, 2)
	buf = append(buf, f32s(1.5)...)
	f, err := Parse(buf)
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata != nil {
		t.Fatalf("metadata %v, want nil", f.Metadata)
	}
	if len(f.Tensors) != 2 || f.Tensors[0].Name != "z" || f.Tensors[1].Name != "a" {
		t.Fatalf("tensors %+v", f.Tensors)
	}
	a, _ := f.Tensor("a")
	if len(a.Shape) != 0 || math.Float32frombits(binary.LittleEndian.Uint32(a.Data)) != 1.5 {
		t.Fatalf("scalar a = %+v", a)
	}
	if cap(f.Tensors[0].Data) != 2 {
		t.Fatal("tensor data must not be appendable into its neighbour")
	}
}

func file(hdr string, data ...byte) []byte {
	buf := binary.LittleEndian.AppendUint64(nil, uint64(len(hdr)))
	return append(append(buf, hdr...), data...)
}

func TestCorrupt(t *testing.T) {
	huge := binary.LittleEndian.AppendUint64(nil, MaxHeaderSize+1)
	cases := []struct {
		name string
		buf  []byte
		want string
	}{
		{"short", []byte{1, 2, 3}, "shorter than the 8-byte header length"},
		{"header too large", append(huge, '{', '}'), "exceeds the limit"},
		{"header past end", binary.LittleEndian.AppendUint64(nil, 100), "runs past the end"},
		{"not utf8", file("{\"\xff\":1}"), "not valid UTF-8"},
		{"not object", file(`[]`), "does not start with '{'"},
		{"bad json", file(`{"a":{"dtype":"F32",}}`), "header at byte"},
		{"trailing garbage", file(`{} x`), "header at byte"},
		{"unknown dtype", file(`{"w":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}`, make([]byte, 16)...), `tensor "w"`},
		{"missing shape", file(`{"w":{"dtype":"F32","data_offsets":[0,4]}}`, 0, 0, 0, 0), "missing shape"},
		{"missing offsets", file(`{"w":{"dtype":"F32","shape":[1]}}`, 0, 0, 0, 0), "missing data_offsets"},
		{"three offsets", file(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}`, 0, 0, 0, 0), "has 3 values"},
		{"negative dim", file(`{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, 0, 0, 0, 0), "non-negative integer"},
		{"float dim", file(`{"w":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}`, 0, 0, 0, 0), "non-negative integer"},
		{"shape mismatch", file(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, 0, 0, 0, 0), `tensor "w": shape [2] of F32 needs 8 bytes`},
		{"gap", file(`{"w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, 0, 0), `tensor "w": data_offsets [1, 2] are not contiguous`},
		{"overlap", file(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}`, 0, 0, 0), `tensor "b": data_offsets [1, 3] are not contiguous`},
		{"reversed", file(`{"w":{"dtype":"U8","shape":[0],"data_offsets":[3,0]}}`, 0, 0, 0), "not contiguous"},
		{"past end", file(`{"w":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}`, 0, 0), `tensor "w": data_offsets [0, 4] run past`},
		{"trailing data", file(`{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, 0, 0), "cover 1 bytes of data but the file holds 2"},
		{"duplicate", file(`{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, 0, 0), `tensor "w": appears twice`},
		{"metadata not string", file(`{"__metadata__":{"k":1}}`), "want a string"},
		{"overflow", file(`{"w":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}}`, make([]byte, 8)...), "overflows"},
		{"F4 odd", file(`{"w":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}`, 0, 0), "not a whole number of bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(c.buf)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %q", err, c.want)
			}
			path := filepath.Join(t.TempDir(), "bad.safetensors")
			os.WriteFile(path, c.buf, 0o644)
			if _, err := Open(path); err == nil || !strings.Contains(err.Error(), path+": ") {
				t.Fatalf("Open error %v does not name %s", err, path)
			}
		})
	}
}

func TestWriterRejectsMisuseAndLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.safetensors")
	infos := []Info{{Name: "b", DType: F32, Shape: []int64{2}}, {Name: "a", DType: I64, Shape: []int64{1}}}
	w, err := Create(path, infos, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := w.Order(); got[0].Name != "a" || got[1].Name != "b" {
		t.Fatalf("order %v", got)
	}
	if err := w.WriteTensor("b", f32s(1, 2)); err == nil || !strings.Contains(err.Error(), `expects "a" next`) {
		t.Fatalf("out of order: %v", err)
	}
	if err := w.WriteTensor("a", make([]byte, 4)); err == nil || !strings.Contains(err.Error(), "has 4 bytes") || !strings.Contains(err.Error(), path) {
		t.Fatalf("short data: %v", err)
	}
	if err := w.WriteTensor("a", make([]byte, 8)); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err == nil || !strings.Contains(err.Error(), `tensor "b": never written`) {
		t.Fatalf("commit with a missing tensor: %v", err)
	}
	w.Close()
	if es, _ := os.ReadDir(dir); len(es) != 0 {
		t.Fatalf("left behind %v", es)
	}

	for _, bad := range [][]Info{
		{{Name: "x", DType: U8, Shape: []int64{1}}, {Name: "x", DType: U8, Shape: []int64{1}}},
		{{Name: "__metadata__", DType: U8}},
		{{Name: "x", DType: U8, Shape: []int64{-2}}},
		{{Name: "x", DType: numDTypes}},
	} {
		if _, err := Create(path, bad, nil); err == nil || !strings.Contains(err.Error(), `tensor "`) {
			t.Fatalf("%v: error %v", bad, err)
		}
	}
	if es, _ := os.ReadDir(dir); len(es) != 0 {
		t.Fatalf("left behind %v", es)
	}
}

func TestSaveReplacesAtomically(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.safetensors")
	old := []Tensor{tensor("w", U8, []int64{1}, []byte{1})}
	if err := Save(path, old, nil); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	// A failing save must leave the previous file untouched.
	if err := Save(path, []Tensor{tensor("w", U8, []int64{2}, []byte{1})}, nil); err == nil {
		t.Fatal("saved a tensor whose data does not match its shape")
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("failed save changed the file")
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	// Replacing the file while it is mapped must not disturb the mapping.
	if err := Save(path, []Tensor{tensor("w", U8, []int64{1}, []byte{9})}, nil); err != nil {
		t.Fatal(err)
	}
	if w, _ := f.Tensor("w"); w.Data[0] != 1 {
		t.Fatalf("mapped data changed to %d", w.Data[0])
	}
	f.Close()
}

func FuzzParse(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 4 {
		var buf bytes.Buffer
		ts := randomTensors(r, i*3)
		infos := make([]Info, len(ts))
		for j := range ts {
			infos[j] = ts[j].Info
		}
		e, err := newEncoder(&buf, infos, map[string]string{"k": "v"})
		if err != nil {
			f.Fatal(err)
		}
		byName := map[string][]byte{}
		for _, t := range ts {
			byName[t.Name] = t.Data
		}
		for _, info := range e.order {
			e.writeTensor(info.Name, byName[info.Name])
		}
		f.Add(buf.Bytes())
	}
	f.Add(file(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, 5))
	f.Add(file(`{"__metadata__":{"a":"b"},"x":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}}`, 5))
	f.Fuzz(func(t *testing.T, buf []byte) {
		p, err := Parse(buf)
		if err != nil {
			return
		}
		// Whatever parses must re-encode to a file with the same content.
		infos := make([]Info, len(p.Tensors))
		byName := map[string][]byte{}
		var total int
		for i, x := range p.Tensors {
			infos[i] = x.Info
			byName[x.Name] = x.Data
			total += len(x.Data)
		}
		if total > len(buf) {
			t.Fatalf("tensors claim %d bytes of a %d-byte file", total, len(buf))
		}
		var out bytes.Buffer
		e, err := newEncoder(&out, infos, p.Metadata)
		if err != nil {
			t.Fatalf("parsed file does not re-encode: %v", err)
		}
		for _, info := range e.order {
			if err := e.writeTensor(info.Name, byName[info.Name]); err != nil {
				t.Fatal(err)
			}
		}
		q, err := Parse(out.Bytes())
		if err != nil {
			t.Fatalf("re-encoded file does not parse: %v", err)
		}
		if !reflect.DeepEqual(p.Metadata, q.Metadata) || len(p.Tensors) != len(q.Tensors) {
			t.Fatal("re-encoded metadata or tensor count differ")
		}
		for _, x := range q.Tensors {
			y, err := p.Tensor(x.Name)
			if err != nil || y.DType != x.DType || !reflect.DeepEqual(y.Shape, x.Shape) || !bytes.Equal(y.Data, x.Data) {
				t.Fatalf("tensor %q differs after re-encoding", x.Name)
			}
		}
	})
}
