package model

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/bertnode/bertnode/hf"
	"github.com/bertnode/bertnode/safetensors"
)

// flatCopy is a snapshot of the model's weights.
func flatCopy(m *Model) []float32 { return slices.Clone(m.Params.FlatSlice()) }

// sameWeights fails the test unless m's weights are want, bit for bit.
func sameWeights(t *testing.T, m *Model, want []float32, what string) {
	t.Helper()
	if i := firstDiff(m.Params.FlatSlice(), want); i >= 0 {
		t.Fatalf("%s: weights differ first at flat index %d", what, i)
	}
	runtime.KeepAlive(m) // FlatSlice is a view of m's memory
}

// f32Tensors are m's parameters as float32 safetensors, renamed by rename (which drops
// a tensor by returning "").
func f32Tensors(m *Model, rename func(string) string) []safetensors.Tensor {
	flat := m.Params.FlatSlice()
	var out []safetensors.Tensor
	for _, p := range m.Params.List() {
		name := rename(p.Name)
		if name == "" {
			continue
		}
		data := flat[p.Offset : p.Offset+p.Numel]
		out = append(out, safetensors.Tensor{
			Info: safetensors.Info{Name: name, DType: safetensors.F32, Shape: p.Shape},
			Data: unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(data))), 4*len(data)),
		})
	}
	return out
}

func writeSafetensors(t *testing.T, tensors []safetensors.Tensor) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), SafetensorsFile)
	if err := safetensors.Save(path, tensors, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	return path
}

// tensorNames are the names of a safetensors file's tensors, sorted.
func tensorNames(t *testing.T, path string) []string {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	for _, tn := range f.Tensors {
		names = append(names, tn.Name)
	}
	slices.Sort(names)
	return names
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Save then LoadWeights restores every weight bit for bit, from model.safetensors and
// from pytorch_model.bin, and saving the loaded model writes the same bytes again.
func TestSaveLoadRoundTrip(t *testing.T) {
	for _, tc := range taskCases {
		t.Run(tc.name, func(t *testing.T) {
			lockThread(t)
			cfg := smallConfig(0.1)
			src := newModel(t, cfg, tc.opts, 1)
			want := flatCopy(src)
			labels := make([]string, src.Opts.NumLabels)
			for i := range labels {
				labels[i] = string(rune('a' + i))
			}
			dir := t.TempDir()
			if err := src.Save(dir, labels, SaveOptions{Pytorch: true}); err != nil {
				t.Fatal(err)
			}
			saved, err := hf.ReadConfig(filepath.Join(dir, ConfigFile))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(saved.Labels(), labels) || !slices.Equal(saved.Architectures, []string{src.architecture()}) {
				t.Fatalf("config.json has labels %v and architectures %v", saved.Labels(), saved.Architectures)
			}
			for _, file := range []string{SafetensorsFile, PytorchFile} {
				dst := newModel(t, cfg, tc.opts, 2)
				if firstDiff(dst.Params.FlatSlice(), want) < 0 {
					t.Fatal("two seeds gave the same weights")
				}
				rep, err := dst.LoadWeights(filepath.Join(dir, file))
				if err != nil {
					t.Fatal(err)
				}
				if rep.Loaded != len(dst.Params.List()) || len(rep.Initialized)+len(rep.Ignored) != 0 {
					t.Fatalf("%s: %+v, want all %d parameters loaded", file, rep, len(dst.Params.List()))
				}
				sameWeights(t, dst, want, file)
				again := t.TempDir()
				if err := dst.Save(again, labels, SaveOptions{Pytorch: true}); err != nil {
					t.Fatal(err)
				}
				for _, f := range []string{SafetensorsFile, ConfigFile, PytorchFile} {
					if !bytes.Equal(readFile(t, filepath.Join(dir, f)), readFile(t, filepath.Join(again, f))) {
						t.Fatalf("loaded from %s and saved again, %s differs", file, f)
					}
				}
			}
		})
	}
}

// Checkpoints of a bare BertModel (no "bert." prefix) with TF-era gamma/beta LayerNorm
// names load, and their pretraining heads and position_ids buffer are ignored.
func TestLoadLegacyNames(t *testing.T) {
	lockThread(t)
	cfg := smallConfig(0.1)
	opts := Options{Task: Classify, NumLabels: 2}
	src := newModel(t, cfg, opts, 1)
	tensors := f32Tensors(src, func(name string) string {
		name = strings.TrimPrefix(name, "bert.")
		name = strings.Replace(name, "LayerNorm.weight", "LayerNorm.gamma", 1)
		return strings.Replace(name, "LayerNorm.bias", "LayerNorm.beta", 1)
	})
	posIDs := make([]byte, 8*cfg.MaxPositionEmbeddings)
	for i := range cfg.MaxPositionEmbeddings {
		binary.LittleEndian.PutUint64(posIDs[8*i:], uint64(i))
	}
	tensors = append(tensors,
		safetensors.Tensor{Info: safetensors.Info{Name: "embeddings.position_ids", DType: safetensors.I64, Shape: []int64{1, int64(cfg.MaxPositionEmbeddings)}}, Data: posIDs},
		safetensors.Tensor{Info: safetensors.Info{Name: "cls.predictions.bias", DType: safetensors.F32, Shape: []int64{2}}, Data: make([]byte, 8)})
	path := writeSafetensors(t, tensors)

	dst := newModel(t, cfg, opts, 2)
	rep, err := dst.LoadWeights(path)
	if err != nil {
		t.Fatal(err)
	}
	sameWeights(t, dst, flatCopy(src), "bare gamma/beta names")
	if want := []string{"cls.predictions.bias", "embeddings.position_ids"}; !slices.Equal(rep.Ignored, want) {
		t.Fatalf("ignored %v, want %v", rep.Ignored, want)
	}
}

// halfBits is a random IEEE half or bfloat16 bit pattern that is a finite number.
func halfBits(r *rand.Rand, bf bool) uint16 {
	h := uint16(r.Uint32())
	if bf && (h>>7)&0xff == 0xff || !bf && (h>>10)&0x1f == 0x1f {
		h &^= 0x4000 // clear the top exponent bit: no Inf or NaN
	}
	return h
}

// halfValue is what a half's bits mean, by the IEEE 754 formula rather than bit moves.
func halfValue(h uint16) float32 {
	e, f := int(h>>10)&0x1f, float64(h&0x3ff)
	v := math.Ldexp(f, -24) // subnormal
	if e > 0 {
		v = math.Ldexp(1024+f, e-25)
	}
	if h&0x8000 != 0 {
		v = -v
	}
	return float32(v)
}

// F16 and BF16 checkpoints load exactly: each value widened to float32.
func TestLoadHalfPrecision(t *testing.T) {
	lockThread(t)
	cfg := smallConfig(0.1)
	opts := Options{Task: NER, NumLabels: 3}
	for _, dt := range []safetensors.DType{safetensors.F16, safetensors.BF16} {
		t.Run(dt.String(), func(t *testing.T) {
			lockThread(t)
			m := newModel(t, cfg, opts, 1)
			r := rand.New(rand.NewPCG(7, uint64(dt)))
			want := make([]float32, m.Params.Total)
			var tensors []safetensors.Tensor
			for _, p := range m.Params.List() {
				data := make([]byte, 2*p.Numel)
				for i := range p.Numel {
					h := halfBits(r, dt == safetensors.BF16)
					binary.LittleEndian.PutUint16(data[2*i:], h)
					if dt == safetensors.BF16 {
						want[p.Offset+i] = math.Float32frombits(uint32(h) << 16)
					} else {
						want[p.Offset+i] = halfValue(h)
					}
				}
				tensors = append(tensors, safetensors.Tensor{Info: safetensors.Info{Name: p.Name, DType: dt, Shape: p.Shape}, Data: data})
			}
			if _, err := m.LoadWeights(writeSafetensors(t, tensors)); err != nil {
				t.Fatal(err)
			}
			sameWeights(t, m, want, dt.String())
		})
	}
}

func TestHalfToFloatSpecials(t *testing.T) {
	for _, c := range []struct {
		h    uint16
		bf   bool
		want float32
	}{
		{0x3c00, false, 1}, {0xc000, false, -2}, {0x7bff, false, 65504}, {0x0001, false, 0x1p-24},
		{0x03ff, false, 1023 * 0x1p-24}, {0x0400, false, 0x1p-14}, {0x8000, false, float32(math.Copysign(0, -1))},
		{0x7c00, false, float32(math.Inf(1))}, {0xfc00, false, float32(math.Inf(-1))},
		{0x3f80, true, 1}, {0xc0a0, true, -5}, {0x0001, true, math.Float32frombits(1 << 16)},
	} {
		if got := halfToFloat(c.h, c.bf); math.Float32bits(got) != math.Float32bits(c.want) {
			t.Errorf("halfToFloat(%#04x, bf16=%v) = %g, want %g", c.h, c.bf, got, c.want)
		}
	}
	if got := halfToFloat(0x7e00, false); !math.IsNaN(float64(got)) {
		t.Errorf("halfToFloat(0x7e00) = %g, want NaN", got)
	}
}

// A checkpoint that does not fit is refused as a whole with every problem listed, and
// leaves the weights as they were.
func TestLoadMismatch(t *testing.T) {
	lockThread(t)
	cfg := smallConfig(0.1)
	opts := Options{Task: Classify, NumLabels: 2}
	src := newModel(t, cfg, opts, 1)
	const (
		missing = "bert.encoder.layer.1.attention.self.key.weight"
		bad     = "bert.embeddings.word_embeddings.weight"
		extra   = "bert.encoder.layer.2.output.dense.weight"
	)
	tensors := f32Tensors(src, func(name string) string {
		if name == missing {
			return ""
		}
		return name
	})
	for i := range tensors {
		if tensors[i].Name == bad { // one vocabulary row short
			tensors[i].Shape = []int64{int64(cfg.VocabSize - 1), int64(cfg.HiddenSize)}
			tensors[i].Data = tensors[i].Data[:4*(cfg.VocabSize-1)*cfg.HiddenSize]
		}
	}
	tensors = append(tensors,
		safetensors.Tensor{Info: safetensors.Info{Name: extra, DType: safetensors.F32, Shape: []int64{1}}, Data: make([]byte, 4)},
		safetensors.Tensor{Info: safetensors.Info{Name: "cls.seq_relationship.bias", DType: safetensors.F32, Shape: []int64{2}}, Data: make([]byte, 8)})
	path := writeSafetensors(t, tensors)

	dst := newModel(t, cfg, opts, 2)
	before := flatCopy(dst)
	_, err := dst.LoadWeights(path)
	var mis *MismatchError
	if !errors.As(err, &mis) {
		t.Fatalf("got %v, want a *MismatchError", err)
	}
	wantShape := bad + ": checkpoint [99 32], model [100 32]"
	if mis.File != path || !slices.Equal(mis.Missing, []string{missing}) || !slices.Equal(mis.Unexpected, []string{extra}) ||
		!slices.Equal(mis.Shapes, []string{wantShape}) {
		t.Fatalf("got %+v, want missing %s, unexpected %s, shape %q", mis, missing, extra, wantShape)
	}
	for _, s := range []string{path, missing, extra, wantShape} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("message %q does not mention %q", err, s)
		}
	}
	sameWeights(t, dst, before, "after a refused load")
}

// A pretraining checkpoint (encoder and pooler, no task head) loads, reporting the head
// as freshly initialised and leaving its initial weights in place.
func TestLoadWithoutHead(t *testing.T) {
	lockThread(t)
	cfg := smallConfig(0.1)
	opts := Options{Task: Classify, NumLabels: 3, HeadHidden: 8}
	src := newModel(t, cfg, opts, 1)
	path := writeSafetensors(t, f32Tensors(src, func(name string) string {
		if !strings.HasPrefix(name, "bert.") || strings.HasPrefix(name, "bert.pooler.") {
			return ""
		}
		return name
	}))
	dst := newModel(t, cfg, opts, 2)
	want := flatCopy(dst)
	rep, err := dst.LoadWeights(path)
	if err != nil {
		t.Fatal(err)
	}
	fresh := []string{"bert.pooler.dense.bias", "bert.pooler.dense.weight", "classifier.bias", "classifier.weight", "head.dense.bias", "head.dense.weight"}
	if !slices.Equal(rep.Initialized, fresh) {
		t.Fatalf("initialized %v, want %v", rep.Initialized, fresh)
	}
	srcFlat := src.Params.FlatSlice()
	for _, p := range dst.Params.List() {
		if !slices.Contains(fresh, p.Name) {
			copy(want[p.Offset:p.Offset+p.Numel], srcFlat[p.Offset:p.Offset+p.Numel])
		}
	}
	sameWeights(t, dst, want, "encoder from the checkpoint, head as initialised")
}

// torchTensor is one entry of a state dict for torchSave: float32 or int64 data.
type torchTensor struct {
	name  string
	shape []int64
	data  any
}

// torchSave writes tensors as Python's torch.save(model.state_dict()) does: a zip whose
// archive/data.pkl (pickle protocol 2) builds an OrderedDict of _rebuild_tensor_v2
// calls, each over its own storage archive/data/<key>.
func torchSave(t *testing.T, path string, tensors []torchTensor) {
	t.Helper()
	var p bytes.Buffer
	str := func(s string) {
		p.WriteByte('X')
		binary.Write(&p, binary.LittleEndian, uint32(len(s)))
		p.WriteString(s)
	}
	integer := func(v int64) {
		p.WriteByte('J')
		binary.Write(&p, binary.LittleEndian, int32(v))
	}
	tuple := func(vs []int64) {
		p.WriteByte('(')
		for _, v := range vs {
			integer(v)
		}
		p.WriteByte('t')
	}
	orderedDict := "ccollections\nOrderedDict\n)R"
	p.WriteString("\x80\x02" + orderedDict + "(")
	storages := map[string][]byte{}
	for i, tt := range tensors {
		key := strconv.Itoa(i)
		var class string
		var raw bytes.Buffer
		switch d := tt.data.(type) {
		case []float32:
			class = "FloatStorage"
			binary.Write(&raw, binary.LittleEndian, d)
		case []int64:
			class = "LongStorage"
			binary.Write(&raw, binary.LittleEndian, d)
		}
		storages[key] = raw.Bytes()
		stride := make([]int64, len(tt.shape))
		n := int64(1)
		for j := len(tt.shape) - 1; j >= 0; j-- {
			stride[j] = n
			n *= tt.shape[j]
		}
		str(tt.name)
		p.WriteString("ctorch._utils\n_rebuild_tensor_v2\n((")
		str("storage")
		p.WriteString("ctorch\n" + class + "\n")
		str(key)
		str("cpu")
		integer(n)
		p.WriteString("tQ")
		integer(0)
		tuple(tt.shape)
		tuple(stride)
		p.WriteString("\x89" + orderedDict + "tR")
	}
	p.WriteString("u.")

	records := make([][]byte, len(tensors))
	for i := range tensors {
		records[i] = storages[strconv.Itoa(i)]
	}
	writeTorchZip(t, path, p.Bytes(), records)
}

// writeTorchZip writes the zip torch.save makes: archive/data.pkl, the storages as
// archive/data/0, 1, ..., and the format's version.
func writeTorchZip(t *testing.T, path string, pkl []byte, storages [][]byte) {
	t.Helper()
	var b bytes.Buffer
	z := zip.NewWriter(&b)
	put := func(name string, data []byte) {
		w, err := z.CreateHeader(&zip.FileHeader{Name: "archive/" + name, Method: zip.Store})
		if err == nil {
			_, err = w.Write(data)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	put("data.pkl", pkl)
	for i, s := range storages {
		put("data/"+strconv.Itoa(i), s)
	}
	put("version", []byte("3\n"))
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A pytorch_model.bin as Python's torch.save writes it (an OrderedDict, one storage per
// tensor, the int64 position_ids buffer among them) loads bit for bit.
func TestLoadTorchSave(t *testing.T) {
	lockThread(t)
	cfg := smallConfig(0.1)
	opts := Options{Task: QA}
	src := newModel(t, cfg, opts, 1)
	flat := src.Params.FlatSlice()
	var tensors []torchTensor
	for _, p := range src.Params.List() {
		tensors = append(tensors, torchTensor{p.Name, p.Shape, flat[p.Offset : p.Offset+p.Numel]})
	}
	pos := make([]int64, cfg.MaxPositionEmbeddings)
	for i := range pos {
		pos[i] = int64(i)
	}
	tensors = append(tensors, torchTensor{"bert.embeddings.position_ids", []int64{1, int64(len(pos))}, pos})
	path := filepath.Join(t.TempDir(), PytorchFile)
	torchSave(t, path, tensors)

	dst := newModel(t, cfg, opts, 2)
	rep, err := dst.LoadWeights(path)
	if err != nil {
		t.Fatal(err)
	}
	sameWeights(t, dst, flatCopy(src), "torch.save file")
	if !slices.Equal(rep.Ignored, []string{"bert.embeddings.position_ids"}) {
		t.Fatalf("ignored %v", rep.Ignored)
	}
}
