package model

import (
	"archive/zip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strings"
	"unsafe"

	"github.com/bertnode/bertnode/hf"
	"github.com/bertnode/bertnode/internal/atomicfile"
	"github.com/bertnode/bertnode/safetensors"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/pickle"
	"github.com/sugarme/gotch/ts"
)

// Hugging Face file names.
const (
	ConfigFile      = "config.json"
	SafetensorsFile = "model.safetensors"
	PytorchFile     = "pytorch_model.bin"
)

// LoadReport says how a checkpoint's tensors matched the model's parameters.
type LoadReport struct {
	Loaded int
	// Initialized are model parameters the checkpoint lacks that may start fresh: the
	// task head (and the pooler), as when fine-tuning from a pretraining checkpoint.
	Initialized []string
	// Ignored are checkpoint tensors with no use here: pretraining heads (cls.*,
	// lm_head.*, ...), buffers (position_ids) and a pooler the head does not use.
	Ignored []string
}

// MismatchError lists everything that kept a checkpoint from loading.
type MismatchError struct {
	File       string
	Missing    []string // encoder parameters the checkpoint lacks
	Unexpected []string // checkpoint tensors that match nothing
	Shapes     []string // "name: checkpoint [a b], model [c d]"
}

func (e *MismatchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s does not fit the model:", e.File)
	for _, l := range []struct {
		what  string
		names []string
	}{{"missing", e.Missing}, {"unexpected", e.Unexpected}, {"wrong shape", e.Shapes}} {
		if len(l.names) > 0 {
			fmt.Fprintf(&b, "\n  %s (%d): %s", l.what, len(l.names), strings.Join(l.names, ", "))
		}
	}
	return b.String()
}

// hostTensor is a checkpoint tensor's float32 data on the host.
type hostTensor struct {
	shape []int64
	data  []float32
}

// canonicalName maps the names checkpoints use onto ours: a bare base model's names
// gain its prefix ("bert.", "roberta.", ...), and TF-era LayerNorm gamma/beta become
// weight/bias.
func canonicalName(name, base string, has func(string) bool) string {
	if strings.HasSuffix(name, ".gamma") {
		name = strings.TrimSuffix(name, ".gamma") + ".weight"
	} else if strings.HasSuffix(name, ".beta") {
		name = strings.TrimSuffix(name, ".beta") + ".bias"
	}
	if !has(name) && has(base+name) {
		return base + name
	}
	return name
}

// LoadWeights copies a checkpoint's tensors (model.safetensors or pytorch_model.bin)
// into the parameters. Nothing is copied unless everything fits.
func (m *Model) LoadWeights(path string) (*LoadReport, error) {
	ignorable := func(name string) bool { return m.fam.ignorable(name, m.Opts.Task) || m.embedIgnorable(name) }
	tensors, err := readTensors(path, ignorable)
	if err != nil {
		return nil, err
	}
	ps := m.Params
	has := func(n string) bool { return ps.Get(n) != nil }
	rep := &LoadReport{}
	mis := &MismatchError{File: path}
	found := map[string]hostTensor{}
	misshaped := map[string]bool{}
	names := make([]string, 0, len(tensors))
	for n := range tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, raw := range names {
		t := tensors[raw]
		name := canonicalName(raw, m.fam.base, has)
		if m.head.mlm != nil {
			name = m.fam.mlm.canonical(name)
		}
		p := ps.Get(name)
		switch {
		case p == nil && ignorable(name):
			rep.Ignored = append(rep.Ignored, raw)
		case p == nil:
			mis.Unexpected = append(mis.Unexpected, raw)
		case !equalShape(p.Shape, t.shape):
			mis.Shapes = append(mis.Shapes, fmt.Sprintf("%s: checkpoint %v, model %v", raw, t.shape, p.Shape))
			misshaped[name] = true
		default:
			found[name] = t
		}
	}
	for _, p := range ps.List() {
		if _, ok := found[p.Name]; ok || misshaped[p.Name] {
			continue
		}
		if m.fam.freshOK(p.Name) {
			rep.Initialized = append(rep.Initialized, p.Name)
		} else {
			mis.Missing = append(mis.Missing, p.Name)
		}
	}
	sort.Strings(rep.Initialized)
	if len(mis.Missing)+len(mis.Unexpected)+len(mis.Shapes) > 0 {
		return nil, mis
	}
	m.copyIn(found)
	rep.Loaded = len(found)
	return rep, nil
}

// copyIn copies checkpoint tensors into the parameters of their names.
func (m *Model) copyIn(found map[string]hostTensor) {
	ps := m.Params
	noGrad(func() {
		for name, t := range found {
			p := ps.Get(name)
			src := ts.MustOfSlice(t.data).MustView(p.Shape, true).MustTo(ps.device, true)
			p.T.Copy_(src)
			src.MustDrop()
		}
	})
}

func equalShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// readTensors reads every tensor of a checkpoint file as float32.
func readTensors(path string, ignorable func(string) bool) (map[string]hostTensor, error) {
	if strings.HasSuffix(path, ".safetensors") {
		f, err := safetensors.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		out := make(map[string]hostTensor, len(f.Tensors))
		for _, t := range f.Tensors {
			data, err := toFloat32(t)
			if err != nil && ignorable(t.Name) { // e.g. the int64 position_ids buffer
				out[t.Name] = hostTensor{shape: t.Shape}
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("%s: tensor %s: %w", path, t.Name, err)
			}
			out[t.Name] = hostTensor{shape: t.Shape, data: data}
		}
		return out, nil
	}
	return readPickle(path)
}

// readPickle reads a pytorch_model.bin: torch.save's OrderedDict, or the dict libtorch's
// pickle_save writes (ours), which it wraps in torch.jit._pickle.restore_type_tag, a
// class gotch's pickle.Decode does not know.
func readPickle(path string) (map[string]hostTensor, error) {
	if err := checkRecords(path); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	res, err := unpickle(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var entries []pickle.DictEntry
	switch d := res.(type) {
	case *pickle.Dict:
		for _, e := range *d {
			entries = append(entries, *e)
		}
	case *pickle.OrderedDict:
		for e := d.List.Front(); e != nil; e = e.Next() {
			oe := e.Value.(*pickle.OrderedDictEntry)
			entries = append(entries, pickle.DictEntry{Key: oe.Key, Value: oe.Value})
		}
	default:
		return nil, fmt.Errorf("%s: holds a %T, not a dict of tensors", path, res)
	}
	out := make(map[string]hostTensor, len(entries))
	for _, e := range entries {
		name, ok := e.Key.(string)
		st, isTensor := e.Value.(*pickle.StorageTensor)
		if !ok || !isTensor {
			return nil, fmt.Errorf("%s: entry %v is a %T, not a named tensor", path, e.Key, e.Value)
		}
		n, err := stridedNumel(st)
		if err != nil {
			return nil, fmt.Errorf("%s: tensor %s: %w", path, name, err)
		}
		ht := hostTensor{shape: st.Size}
		if n > 0 {
			size, stride := st.Size, st.Stride
			if len(size) == 0 { // a scalar: gotch's as_strided indexes size[0]
				size, stride = []int64{1}, []int64{1}
			}
			t := ts.MustOfSlice(st.Source.GetData(), ts.WithDType(st.Source.DType())).
				MustAsStrided(size, stride, []int64{st.StorageOffset}, true).
				MustTotype(gotch.Float, true).MustContiguous(true)
			ht.data = make([]float32, n)
			t.MustCopyData(ht.data, uint(n))
			t.MustDrop()
		}
		out[name] = ht
	}
	return out, nil
}

// checkRecords refuses a torch.save zip whose records claim more bytes than the file
// can hold: gotch allocates each storage before reading its record, at a size that the
// adapted loader bounds by the record's claimed size. A file that is no zip is left to
// gotch (the legacy format).
func checkRecords(path string) error {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return nil
	}
	defer zr.Close()
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	for _, f := range zr.File {
		ratio := uint64(1) // stored, as torch.save writes its records
		if f.Method != zip.Store {
			ratio = 1032 // deflate's most
		}
		if f.CompressedSize64 > uint64(fi.Size()) || f.UncompressedSize64/ratio > f.CompressedSize64 {
			return fmt.Errorf("record %s claims %d bytes (%d compressed) in a file of %d", f.Name, f.UncompressedSize64, f.CompressedSize64, fi.Size())
		}
	}
	return nil
}

// unpickle is torch.save's object in path. gotch's unpickler panics on what it does
// not implement (the legacy tar format, storage views) and on some malformed files
// (a negative length): those panics are the file's errors.
func unpickle(path string) (res any, err error) {
	defer func() {
		if p := recover(); p != nil {
			res, err = nil, fmt.Errorf("unreadable as torch.save's format: %v", p)
		}
	}()
	return pickle.LoadWithUnpickler(path, func(r io.Reader) pickle.Unpickler {
		u := pickle.NewUnpickler(r)
		u.FindClass = func(module, name string) (any, error) {
			if module == "torch.jit._pickle" && name == "restore_type_tag" {
				return typeTag{}, nil
			}
			return nil, fmt.Errorf("class %s.%s has no place in a checkpoint", module, name)
		}
		return u
	})
}

// stridedNumel is the element count of st, once its size, stride and offset are
// checked to address only elements of its storage: libtorch's as_strided fails
// otherwise, with an error that names neither the file nor the tensor.
func stridedNumel(st *pickle.StorageTensor) (int64, error) {
	if st.Source == nil {
		return 0, fmt.Errorf("no storage")
	}
	storage := int64(reflect.ValueOf(st.Source.GetData()).Len())
	if len(st.Stride) != len(st.Size) {
		return 0, fmt.Errorf("size %v and stride %v differ in length", st.Size, st.Stride)
	}
	if st.StorageOffset < 0 {
		return 0, fmt.Errorf("storage offset %d is negative", st.StorageOffset)
	}
	for i, d := range st.Size {
		if d < 0 || st.Stride[i] < 0 {
			return 0, fmt.Errorf("size %v or stride %v is negative", st.Size, st.Stride)
		}
	}
	if slices.Contains(st.Size, 0) {
		return 0, nil
	}
	n, last := int64(1), st.StorageOffset // last: the offset of the last element
	for i, d := range st.Size {
		// Neither can overflow: both stay within the storage, or we stop.
		if n > storage/d {
			return 0, fmt.Errorf("size %v has more elements than its storage's %d", st.Size, storage)
		}
		n *= d
		if st.Stride[i] > 0 && d-1 > (storage-last)/st.Stride[i] {
			return 0, fmt.Errorf("size %v, stride %v at offset %d reach past its storage's %d elements", st.Size, st.Stride, st.StorageOffset, storage)
		}
		last += (d - 1) * st.Stride[i]
	}
	if last >= storage {
		return 0, fmt.Errorf("size %v, stride %v at offset %d reach past its storage's %d elements", st.Size, st.Stride, st.StorageOffset, storage)
	}
	return n, nil
}

// typeTag is restore_type_tag(value, type): the value.
type typeTag struct{}

func (typeTag) Call(args ...any) (any, error) {
	if len(args) != 2 {
		return nil, fmt.Errorf("restore_type_tag takes 2 arguments, got %d", len(args))
	}
	return args[0], nil
}

func toFloat32(t safetensors.Tensor) ([]float32, error) {
	n := len(t.Data)
	switch t.DType {
	case safetensors.F32:
		out := make([]float32, n/4)
		copy(out, unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(t.Data))), n/4))
		return out, nil
	case safetensors.F16, safetensors.BF16:
		out := make([]float32, n/2)
		for i := range out {
			out[i] = halfToFloat(uint16(t.Data[2*i])|uint16(t.Data[2*i+1])<<8, t.DType == safetensors.BF16)
		}
		return out, nil
	}
	return nil, fmt.Errorf("dtype %s is not a float type this loader converts (F32, F16, BF16)", t.DType)
}

// SaveOptions says what Save writes besides config.json and model.safetensors.
type SaveOptions struct {
	Pytorch bool // also pytorch_model.bin, for tools that only read that
	// An embedding model's sentence-transformers files: the maximum sequence length (0:
	// the model's), and whether its vectors are normalized (a Normalize module).
	MaxLength int
	Normalize bool
	// ONNXExternalData has SaveONNX write the weights apart, to model.onnx_data (ONNX's
	// external data), as it does for weights too large for one protobuf message.
	ONNXExternalData bool
}

// Save writes the model as a Hugging Face checkpoint directory: config.json and
// model.safetensors with transformers' names, so the result loads in transformers.
// Tokenizer files are the tokenizer's to write. Each file is written atomically. A
// model with LoRA adapters is saved merged (W + (alpha/r)·B·A), without them.
func (m *Model) Save(dir string, labels []string, opts SaveOptions) error {
	// The weights are written from a view of the model's memory, which gotch's finalizers
	// free once the model is unreachable.
	defer runtime.KeepAlive(m)
	if err := m.saveConfig(dir, labels, opts); err != nil {
		return err
	}
	flat := m.mergedFlat()
	var tensors []safetensors.Tensor
	for _, p := range m.savedParams() {
		data := flat[p.Offset : p.Offset+p.Numel]
		tensors = append(tensors, safetensors.Tensor{
			Info: safetensors.Info{Name: m.savedName(p.Name), DType: safetensors.F32, Shape: p.Shape},
			Data: unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(data))), 4*len(data)),
		})
	}
	if err := safetensors.Save(filepath.Join(dir, SafetensorsFile), tensors, map[string]string{"format": "pt"}); err != nil {
		return err
	}
	if opts.Pytorch {
		return m.savePytorch(filepath.Join(dir, PytorchFile), flat)
	}
	return nil
}

// savedParams are the parameters a checkpoint holds: all but LoRA's A and B, which Save
// merges into their layers.
func (m *Model) savedParams() []*Param {
	var out []*Param
	for _, p := range m.Params.List() {
		if !isLoRAParam(p.Name) {
			out = append(out, p)
		}
	}
	return out
}

// saveConfig writes config.json with the labels and transformers' architecture for the
// task, and an embedding model's sentence-transformers files.
func (m *Model) saveConfig(dir string, labels []string, opts SaveOptions) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cfg := *m.Config
	if len(labels) > 0 {
		cfg.SetLabels(labels)
	}
	cfg.Architectures = []string{m.architecture()}
	switch m.Opts.Task {
	case Embed:
		if err := m.saveSentenceTransformers(dir, opts.MaxLength, opts.Normalize); err != nil {
			return err
		}
	case MultiLabel:
		cfg.ProblemType = "multi_label_classification"
	case Classify:
		cfg.ProblemType = "single_label_classification"
	case Regression:
		cfg.ProblemType = "regression"
	}
	return hf.WriteConfig(filepath.Join(dir, ConfigFile), &cfg)
}

// hostFlat is the flat weights on the host: a view on CPU, a copy from a GPU.
func (m *Model) hostFlat() []float32 {
	if !m.Params.device.IsCuda() {
		return m.Params.FlatSlice()
	}
	out := make([]float32, m.Params.Total)
	c := m.Params.Flat.MustTo(gotch.CPU, false)
	c.MustCopyData(out, uint(len(out)))
	c.MustDrop()
	return out
}

// savePytorch writes pytorch_model.bin as Python's torch.save(model.state_dict()) does
// (torchsave.go), so that torch.load(weights_only=True) and transformers read it.
func (m *Model) savePytorch(path string, flat []float32) error {
	list := m.savedParams()
	tensors := make([]stateTensor, len(list))
	for i, p := range list {
		tensors[i] = stateTensor{name: m.savedName(p.Name), shape: p.Shape, data: flat[p.Offset : p.Offset+p.Numel]}
	}
	archive := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	err := atomicfile.Write(path, 0o644, func(w io.Writer) error {
		return writeTorchSave(w, archive, tensors)
	})
	// On the CPU flat is a view of m's weights, which the finalizers of m's tensors free
	// once m is unreachable.
	runtime.KeepAlive(m)
	return err
}
