package loadtest

import (
	"context"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bertnode/bertnode/serve"
	"github.com/bertnode/bertnode/train"
)

// Bench on a real tiny checkpoint, briefly: both servers and the bare net/http one answer
// every request, both raw forwards run, and the goals' lines carry the measured ratios.
func TestBenchReportsGoalsAndTheRawCeiling(t *testing.T) {
	runtime.LockOSThread() // libtorch's per-thread state (see package model)
	defer runtime.UnlockOSThread()
	const sms = "../../data/sms_spam/SMSSpamCollection"
	texts, err := Texts(sms)
	if err != nil {
		t.Fatal(err)
	}
	ckpt, err := Checkpoint("tiny", sms, t.TempDir(), 64)
	if err != nil {
		t.Fatal(err)
	}
	s := train.Defaults()
	s.Model, s.Threads = ckpt, 1
	tr, err := train.ForEval(s, &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	o := BenchOptions{Trainer: tr, Texts: texts[:200], Concurrency: []int{8}, Warmup: 100 * time.Millisecond, Duration: 400 * time.Millisecond, Rounds: 1,
		Batch: serve.DefaultOptions().Batch}
	o.Batch.Instances = 2
	var out strings.Builder
	if err := Bench(context.Background(), o, &out); err != nil {
		t.Fatal(err)
	}
	report := out.String()
	t.Log(report)
	for _, mode := range []string{"off", "on", "bare net/http"} {
		m := regexp.MustCompile(`(?m)^\s+8\s+` + mode + `\s+([0-9.]+) .* (\d+)\s*$`).FindStringSubmatch(report)
		if m == nil {
			t.Fatalf("no %q row", mode)
		}
		if m[2] != "0" {
			t.Errorf("batching %s: %s errors", mode, m[2])
		}
	}
	one := regexp.MustCompile(`raw, one by one\s+([0-9.]+)\s+mean 1\.0 sequences`).FindStringSubmatch(report)
	if one == nil {
		t.Fatal("no one-by-one raw forward of single sequences")
	}
	if v, _ := strconv.ParseFloat(one[1], 64); v <= 0 {
		t.Errorf("one by one: %s sequences/s", one[1])
	}
	if !regexp.MustCompile(`raw forward\s+[0-9.]+\s+mean [0-9.]+ sequences`).MatchString(report) {
		t.Error("no raw forward of the batched shapes")
	}
	for _, row := range []string{`raw forward, 1 instance\s+[0-9.]+\s+mean [0-9.]+ sequences`, `raw, one by one, 1 inst\.\s+[0-9.]+\s+mean 1\.0 sequences`} {
		if !regexp.MustCompile(row).MatchString(report) {
			t.Errorf("no row %q: the raw forwards on one instance", row)
		}
	}
	if !regexp.MustCompile(`2 instances run the batched shapes [0-9.]+x as fast as one, and one by one [0-9.]+x`).MatchString(report) {
		t.Error("the goal line lacks how the instances scale")
	}
	if !regexp.MustCompile(`the raw forward itself runs [0-9.]+x faster on the batched shapes`).MatchString(report) ||
		!regexp.MustCompile(`goal 2, at 8 clients: the server delivers .* cores used: the server [0-9.]+, its clients [0-9.]+, the raw forward [0-9.]+, of \d+`).MatchString(report) {
		t.Error("the goals' lines lack their ratios")
	}
	m := regexp.MustCompile(`CPU per request: the server and its clients (\d+) µs, of which the batches on the instances' threads (\d+) µs \(replayed alone: (\d+) µs\) and the rest (-?\d+) µs`).FindStringSubmatch(report)
	if m == nil {
		t.Fatal("no line splitting the server's CPU per request")
	}
	v := make([]int, 4)
	for i := range v {
		v[i], _ = strconv.Atoi(m[i+1])
	}
	if v[1] <= 0 || v[2] <= 0 || v[1] >= v[0] {
		t.Errorf("CPU per request: the server %d µs, its batches %d µs, replayed %d µs: want the batches above zero and below the server's whole", v[0], v[1], v[2])
	}
	bare := regexp.MustCompile(`a bare net/http handler sending a stored answer to the same clients: (\d+) µs`).FindStringSubmatch(report)
	if bare == nil {
		t.Fatal("no CPU per request of bare net/http")
	}
	if b, _ := strconv.Atoi(bare[1]); b <= 0 || b >= v[0] {
		t.Errorf("bare net/http: %d µs a request, want above zero and below the server's %d µs", b, v[0])
	}
}
