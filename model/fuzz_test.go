package model

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sugarme/gotch/pickle"
)

// fuzzStorages are the records of the files FuzzReadPickle reads: float32 values
// that say which storage and element they are, 1000.25+i and 2000.25+i.
var fuzzStorages = [][]float32{make([]float32, 12), make([]float32, 8)}

func init() {
	for k, s := range fuzzStorages {
		for i := range s {
			s[i] = float32(1000*(k+1)) + 0.25 + float32(i)
		}
	}
}

// fuzzTorchFile writes data.pkl and fuzzStorages as the records of a torch.save file.
func fuzzTorchFile(t *testing.T, pkl []byte) string {
	storages := make([][]byte, len(fuzzStorages))
	for k, s := range fuzzStorages {
		var raw bytes.Buffer
		binary.Write(&raw, binary.LittleEndian, s)
		storages[k] = raw.Bytes()
	}
	path := filepath.Join(t.TempDir(), PytorchFile)
	writeTorchZip(t, path, pkl, storages)
	return path
}

// FuzzReadPickle reads torch.save files whose data.pkl is the fuzz input and whose
// storages are fuzzStorages. readPickle fails with an error that names the file, or
// every tensor holds as many values as its shape says; a tensor of a float storage
// holds its values at an offset plus non-negative strides, all inside the storage.
func FuzzReadPickle(f *testing.F) {
	f.Add(statePickle([]stateTensor{{"a", []int64{3, 4}, fuzzStorages[0]}, {"b", []int64{8}, fuzzStorages[1]}}))
	f.Add(statePickle([]stateTensor{{"a", []int64{2, 1, 6}, fuzzStorages[0]}, {"b", []int64{2, 2, 2}, fuzzStorages[1]}}))
	f.Add(statePickle([]stateTensor{{"a", []int64{}, fuzzStorages[0][:1]}}))
	f.Fuzz(func(t *testing.T, pkl []byte) {
		lockThread(t)
		path := fuzzTorchFile(t, pkl)
		tensors, err := readPickle(path)
		if err != nil {
			if !strings.HasPrefix(err.Error(), path+": ") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		for name, ht := range tensors {
			n := numel(ht.shape)
			if int64(len(ht.data)) != max(n, 0) {
				t.Fatalf("%s: %d values for shape %v", name, len(ht.data), ht.shape)
			}
			if n > 0 {
				checkStrided(t, name, ht)
			}
		}
	})
}

// checkStrided checks that a tensor read from one of fuzzStorages as float32 holds its
// elements at base + sum(index*stride), strides from the differences along each axis.
func checkStrided(t *testing.T, name string, ht hostTensor) {
	storage := int(ht.data[0]/1000) - 1
	if storage < 0 || storage >= len(fuzzStorages) || ht.data[0] != float32(math.Floor(float64(ht.data[0])))+0.25 {
		return // not a float32 storage: its bytes read as another type
	}
	elem := func(v float32) int { return int(v - fuzzStorages[storage][0]) }
	strides := make([]int, len(ht.shape))
	step := 1
	for k := len(ht.shape) - 1; k >= 0; k-- {
		if ht.shape[k] > 1 {
			strides[k] = elem(ht.data[step]) - elem(ht.data[0])
		}
		step *= int(ht.shape[k])
	}
	idx := make([]int64, len(ht.shape))
	for i, v := range ht.data {
		want := elem(ht.data[0])
		for k, x := range idx {
			want += int(x) * strides[k]
		}
		if want < 0 || want >= len(fuzzStorages[storage]) || v != fuzzStorages[storage][want] {
			t.Fatalf("%s: value %d is %v, want element %d of storage %d (strides %v)", name, i, v, want, storage, strides)
		}
		for k := len(idx) - 1; k >= 0; k-- {
			if idx[k]++; idx[k] < ht.shape[k] {
				break
			}
			idx[k] = 0
		}
	}
}

// A tensor's size, stride and offset must address elements of its storage (12 here)
// before libtorch sees them: as_strided's failure would exit the process.
func TestStridedNumel(t *testing.T) {
	for _, c := range []struct {
		size, stride []int64
		offset, want int64
		err          string
	}{
		{[]int64{3, 4}, []int64{4, 1}, 0, 12, ""},
		{[]int64{}, []int64{}, 11, 1, ""},
		{[]int64{2, 0}, []int64{1, 1}, 50, 0, ""},
		{[]int64{3, 4}, []int64{4, 1}, 1, 0, "reach past its storage's 12 elements"},
		{[]int64{12}, []int64{2}, 0, 0, "reach past"},
		{[]int64{1}, []int64{1}, 12, 0, "reach past"},
		{[]int64{2}, []int64{1 << 62}, 0, 0, "reach past"},
		{[]int64{1 << 40, 1 << 40}, []int64{0, 0}, 0, 0, "more elements than its storage's 12"},
		{[]int64{-1}, []int64{1}, 0, 0, "negative"},
		{[]int64{2}, []int64{-1}, 0, 0, "negative"},
		{[]int64{2}, []int64{1}, -1, 0, "negative"},
		{[]int64{2, 2}, []int64{1}, 0, 0, "differ in length"},
	} {
		st := &pickle.StorageTensor{Source: &pickle.FloatStorage{Data: make([]float32, 12)}, Size: c.size, Stride: c.stride, StorageOffset: c.offset}
		n, err := stridedNumel(st)
		if c.err == "" && (err != nil || n != c.want) || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("size %v stride %v offset %d: %d, %v; want %d, %q", c.size, c.stride, c.offset, n, err, c.want, c.err)
		}
	}
}

// What gotch's unpickler does not implement, or trips on, is the file's error, not a
// panic or an allocation the file cannot fill: the legacy format's tar archives, a
// length past the int range, a string, a frame or a storage larger than a checkpoint
// holds, a record larger than the file.
func TestReadPickleUnreadable(t *testing.T) {
	var tarball bytes.Buffer
	tw := tar.NewWriter(&tarball)
	if err := tw.WriteHeader(&tar.Header{Name: "storages", Mode: 0o644, Size: 1}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte{0})
	tw.Close()
	legacy := filepath.Join(t.TempDir(), PytorchFile)
	if err := os.WriteFile(legacy, tarball.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	// The same storage's record claiming 2^40 bytes (stored: 48 of them in the file).
	huge := bytes.Replace(statePickle([]stateTensor{{"a", []int64{3, 4}, fuzzStorages[0]}}),
		[]byte("K\x0ct"), []byte("\x8a\x06\x00\x00\x00\x00\x00\x01t"), 1) // numel 12, then TUPLE, becomes LONG1 2^40
	var forged bytes.Buffer
	z := zip.NewWriter(&forged)
	for _, r := range []struct {
		name string
		data []byte
		size uint64
	}{{"data.pkl", huge, uint64(len(huge))}, {"data/0", make([]byte, 48), 1 << 40}} {
		w, err := z.CreateRaw(&zip.FileHeader{Name: "archive/" + r.name, Method: zip.Store, CompressedSize64: uint64(len(r.data)), UncompressedSize64: r.size})
		if err == nil {
			_, err = w.Write(r.data)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	z.Close()
	claims := filepath.Join(t.TempDir(), PytorchFile)
	if err := os.WriteFile(claims, forged.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, want string }{
		{legacy, "legacy load from tar not implemented"},
		{claims, "record archive/data/0 claims 1099511627776 bytes (48 compressed)"},
		// a FRAME of 2^63 bytes, past the int range (it was a makeslice panic)
		{fuzzTorchFile(t, []byte("\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x80.")), "a frame of -9223372036854775808 bytes"},
		// a string of 3.9 GB, which gotch zeroed before reading it (seconds, and out of
		// memory in a fuzzing run)
		{fuzzTorchFile(t, []byte("\x80\x02X\x01\x00\x00\xe8.")), "an object of 3892314113 bytes"},
		// a FRAME of 1 GiB
		{fuzzTorchFile(t, []byte("\x80\x04\x95\x00\x00\x00\x40\x00\x00\x00\x00.")), "a frame of 1073741824 bytes"},
		// a storage of 2^40 floats in a record of 48 bytes, which gotch allocated before
		// reading it
		{fuzzTorchFile(t, huge), "storage 0: 1099511627776 elements in a record of 48 bytes"},
	} {
		_, err := readPickle(c.path)
		if err == nil || !strings.HasPrefix(err.Error(), c.path+": ") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("readPickle: %v; want an error naming %s and saying %q", err, c.path, c.want)
		}
	}
}
