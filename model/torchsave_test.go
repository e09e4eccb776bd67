package model

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"io"
	"math"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/bertnode/bertnode/hf"
)

// twoTensors is the small state dict whose torch.save output the tests hold.
var twoTensors = []stateTensor{
	{name: "dense.weight", shape: []int64{2, 3}, data: []float32{1, 2, 3, 4, 5, 6}},
	{name: "dense.bias", shape: []int64{3}, data: []float32{-1, 0.5, 0.25}},
}

// twoPickle is twoTensors' data.pkl as torch.save pickles it (CPython's pickler,
// protocol 2), one Python object a line; qN memoizes as N, hN fetches N.
const twoPickle = "\x80\x02" +
	"ccollections\nOrderedDict\nq\x00)Rq\x01" + // OrderedDict(), memo 1
	"(" + // MARK: the items, set by SETITEMS
	"X\x0c\x00\x00\x00dense.weightq\x02" +
	"ctorch._utils\n_rebuild_tensor_v2\nq\x03" +
	"((" + // its arguments; the storage's persistent id:
	"X\x07\x00\x00\x00storageq\x04ctorch\nFloatStorage\nq\x05X\x01\x00\x00\x000q\x06X\x03\x00\x00\x00cpuq\x07K\x06tq\x08Q" +
	"K\x00" + // storage offset
	"K\x02K\x03\x86q\x09K\x03K\x01\x86q\x0a" + // size (2, 3), stride (3, 1)
	"\x89h\x00)Rq\x0b" + // requires_grad False, backward hooks OrderedDict()
	"tq\x0cRq\x0d" + // the tensor: _rebuild_tensor_v2(*args)
	"X\x0a\x00\x00\x00dense.biasq\x0eh\x03" +
	"((h\x04h\x05X\x01\x00\x00\x001q\x0fh\x07K\x03tq\x10Q" + // 'storage', FloatStorage, 'cpu' fetched
	"K\x00K\x03\x85q\x11K\x01\x85q\x12\x89h\x00)Rq\x13tq\x14Rq\x15" +
	"u."

// torchTwo is what torch 2.11.0+cu130 (Python 3.12, Linux x86-64, on the project's GPU
// machine) wrote for
//
//	sd = OrderedDict([("dense.weight", torch.tensor([[1., 2, 3], [4, 5, 6]])),
//	                  ("dense.bias", torch.tensor([-1., 0.5, 0.25]))])
//	buf = io.BytesIO(); torch.save(sd, buf)
//
// A buffer has no file name, so the zip's folder is "archive". On the same machine
// torch.load(weights_only=True) read Save's pytorch_model.bin of every taskCases model
// with every weight equal to model.safetensors', transformers 5.17 loaded those of the
// classify, multilabel, ner and qa heads completely and exactly, and torch.save of the
// same dicts to pytorch_model.bin differed from ours only in the serialization id's name
// hash (see serializationID).
var torchTwo = mustHex(
	"504b03040000080800000000000000000000000000000000000010001200617263686976652f646174612e706b6c46420e005a5a5a5a5a5a5a5a5a5a5a5a5a5a" +
		"800263636f6c6c656374696f6e730a4f726465726564446963740a71002952710128580c00000064656e73652e776569676874710263746f7263682e5f757469" +
		"6c730a5f72656275696c645f74656e736f725f76320a71032828580700000073746f72616765710463746f7263680a466c6f617453746f726167650a71055801" +
		"000000307106580300000063707571074b06747108514b004b024b038671094b034b0186710a8968002952710b74710c52710d580a00000064656e73652e6269" +
		"6173710e6803282868046805580100000031710f68074b03747110514b004b038571114b0185711289680029527113747114527115752e504b070826c94c6ef7" +
		"000000f7000000504b03040000080800000000000000000000000000000000000017000400617263686976652f2e666f726d61745f76657273696f6e46420000" +
		"31504b0708b7efdc830100000001000000504b0304000008080000000000000000000000000000000000001a003700617263686976652f2e73746f726167655f" +
		"616c69676e6d656e74464233005a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a" +
		"3634504b07083f7771e90200000002000000504b03040000080800000000000000000000000000000000000011003f00617263686976652f627974656f726465" +
		"7246423b005a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a" +
		"6c6974746c65504b0708853de3190600000006000000504b0304000008080000000000000000000000000000000000000e003e00617263686976652f64617461" +
		"2f3046423a005a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a" +
		"0000803f0000004000004040000080400000a0400000c040504b070824e539191800000018000000504b03040000080800000000000000000000000000000000" +
		"00000e002c00617263686976652f646174612f31464228005a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a" +
		"000080bf0000003f0000803e504b0708956a9ed30c0000000c000000504b0304000008080000000000000000000000000000000000000f003700617263686976" +
		"652f76657273696f6e464233005a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a" +
		"330a504b0708d19e67550200000002000000504b0304000008080000000000000000000000000000000000001e003200617263686976652f2e646174612f7365" +
		"7269616c697a6174696f6e5f696446422e005a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a" +
		"30353631313038353233363139363730353239343038333230343836383836343438383336333833504b07088b3daa1d2800000028000000504b010200000000" +
		"080800000000000026c94c6ef7000000f7000000100000000000000000000000000000000000617263686976652f646174612e706b6c504b0102000000000808" +
		"000000000000b7efdc830100000001000000170000000000000000000000000047010000617263686976652f2e666f726d61745f76657273696f6e504b010200" +
		"00000008080000000000003f7771e902000000020000001a0000000000000000000000000091010000617263686976652f2e73746f726167655f616c69676e6d" +
		"656e74504b0102000000000808000000000000853de3190600000006000000110000000000000000000000000012020000617263686976652f627974656f7264" +
		"6572504b010200000000080800000000000024e5391918000000180000000e0000000000000000000000000096020000617263686976652f646174612f30504b" +
		"0102000000000808000000000000956a9ed30c0000000c0000000e0000000000000000000000000028030000617263686976652f646174612f31504b01020000" +
		"00000808000000000000d19e675502000000020000000f000000000000000000000000009c030000617263686976652f76657273696f6e504b01020000000008" +
		"080000000000008b3daa1d28000000280000001e0000000000000000000000000012040000617263686976652f2e646174612f73657269616c697a6174696f6e" +
		"5f6964504b06062c000000000000001e032d000000000000000000080000000000000008000000000000000b02000000000000b804000000000000504b060700" +
		"000000c30600000000000001000000504b050600000000080008000b020000b80400000000")

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestStatePickleMatchesTorch(t *testing.T) {
	if got := statePickle(twoTensors); string(got) != twoPickle {
		t.Fatalf("data.pkl differs from torch.save's at byte %d:\n got %q\nwant %q", firstByteDiff(got, []byte(twoPickle)), got, twoPickle)
	}
	z, err := zip.NewReader(bytes.NewReader(torchTwo), int64(len(torchTwo)))
	if err != nil {
		t.Fatal(err)
	}
	if got := readRecord(t, z, "archive/data.pkl"); string(got) != twoPickle {
		t.Fatalf("twoPickle is not the data.pkl of torchTwo")
	}
}

// The whole file is torch's, byte for byte, once torch's serialization id has our name
// hash (withOurID).
func TestTorchSaveMatchesTorch(t *testing.T) {
	var got bytes.Buffer
	if err := writeTorchSave(&got, "archive", twoTensors); err != nil {
		t.Fatal(err)
	}
	sameAsTorch(t, got.Bytes(), withOurID(torchTwo, "archive/"))
}

// withOurID is a copy of a file torch wrote with the first twenty digits of its
// serialization id, a hash of the record names we do not imitate, made our zeros, and
// the record's CRC-32 updated to match.
func withOurID(torchFile []byte, dir string) []byte {
	b := bytes.Clone(torchFile)
	name := []byte(dir + ".data/serialization_id")
	at := bytes.Index(b, name) // the local header's copy: the central directory comes after
	at += len(name) + int(binary.LittleEndian.Uint16(b[at-2:]))
	copy(b[at:at+20], strings.Repeat("0", 20))
	crc := crc32.ChecksumIEEE(b[at : at+40])
	binary.LittleEndian.PutUint32(b[at+44:], crc)                                       // its data descriptor
	binary.LittleEndian.PutUint32(b[bytes.LastIndex(b, []byte("PK\x01\x02"))+16:], crc) // its central directory entry
	return b
}

// torchBig is the file torch 2.11 wrote, on the same machine, for
//
//	torch.save(OrderedDict([("big", torch.zeros(2**30 + 16)), ("small", torch.tensor([1., 2., 3.]))]), "/tmp/big.bin")
//
// without the 4 GiB of big's zeros: the zip64 fields of a record of 4 GiB and more and of
// the records after it.
var torchBig = mustHex(
	"504b0304000008080000000000000000000000000000000000000c0016006269672f646174612e706b6c464212005a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a" +
		"800263636f6c6c656374696f6e730a4f726465726564446963740a710029527101285803000000626967710263746f7263682e5f7574696c730a5f7265627569" +
		"6c645f74656e736f725f76320a71032828580700000073746f72616765710463746f7263680a466c6f617453746f726167650a71055801000000307106580300" +
		"000063707571074a10000040747108514b004a100000408571094b0185710a8968002952710b74710c52710d5805000000736d616c6c710e6803282868046805" +
		"580100000031710f68074b03747110514b004b038571114b0185711289680029527113747114527115752e504b0708f7954badeb000000eb000000504b030400" +
		"000808000000000000000000000000000000000000130014006269672f2e666f726d61745f76657273696f6e464210005a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a" +
		"31504b0708b7efdc830100000001000000504b03040000080800000000000000000000000000000000000016003b006269672f2e73746f726167655f616c6967" +
		"6e6d656e74464237005a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a" +
		"3634504b07083f7771e90200000002000000504b0304000008080000000000000000000000000000000000000d0043006269672f627974656f7264657246423f" +
		"005a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a" +
		"6c6974746c65504b0708853de3190600000006000000504b0304000008080000000000000000000000000000000000000a0042006269672f646174612f300100" +
		"10004000000001000000000000000000000046422a005a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a" +
		"504b070877f7cd1d40000000010000004000000001000000504b0304000008080000000000000000000000000000000000000a0040006269672f646174612f31" +
		"010008005803000001000000464230005a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a" +
		"0000803f0000004000004040504b0708b1960eb20c000000000000000c00000000000000504b0304000008080000000000000000000000000000000000000b00" +
		"33006269672f76657273696f6e01000800e403000001000000464223005a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a" +
		"330a504b0708d19e675502000000000000000200000000000000504b0304000008080000000000000000000000000000000000001a002e006269672f2e646174" +
		"612f73657269616c697a6174696f6e5f6964010008005a0400000100000046421e005a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a" +
		"30353631313038353233363139363730353239343136393130353137313736393138383430393732504b07085a7e29ba28000000000000002800000000000000" +
		"504b0102000000000808000000000000f7954badeb000000eb0000000c00000000000000000000000000000000006269672f646174612e706b6c504b01020000" +
		"00000808000000000000b7efdc83010000000100000013000000000000000000000000003b0100006269672f2e666f726d61745f76657273696f6e504b010200" +
		"00000008080000000000003f7771e902000000020000001600000000000000000000000000910100006269672f2e73746f726167655f616c69676e6d656e7450" +
		"4b0102000000000808000000000000853de31906000000060000000d00000000000000000000000000120200006269672f627974656f72646572504b01020000" +
		"0000080800000000000077f7cd1dffffffffffffffff0a00140000000000000000000000960200006269672f646174612f300100100040000000010000004000" +
		"000001000000504b0102000000000808000000000000b1960eb20c0000000c0000000a000c0000000000000000000000ffffffff6269672f646174612f310100" +
		"08005803000001000000504b0102000000000808000000000000d19e675502000000020000000b000c0000000000000000000000ffffffff6269672f76657273" +
		"696f6e01000800e403000001000000504b01020000000008080000000000005a7e29ba28000000280000001a000c0000000000000000000000ffffffff626967" +
		"2f2e646174612f73657269616c697a6174696f6e5f6964010008005a04000001000000504b06062c000000000000001e032d0000000000000000000800000000" +
		"000000080000000000000023020000000000000005000001000000504b060700000000230700000100000001000000504b0506000000000800080023020000ff" +
		"ffffff0000")

// Past 4 GiB the records take torch's zip64 fields. big's zeros come from an anonymous
// mapping, the kernel's zero page, and skipLarge drops them on the way out.
func TestTorchSaveZip64MatchesTorch(t *testing.T) {
	zeros, err := syscall.Mmap(-1, 0, 4<<30+64, syscall.PROT_READ, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(zeros)
	big := unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(zeros))), len(zeros)/4)
	var got skipLarge
	err = writeTorchSave(&got, "big", []stateTensor{
		{name: "big", shape: []int64{int64(len(big))}, data: big},
		{name: "small", shape: []int64{3}, data: []float32{1, 2, 3}},
	})
	if err != nil {
		t.Fatal(err)
	}
	sameAsTorch(t, got.Bytes(), withOurID(torchBig, "big/"))
}

// skipLarge keeps what is written to it but the one write of a record's data above 1 GiB.
type skipLarge struct{ bytes.Buffer }

func (s *skipLarge) Write(p []byte) (int, error) {
	if len(p) > 1<<30 {
		return len(p), nil
	}
	return s.Buffer.Write(p)
}

func sameAsTorch(t *testing.T, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		i := firstByteDiff(got, want)
		t.Fatalf("differs from torch.save at byte %d of %d (want %d bytes):\n got % x\nwant % x",
			i, len(got), len(want), got[i:min(i+32, len(got))], want[i:min(i+32, len(want))])
	}
}

func firstByteDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func recordFile(t *testing.T, z *zip.Reader, name string) *zip.File {
	t.Helper()
	for _, f := range z.File {
		if f.Name == name {
			return f
		}
	}
	t.Fatalf("no record %s", name)
	return nil
}

func readRecord(t *testing.T, z *zip.Reader, name string) []byte {
	t.Helper()
	r, err := recordFile(t, z, name).Open()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r) // checks the CRC-32
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return b
}

// The integers go as CPython 3.12's pickle.dumps(v, protocol=2) writes them.
func TestPickleIntsAsCPython(t *testing.T) {
	for _, c := range []struct {
		v    int64
		want string
	}{
		{0, "K\x00"}, {255, "K\xff"}, {256, "M\x00\x01"}, {65535, "M\xff\xff"}, {65536, "J\x00\x00\x01\x00"},
		{math.MaxInt32, "J\xff\xff\xff\x7f"}, {1 << 31, "\x8a\x05\x00\x00\x00\x80\x00"},
		{1 << 32, "\x8a\x05\x00\x00\x00\x00\x01"}, {1 << 40, "\x8a\x06\x00\x00\x00\x00\x00\x01"},
		{math.MaxInt64, "\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f"},
	} {
		p := &pickler{}
		if p.int(c.v); string(p.b) != c.want {
			t.Errorf("int(%d) = %q, want %q", c.v, p.b, c.want)
		}
	}
	for _, c := range []struct {
		vs   []int64
		want string
	}{{nil, ")"}, {[]int64{7}, "K\x07\x85q\x00"}, {[]int64{1, 2, 3, 4}, "(K\x01K\x02K\x03K\x04tq\x00"}} {
		p := &pickler{}
		if p.tuple(c.vs); string(p.b) != c.want {
			t.Errorf("tuple(%v) = %q, want %q", c.vs, p.b, c.want)
		}
	}
}

// weightsOnlyOps are the opcodes torch's weights-only unpickler reads, with the length
// of their argument (-1: a length prefix says; -2: GLOBAL's two lines).
var weightsOnlyOps = map[byte]int{
	'a': 0, 'e': 0, 'G': 8, 'h': 1, 'J': 4, 'K': 1, 'M': 2, 'Q': 0, 'q': 1, 'X': -1, 'b': 0, '}': 0,
	']': 0, 0x8f: 0, ')': 0, 'c': -2, 0x8a: -1, 'j': 4, 'r': 4, '(': 0, 0x89: 0, 0x81: 0, 0x88: 0,
	'N': 0, 0x80: 1, 'R': 0, 's': 0, 'u': 0, 'U': -1, '.': 0, 't': 0, 0x85: 0, 0x86: 0, 0x87: 0,
}

// pickleOps walks a pickle as torch's get_globals_in_pkl does: the globals it names and
// how often each opcode occurs. It fails on an opcode the weights-only unpickler lacks.
func pickleOps(t *testing.T, b []byte) (globals []string, count map[byte]int) {
	t.Helper()
	count = map[byte]int{}
	for i := 0; i < len(b); {
		op := b[i]
		n, ok := weightsOnlyOps[op]
		if !ok {
			t.Fatalf("byte %d: opcode %q is not one torch.load(weights_only=True) reads", i, op)
		}
		count[op]++
		i++
		switch n {
		case -2:
			module, rest, _ := bytes.Cut(b[i:], []byte{'\n'})
			name, _, _ := bytes.Cut(rest, []byte{'\n'})
			globals = append(globals, string(module)+"."+string(name))
			i += len(module) + len(name) + 2
		case -1:
			if op == 'X' {
				i += 4 + int(binary.LittleEndian.Uint32(b[i:]))
			} else {
				i += 1 + int(b[i])
			}
		default:
			i += n
		}
		if op == '.' {
			if i != len(b) {
				t.Fatalf("STOP at byte %d of %d", i-1, len(b))
			}
			return globals, count
		}
	}
	t.Fatal("no STOP")
	return nil, nil
}

// savedPytorch saves a small model with pytorch_model.bin and opens that as a zip.
func savedPytorch(t *testing.T, opts Options) (*Model, string, *zip.ReadCloser) {
	t.Helper()
	m := newModel(t, smallConfig(0.1), opts, 1)
	dir := t.TempDir()
	if err := m.Save(dir, nil, SaveOptions{Pytorch: true}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, PytorchFile)
	z, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { z.Close() })
	return m, path, z
}

// Save's pytorch_model.bin has torch.save's records in torch's order under the folder
// pytorch_model, each stored with its data 64-byte aligned, each storage the raw
// little-endian floats of its parameter, and readPickle reads every parameter back bit
// for bit.
func TestSavePytorchReadsBack(t *testing.T) {
	lockThread(t)
	m, path, z := savedPytorch(t, Options{Task: Classify, NumLabels: 3, HeadHidden: 8})
	list := m.Params.List()
	want := []string{"data.pkl", ".format_version", ".storage_alignment", "byteorder"}
	for i := range list {
		want = append(want, "data/"+strconv.Itoa(i))
	}
	want = append(want, "version", ".data/serialization_id")
	var names []string
	for _, f := range z.File {
		names = append(names, strings.TrimPrefix(f.Name, "pytorch_model/"))
		at, err := f.DataOffset()
		if err != nil || at%64 != 0 || f.Method != zip.Store {
			t.Errorf("%s: data at %d (%v), method %d: want stored at a multiple of 64", f.Name, at, err, f.Method)
		}
	}
	if !slices.Equal(names, want) {
		t.Fatalf("records %v, want pytorch_model/ and %v", names, want)
	}
	flat := m.Params.FlatSlice()
	for i, p := range list {
		raw := readRecord(t, &z.Reader, "pytorch_model/data/"+strconv.Itoa(i))
		if len(raw) != 4*int(p.Numel) {
			t.Fatalf("data/%d has %d bytes for %s's %d values", i, len(raw), p.Name, p.Numel)
		}
		for j, v := range flat[p.Offset : p.Offset+p.Numel] {
			if binary.LittleEndian.Uint32(raw[4*j:]) != math.Float32bits(v) {
				t.Fatalf("data/%d (%s) value %d differs", i, p.Name, j)
			}
		}
	}
	for _, r := range []struct{ name, want string }{{"version", "3\n"}, {"byteorder", "little"}, {".format_version", "1"}, {".storage_alignment", "64"}} {
		if got := readRecord(t, &z.Reader, "pytorch_model/"+r.name); string(got) != r.want {
			t.Errorf("%s holds %q, want %q", r.name, got, r.want)
		}
	}

	tensors, err := readPickle(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(tensors) != len(list) {
		t.Fatalf("read %d tensors, saved %d", len(tensors), len(list))
	}
	for _, p := range list {
		got, ok := tensors[p.Name]
		if !ok || !equalShape(got.shape, p.Shape) {
			t.Fatalf("%s: read shape %v (present %v), saved %v", p.Name, got.shape, ok, p.Shape)
		}
		if i := firstDiff(got.data, flat[p.Offset:p.Offset+p.Numel]); i >= 0 {
			t.Fatalf("%s: value %d read back differs", p.Name, i)
		}
	}
}

// data.pkl names only the three globals torch.load(weights_only=True) allows for a
// state dict, with opcodes it reads; dict items go in batches of 1000 as CPython's, and
// memo indices past 255 take LONG_BINPUT.
func TestSavePytorchOnlyAllowedGlobals(t *testing.T) {
	lockThread(t)
	_, _, z := savedPytorch(t, Options{Task: QA})
	globals, count := pickleOps(t, readRecord(t, &z.Reader, "pytorch_model/data.pkl"))
	slices.Sort(globals)
	if want := []string{"collections.OrderedDict", "torch.FloatStorage", "torch._utils._rebuild_tensor_v2"}; !slices.Equal(slices.Compact(globals), want) {
		t.Fatalf("globals %v, want only %v", globals, want)
	}
	if count['r'] == 0 || count['u'] != 1 || count['s'] != 0 {
		t.Fatalf("LONG_BINPUT %d, SETITEMS %d, SETITEM %d: want some, 1, 0", count['r'], count['u'], count['s'])
	}

	many := make([]stateTensor, 2*pickleBatch+1)
	for i := range many {
		many[i] = stateTensor{name: "t" + strconv.Itoa(i), shape: []int64{1}, data: []float32{float32(i)}}
	}
	_, count = pickleOps(t, statePickle(many))
	if count['u'] != 2 || count['s'] != 1 || count['Q'] != len(many) {
		t.Fatalf("%d items: SETITEMS %d, SETITEM %d, storages %d: want 2, 1, %d", len(many), count['u'], count['s'], count['Q'], len(many))
	}
}

type failingWriter struct{ left int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.left {
		n := w.left
		w.left = 0
		return n, errors.New("disk full")
	}
	w.left -= len(p)
	return len(p), nil
}

func TestTorchSaveErrors(t *testing.T) {
	err := writeTorchSave(io.Discard, "archive", []stateTensor{{name: "dense.bias", shape: []int64{2, 2}, data: []float32{1, 2, 3}}})
	if err == nil || !strings.Contains(err.Error(), "dense.bias") || !strings.Contains(err.Error(), "[2 2]") {
		t.Fatalf("mis-sized tensor: got %v, want an error naming dense.bias and its shape", err)
	}
	for _, left := range []int{0, 100, 700, len(torchTwo) - 10} {
		if err := writeTorchSave(&failingWriter{left: left}, "archive", twoTensors); err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("writer failing after %d bytes: got %v", left, err)
		}
	}
}

// BenchmarkWriteTorchSave is writeTorchSave of a preset's weights to io.Discard: the
// pickle, the CRC-32 of every byte, the headers; the storages are written from the
// flat weights without copies.
func BenchmarkWriteTorchSave(b *testing.B) {
	for _, preset := range []string{"mini", "base"} {
		b.Run(preset, func(b *testing.B) {
			lockThread(b)
			cfg, err := hf.Preset(preset)
			if err != nil {
				b.Fatal(err)
			}
			m := newModel(b, cfg, Options{Task: Classify, NumLabels: 2}, 1)
			flat := m.Params.FlatSlice()
			var tensors []stateTensor
			for _, p := range m.Params.List() {
				tensors = append(tensors, stateTensor{name: p.Name, shape: p.Shape, data: flat[p.Offset : p.Offset+p.Numel]})
			}
			b.SetBytes(4 * int64(len(flat)))
			b.ReportAllocs()
			for b.Loop() {
				if err := writeTorchSave(io.Discard, "pytorch_model", tensors); err != nil {
					b.Fatal(err)
				}
			}
			runtime.KeepAlive(m) // tensors view its weights
		})
	}
}
