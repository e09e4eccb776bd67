package chaos

import (
	"math/rand/v2"
	"testing"
	"time"
)

// A nodes-kill strikes every node but one, at the same step; with two nodes it has no
// pair to strike and is left out, as the suite always keeps one node never hit.
func TestPlanNodesKillStrikesAllButOneAtOnce(t *testing.T) {
	planned := 0
	for seed := range uint64(50) {
		rng := rand.New(rand.NewPCG(seed, 0))
		fs := plan(rng, []Kind{NodesKill, LeaderKill}, 4, 10, 100)
		var kills []Fault
		for _, f := range fs {
			if f.Kind == NodesKill {
				kills = append(kills, f)
			}
		}
		if len(kills) == 0 {
			continue
		}
		planned++
		if len(kills) != 3 {
			t.Fatalf("seed %d: %d nodes killed of 4, want 3: %+v", seed, len(kills), fs)
		}
		hit := map[string]bool{}
		for _, f := range kills {
			if f.AtStep != kills[0].AtStep || hit[f.Target] {
				t.Fatalf("seed %d: not three distinct nodes at one step: %+v", seed, kills)
			}
			hit[f.Target] = true
		}
	}
	if planned < 10 {
		t.Fatalf("a nodes-kill in %d plans of 50", planned)
	}
	for seed := range uint64(20) {
		for _, f := range plan(rand.New(rand.NewPCG(seed, 0)), []Kind{NodesKill}, 2, 10, 100) {
			t.Fatalf("seed %d: two nodes: %+v planned", seed, f)
		}
	}
}

// A power loss strikes the whole cluster and spares the nodes' victims for the other
// faults; its goal counts the time it keeps the cluster down.
func TestPlanPowerLoss(t *testing.T) {
	fs := plan(rand.New(rand.NewPCG(1, 0)), []Kind{PowerLoss}, 3, 10, 100)
	if len(fs) == 0 {
		t.Fatal("no fault planned")
	}
	for _, f := range fs {
		if f.Target != "cluster" || f.Delay != powerDown {
			t.Fatalf("%+v: want the whole cluster, down %s", f, powerDown)
		}
	}
	if d, _ := PowerLoss.goal(4 * time.Second); d != powerDown+10*time.Second {
		t.Fatalf("power-loss goal %s, want %s", d, powerDown+10*time.Second)
	}
}
