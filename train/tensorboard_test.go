package train

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/report"
)

// A short run with report_to tensorboard, interrupted and resumed, writes two event
// files that read back (record framing and CRCs checked by report.ReadEvents) with every
// number of metrics.jsonl as a scalar at its step, and the second file starts with a
// restart at the checkpoint's step.
func TestTensorBoardReportsTheMetrics(t *testing.T) {
	runtime.LockOSThread()
	s := smsSpec(t)
	s.MaxSteps, s.EvalEvery, s.BatchSize, s.MaxLength = 20, 10, 16, 32
	s.ReportTo = []string{"tensorboard"}
	for _, stopAt := range []int{12, 0} {
		if _, err := runUntil(t, s, stopAt); (err != nil) != (stopAt > 0) {
			t.Fatalf("run to step %d: %v", stopAt, err)
		}
		s.Resume = "auto"
	}
	files, err := filepath.Glob(filepath.Join(s.Output, "events.out.tfevents.*"))
	if err != nil || len(files) != 2 {
		t.Fatalf("event files %v, %v", files, err)
	}
	type point struct {
		step int64
		tag  string
	}
	got := map[point]float32{}
	for i, path := range files {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		evs, err := report.ReadEvents(f, path)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) < 2 || evs[0].FileVersion != "brain.Event:2" {
			t.Fatalf("%s: events %+v", path, evs)
		}
		if restart := evs[1].Restart && evs[1].Step == 12; restart != (i == 1) {
			t.Fatalf("%s: second event %+v", path, evs[1])
		}
		for _, e := range evs {
			for _, sc := range e.Scalars {
				got[point{e.Step, sc.Tag}] = sc.Value
			}
		}
	}
	n := 0
	for _, line := range metricsLines(t, s.Output) {
		step := int64(line["step"].(float64))
		for k, v := range line {
			x, ok := v.(float64)
			if !ok || k == "step" {
				continue
			}
			tag := "train/" + k
			if name, found := strings.CutPrefix(k, "eval_"); found {
				tag = "eval/" + name
			}
			if g, ok := got[point{step, tag}]; !ok || g != float32(x) {
				t.Errorf("step %d %s: event file has %v (%v), metrics.jsonl %v", step, tag, g, ok, x)
			}
			n++
		}
	}
	if n != len(got) {
		t.Errorf("%d scalars in the event files, %d numbers in metrics.jsonl", len(got), n)
	}
	for _, tag := range []string{"train/loss", "train/lr", "train/grad_norm", "train/samples_per_s", "eval/loss", "eval/f1_spam"} {
		if _, ok := got[point{20, tag}]; !ok {
			t.Errorf("no %s at step 20", tag)
		}
	}
}
