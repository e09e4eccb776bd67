package coordinator_test

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/coordinator"
	"github.com/bertnode/bertnode/coordinator/coordtest"
	"github.com/bertnode/bertnode/gossip"
	"github.com/bertnode/bertnode/internal/clusterkey"
	"github.com/bertnode/bertnode/internal/syncbuf"
)

// Every member started alike, with BootstrapExpect 3 and the three API addresses (its
// own among them): two alone bootstrap nothing; with the third they form one cluster
// of the three, whichever of them bootstraps; a fourth started the same way joins it
// rather than start another; a member restarted from its data directory rejoins.
func TestBootstrapExpect(t *testing.T) {
	secret, err := clusterkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	var apis, dirs []string
	for range 4 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		apis = append(apis, l.Addr().String())
		l.Close()
		dirs = append(dirs, t.TempDir())
	}
	servers := make([]*coordinator.Server, 4)
	t.Cleanup(func() {
		for _, s := range servers {
			if s != nil {
				s.Close()
			}
		}
	})
	_, raftLog := coordtest.Logs()
	logs := make([]*syncbuf.Buffer, 4)
	start := func(i int) {
		t.Helper()
		logs[i] = &syncbuf.Buffer{}
		s, err := coordinator.New(coordinator.Config{DataDir: dirs[i], RaftAddr: "127.0.0.1:0", APIAddr: apis[i],
			BootstrapExpect: 3, Join: apis[:3], Secret: secret, Membership: gossip.NewStatic(), Planner: coordtest.LinePlanner,
			Timing: coordinator.LoopbackTiming, Logger: slog.New(slog.NewTextHandler(logs[i], nil)), RaftLog: raftLog})
		if err != nil {
			t.Fatalf("member %d: %v", i, err)
		}
		servers[i] = s
	}
	ctx := context.Background()
	self := func(i int) *api.Self {
		t.Helper()
		m, err := (&api.Client{Addrs: apis[i : i+1], Token: secret.Token()}).Self(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	cl := &api.Client{Addrs: apis, Token: secret.Token()}
	members := func(want int) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			ms, err := cl.Members(ctx)
			voters := 0
			for _, m := range ms {
				if m.Voter {
					voters++
				}
			}
			if err == nil && voters == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("members: %+v, %v; want %d voters", ms, err, want)
			}
		}
	}

	start(0)
	start(1)
	time.Sleep(3 * time.Second) // three rounds of finding each other
	for i := range 2 {
		if m := self(i); m.Clustered || servers[i].IsLeader() {
			t.Fatalf("member %d of 2 of the 3 expected: %+v, leader %v", i, m, servers[i].IsLeader())
		}
	}
	start(2)
	members(3)
	for i := range 3 {
		if m := self(i); !m.Clustered || m.ID != servers[i].ID() {
			t.Fatalf("member %d: %+v", i, m)
		}
	}

	start(3)
	members(4)
	leaders := 0
	for _, s := range servers {
		if s.IsLeader() {
			leaders++
		}
	}
	if leaders != 1 {
		t.Fatalf("%d leaders among the 4", leaders)
	}
	if l := logs[3].String(); !strings.Contains(l, "a member is in a cluster already: joining it") || strings.Contains(l, "bootstrapped") {
		t.Fatalf("the fourth member, the three in a cluster: it should join it, not bootstrap:\n%s", l)
	}

	bootstrapped := 0
	for i := range 3 {
		if strings.Contains(logs[i].String(), "bootstrap-expect: bootstrapped") {
			bootstrapped++
		}
	}
	if bootstrapped == 0 {
		t.Fatal("none of the three logged its bootstrap")
	}
	servers[1].Close()
	servers[1] = nil
	start(1)
	members(4)
	if m := self(1); !m.Clustered {
		t.Fatalf("member 1 restarted: %+v", m)
	}
}
