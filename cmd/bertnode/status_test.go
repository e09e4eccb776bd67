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
