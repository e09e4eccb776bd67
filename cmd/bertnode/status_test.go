package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/api"
)

// bertnode nodes says which nodes are idle, which work, and which a generation left out
// (no work until they register again).
func TestPrintNodesSaysWhoIsLeftOut(t *testing.T) {
	var out bytes.Buffer
	printNodes(&out, []api.Node{
		{ID: "n1", Health: api.Alive, Job: "job-1", RingAddr: "10.0.0.1:7400"},
		{ID: "n2", Health: api.Alive, RingAddr: "10.0.0.2:7400"},
		{ID: "n3", Health: api.Alive, Unproven: true, RingAddr: "10.0.0.3:7400"},
	})
	want := map[string]string{"n1": "job-1", "n2": "idle", "n3": "left out"}
	for _, line := range strings.Split(out.String(), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && want[f[0]] != "" {
			if !strings.Contains(line, want[f[0]]) {
				t.Errorf("%s: %q, want it to say %q", f[0], line, want[f[0]])
			}
			delete(want, f[0])
		}
	}
	if len(want) > 0 {
		t.Errorf("not listed: %v\n%s", want, out.String())
	}
}

// bertnode status JOB shows an fp16 job's loss scale and the steps it skipped, running
// or ended, and nothing of it for an fp32 job (whose progress has no scale).
func TestPrintJobShowsTheLossScale(t *testing.T) {
	j := &api.Job{ID: "job-1", State: api.Running, Cluster: api.ClusterSpec{Nodes: 1},
		Gen:      &api.Generation{Gen: 1, Members: []api.RingMember{{Node: "n1"}}},
		Progress: api.Progress{Step: 40, TotalSteps: 100, Loss: 0.5, LossScale: 32768, Skipped: 3}}
	show := func() string {
		var out bytes.Buffer
		printJob(&out, j, nil)
		return out.String()
	}
	if out := show(); !strings.Contains(out, "\n  loss scale 32768 (3 steps skipped)\n") {
		t.Errorf("an fp16 job:\n%s", out)
	}
	j.State, j.Progress.LossScale, j.Progress.Skipped = api.Succeeded, 1<<24, 1
	if out := show(); !strings.Contains(out, "\n  loss scale 16777216 (1 step skipped)\n") {
		t.Errorf("an fp16 job that ended at a scale of 2^24:\n%s", out)
	}
	j.Progress.LossScale, j.Progress.Skipped = 0, 0
	if out := show(); strings.Contains(out, "loss scale") || strings.Contains(out, "skipped") {
		t.Errorf("an fp32 job:\n%s", out)
	}
}
