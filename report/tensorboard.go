package report

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// TensorBoard writes scalars into a TensorFlow event file, which TensorBoard reads
// (`tensorboard --logdir DIR`). The file is a TFRecord stream of Event protobufs: a
// first event with file_version "brain.Event:2", then one per Scalar. Writes are
// buffered; Flush (Metrics flushes) makes them visible to a TensorBoard reading the
// file as it grows. The first error sticks: later calls return it, Close included.
type TensorBoard struct {
	f    *os.File
	w    *bufio.Writer
	err  error
	path string
}

// Event fields (tensorboard/compat/proto/event.proto, summary.proto).
const (
	eventWallTime    = 1 // double
	eventStep        = 2 // int64
	eventFileVersion = 3 // string
	eventSummary     = 5 // Summary
	eventSessionLog  = 7 // SessionLog
	summaryValue     = 1 // repeated Summary.Value
	valueTag         = 1 // string
	valueSimple      = 2 // float
	sessionStatus    = 1 // SessionLog.SessionStatus
	sessionStart     = 1 // SessionStatus START
)

// NewTensorBoard creates a new event file in dir (made if missing), named as TensorFlow
// names them: events.out.tfevents.<unix seconds>.<host>, with a ".N" suffix if a file
// of that name exists (a second run in the same second).
func NewTensorBoard(dir string) (*TensorBoard, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	now := time.Now()
	base := filepath.Join(dir, fmt.Sprintf("events.out.tfevents.%d.%s", now.Unix(), host))
	path := base
	var f *os.File
	for n := 1; ; n++ {
		if f, err = os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); !errors.Is(err, fs.ErrExist) {
			break
		}
		path = fmt.Sprintf("%s.%d", base, n)
	}
	if err != nil {
		return nil, err
	}
	tb := &TensorBoard{f: f, w: bufio.NewWriter(f), path: path}
	tb.event(0, eventFileVersion, []byte("brain.Event:2"))
	if err := tb.Flush(); err != nil {
		f.Close()
		return nil, err
	}
	return tb, nil
}

// Path is the event file's path.
func (tb *TensorBoard) Path() string { return tb.path }

// Scalar records value under tag at step.
func (tb *TensorBoard) Scalar(step int64, tag string, value float64) error {
	var v []byte
	v = protowire.AppendTag(v, valueTag, protowire.BytesType)
	v = protowire.AppendString(v, tag)
	v = protowire.AppendTag(v, valueSimple, protowire.Fixed32Type)
	v = protowire.AppendFixed32(v, math.Float32bits(float32(value)))
	var sum []byte
	sum = protowire.AppendTag(sum, summaryValue, protowire.BytesType)
	sum = protowire.AppendBytes(sum, v)
	return tb.event(step, eventSummary, sum)
}

// Metrics records a metrics.jsonl line's numbers at its "step": eval_X as eval/X, every
// other field X (loss, lr, grad_norm, samples_per_s, epoch) as train/X. It flushes.
func (tb *TensorBoard) Metrics(line map[string]any) error {
	step, ok := number(line["step"])
	if !ok {
		return fmt.Errorf("tensorboard: a metrics line without a numeric step: %v", line)
	}
	keys := make([]string, 0, len(line))
	for k := range line {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, ok := number(line[k])
		if !ok || k == "step" {
			continue
		}
		tag := "train/" + k
		if name, found := strings.CutPrefix(k, "eval_"); found {
			tag = "eval/" + name
		}
		tb.Scalar(int64(step), tag, v)
	}
	return tb.Flush()
}

// Restart marks a run resumed from a checkpoint at step: TensorBoard drops what the
// file's earlier runs logged at that step and after (a SessionLog START event), so the
// steps the interrupted run took past its checkpoint do not show twice.
func (tb *TensorBoard) Restart(step int64) error {
	var sl []byte
	sl = protowire.AppendTag(sl, sessionStatus, protowire.VarintType)
	sl = protowire.AppendVarint(sl, sessionStart)
	tb.event(step, eventSessionLog, sl)
	return tb.Flush()
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	}
	return 0, false
}

// event writes one Event record: wall time, step, and the field of the "what" oneof
// (every one we write is a string or a message) holding what.
func (tb *TensorBoard) event(step int64, field protowire.Number, what []byte) error {
	if tb.err != nil {
		return tb.err
	}
	var e []byte
	e = protowire.AppendTag(e, eventWallTime, protowire.Fixed64Type)
	e = protowire.AppendFixed64(e, math.Float64bits(float64(time.Now().UnixMicro())/1e6))
	if step != 0 {
		e = protowire.AppendTag(e, eventStep, protowire.VarintType)
		e = protowire.AppendVarint(e, uint64(step))
	}
	e = protowire.AppendTag(e, field, protowire.BytesType)
	e = protowire.AppendBytes(e, what)
	return tb.record(e)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// maskedCRC is TFRecord's checksum: CRC-32C, rotated and offset so that a CRC of data
// that holds CRCs is not trivially related to them.
func maskedCRC(b []byte) uint32 {
	c := crc32.Checksum(b, castagnoli)
	return (c>>15 | c<<17) + 0xa282ead8
}

// record writes TFRecord framing around data: length (uint64 LE), its masked CRC, the
// data, the data's masked CRC.
func (tb *TensorBoard) record(data []byte) error {
	var hdr [12]byte
	binary.LittleEndian.PutUint64(hdr[:8], uint64(len(data)))
	binary.LittleEndian.PutUint32(hdr[8:], maskedCRC(hdr[:8]))
	var tail [4]byte
	binary.LittleEndian.PutUint32(tail[:], maskedCRC(data))
	for _, b := range [][]byte{hdr[:], data, tail[:]} {
		if _, err := tb.w.Write(b); err != nil {
			return tb.fail(err)
		}
	}
	return nil
}

func (tb *TensorBoard) fail(err error) error {
	if tb.err == nil {
		tb.err = fmt.Errorf("tensorboard: %s: %w", tb.path, err)
	}
	return tb.err
}

// Flush writes what is buffered to the file.
func (tb *TensorBoard) Flush() error {
	if tb.err != nil {
		return tb.err
	}
	if err := tb.w.Flush(); err != nil {
		return tb.fail(err)
	}
	return nil
}

// Close flushes and closes the file, and returns the first error of any write. Closing
// twice is harmless.
func (tb *TensorBoard) Close() error {
	if tb.f == nil {
		return tb.err
	}
	err := tb.Flush()
	if cerr := tb.f.Close(); err == nil && cerr != nil {
		err = tb.fail(cerr)
	}
	tb.f = nil
	return err
}
