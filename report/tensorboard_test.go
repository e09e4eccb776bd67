package report

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// readEventFile reads path's events, failing the test on any error.
func readEventFile(t *testing.T, path string) []Event {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	evs, err := ReadEvents(f, path)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// An event file holds what TensorFlow writes, byte for byte where the bytes do not
// depend on the time: the first record's length and its masked CRC32C are those that
// begin every TensorFlow event file, and each event is the protobuf encoding of
// event.proto's fields, spelled out here by hand.
func TestTensorBoardEventFileBytes(t *testing.T) {
	dir := t.TempDir()
	before := float64(time.Now().UnixMicro()) / 1e6
	tb, err := NewTensorBoard(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.Scalar(300, "train/loss", 0.25); err != nil {
		t.Fatal(err)
	}
	if err := tb.Close(); err != nil {
		t.Fatal(err)
	}
	after := float64(time.Now().UnixMicro()) / 1e6
	host, _ := os.Hostname()
	if ok, _ := regexp.MatchString(`^events\.out\.tfevents\.\d{10}\.`+regexp.QuoteMeta(host)+`$`, filepath.Base(tb.Path())); !ok {
		t.Fatalf("file name %s", filepath.Base(tb.Path()))
	}
	b, err := os.ReadFile(tb.Path())
	if err != nil {
		t.Fatal(err)
	}
	// record: u64 length, u32 masked CRC of it, data, u32 masked CRC of the data
	next := func() (length, data []byte) {
		t.Helper()
		if len(b) < 12 {
			t.Fatalf("%d bytes left, not a record", len(b))
		}
		n := binary.LittleEndian.Uint64(b)
		length, data = b[:12], b[12:12+n]
		b = b[12+n+4:]
		return
	}
	// wall time: field 1, fixed64 (tag 0x09), seconds as a double
	wall := func(data []byte) []byte {
		t.Helper()
		if data[0] != 0x09 {
			t.Fatalf("event starts % x, want field 1 fixed64", data[:1])
		}
		if w := math.Float64frombits(binary.LittleEndian.Uint64(data[1:9])); w < before || w > after {
			t.Fatalf("wall time %f, not in [%f, %f]", w, before, after)
		}
		return data[9:]
	}
	length, data := next()
	if want := []byte{0x18, 0, 0, 0, 0, 0, 0, 0, 0xa3, 0x7f, 0x4b, 0x22}; !bytes.Equal(length, want) {
		t.Fatalf("first record header % x, TensorFlow's is % x", length, want)
	}
	// file_version: field 3, length-delimited (tag 0x1a)
	if got, want := wall(data), append([]byte{0x1a, 13}, "brain.Event:2"...); !bytes.Equal(got, want) {
		t.Fatalf("first event after the wall time: % x, want % x", got, want)
	}
	_, data = next()
	// step: field 2 varint (0x10), 300 = ac 02; summary: field 5 (0x2a) holding
	// value: field 1 (0x0a) holding tag: field 1 (0x0a) "train/loss" and
	// simple_value: field 2 fixed32 (0x15) 0.25 = 0x3e800000 little-endian
	want := []byte{0x10, 0xac, 0x02, 0x2a, 19, 0x0a, 17, 0x0a, 10}
	want = append(want, "train/loss"...)
	want = append(want, 0x15, 0x00, 0x00, 0x80, 0x3e)
	if got := wall(data); !bytes.Equal(got, want) {
		t.Fatalf("scalar event after the wall time:\n% x\nwant\n% x", got, want)
	}
	if len(b) != 0 {
		t.Fatalf("%d bytes after the last record", len(b))
	}
}

// Metrics lines come back as scalars at their steps (eval_X as eval/X, the rest as
// train/X, non-numbers left out), a restart as a SessionLog START at its step.
func TestTensorBoardMetricsReadBack(t *testing.T) {
	dir := t.TempDir()
	tb, err := NewTensorBoard(dir)
	if err != nil {
		t.Fatal(err)
	}
	lines := []map[string]any{
		{"step": 10, "epoch": 0.5, "loss": 0.693, "lr": 1e-3, "grad_norm": 2.5, "samples_per_s": 812.5},
		{"step": 20, "eval_loss": 0.4, "eval_f1_spam": 0.91, "eval_accuracy": 0.97, "note": "not a number"},
	}
	for _, l := range lines {
		if err := tb.Metrics(l); err != nil {
			t.Fatal(err)
		}
	}
	if err := tb.Restart(15); err != nil {
		t.Fatal(err)
	}
	if err := tb.Metrics(map[string]any{"loss": 1.0}); err == nil || !strings.Contains(err.Error(), "step") {
		t.Fatalf("a line without a step: %v", err)
	}
	// Flushed: a reader sees everything before Close.
	evs := readEventFile(t, tb.Path())
	if err := tb.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tb.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if len(evs) == 0 || evs[0].FileVersion != "brain.Event:2" {
		t.Fatalf("first event %+v", evs)
	}
	type point struct {
		step int64
		tag  string
		v    float32
	}
	var got []point
	restartAt := int64(-1)
	for _, e := range evs[1:] {
		if e.Restart {
			restartAt = e.Step
		}
		for _, s := range e.Scalars {
			got = append(got, point{e.Step, s.Tag, s.Value})
		}
	}
	want := []point{
		{10, "train/epoch", 0.5}, {10, "train/grad_norm", 2.5}, {10, "train/loss", 0.693}, {10, "train/lr", 1e-3}, {10, "train/samples_per_s", 812.5},
		{20, "eval/accuracy", 0.97}, {20, "eval/f1_spam", 0.91}, {20, "eval/loss", 0.4},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("scalars\n%v\nwant\n%v", got, want)
	}
	if restartAt != 15 {
		t.Fatalf("restart at step %d, want 15", restartAt)
	}
}

// ReadEvents checks both CRCs of every record: a flipped bit in a length or in the
// data is an error naming the record's offset.
func TestReadEventsChecksCRCs(t *testing.T) {
	dir := t.TempDir()
	tb, err := NewTensorBoard(dir)
	if err != nil {
		t.Fatal(err)
	}
	tb.Scalar(1, "a", 1)
	tb.Scalar(2, "b", 2)
	if err := tb.Close(); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(tb.Path())
	second := 12 + int(binary.LittleEndian.Uint64(good)) + 4
	for _, c := range []struct {
		at   int
		want string
	}{{second + 2, "length CRC"}, {second + 12 + 3, "data CRC"}, {len(good) - 1, "data CRC"}} {
		bad := slices.Clone(good)
		bad[c.at] ^= 0x10
		evs, err := ReadEvents(bytes.NewReader(bad), "x.tfevents")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "x.tfevents: record at byte") {
			t.Errorf("bit flipped at byte %d: %v", c.at, err)
		}
		if len(evs) == 0 || evs[0].FileVersion != "brain.Event:2" {
			t.Errorf("bit flipped at byte %d: the records before it were not returned", c.at)
		}
	}
	if _, err := ReadEvents(bytes.NewReader(good[:len(good)-2]), "x"); err == nil {
		t.Error("a truncated record read without error")
	}
	// Two writers in one second get two files.
	tb2, err := NewTensorBoard(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer tb2.Close()
	if tb2.Path() == tb.Path() {
		t.Fatal("a second event file took the first one's name")
	}
}
