package gossip

import (
	"log"
	"strings"
	"testing"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/internal/clusterkey"
	"github.com/bertnode/bertnode/internal/syncbuf"
)

// patience bounds every wait: generous, since the machine may be loaded.
const patience = 30 * time.Second

func newKey(t *testing.T) []byte {
	t.Helper()
	s, err := clusterkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return s.Derive(clusterkey.Gossip)
}
func start(t *testing.T, name string, key []byte, meta Meta) *Gossip {
	t.Helper()
	logs := &syncbuf.Buffer{}
	g, err := Start(Config{Name: name, Bind: "127.0.0.1:0", Key: key, Meta: meta, Profile: ProfileLocal,
		Logger: log.New(logs, name+" ", log.Lmicroseconds)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		g.Shutdown()
		if t.Failed() {
			t.Logf("logs of %s:\n%s", name, logs)
		}
	})
	return g
}

func join(t *testing.T, g *Gossip, to *Gossip) {
	t.Helper()
	if n, err := g.Join([]string{to.Addr()}); n != 1 || err != nil {
		t.Fatalf("join %s: %d, %v", to.Addr(), n, err)
	}
}

func member(ms []Member, name string) (Member, bool) {
	for _, m := range ms {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

// waitFor returns once cond holds on g's members, waking only on g.Changes: if Changes
// failed to fire for a change the wait would time out.
func waitFor(t *testing.T, g *Gossip, what string, cond func([]Member) bool) []Member {
	t.Helper()
	timeout := time.After(patience)
	for {
		ms := g.Members()
		if cond(ms) {
			return ms
		}
		select {
		case <-g.Changes():
		case <-timeout:
			t.Fatalf("after %s, %s still does not see %s: %+v", patience, g.ml.LocalNode().Name, what, g.Members())
		}
	}
}

func healthIs(name string, h api.Health) func([]Member) bool {
	return func(ms []Member) bool { m, ok := member(ms, name); return ok && m.Health == h }
}

// pair starts a coordinator "a" and a node "b" with bMeta, b joined to a, and waits
// until a sees b alive.
func pair(t *testing.T, key []byte, bMeta Meta) (a, b *Gossip) {
	t.Helper()
	a = start(t, "a", key, Meta{Role: Coordinator})
	b = start(t, "b", key, bMeta)
	join(t, b, a)
	waitFor(t, a, "b alive", healthIs("b", api.Alive))
	return a, b
}

func TestJoinSeesEachOthersMeta(t *testing.T) {
	key := newKey(t)
	gs := []*Gossip{
		start(t, "c1", key, Meta{Role: Coordinator, API: "127.0.0.1:7001", Raft: "127.0.0.1:7002"}),
		start(t, "n1", key, Meta{Role: Worker, Ring: "127.0.0.1:7101", HTTP: "127.0.0.1:7102"}),
		start(t, "n2", key, Meta{Role: Worker, Ring: "127.0.0.1:7201", HTTP: "127.0.0.1:7202"}),
	}
	join(t, gs[1], gs[0])
	join(t, gs[2], gs[0])
	var want []Member
	for _, g := range gs {
		want = append(want, Member{Name: g.ml.LocalNode().Name, Addr: g.Addr(), Meta: g.local.meta, Health: api.Alive})
	}
	for _, g := range gs {
		waitFor(t, g, "all three alive with their meta", func(ms []Member) bool {
			if len(ms) != len(want) {
				return false
			}
			for i := range ms {
				if ms[i] != want[i] {
					return false
				}
			}
			return true
		})
	}
}

func TestSetMetaPropagates(t *testing.T) {
	key := newKey(t)
	a, b := pair(t, key, Meta{Role: Worker})
	m := Meta{Role: Worker, Ring: "127.0.0.1:9000", HTTP: "127.0.0.1:9001"}
	if err := b.SetMeta(m); err != nil {
		t.Fatal(err)
	}
	waitFor(t, a, "b's new meta", func(ms []Member) bool { got, _ := member(ms, "b"); return got.Meta == m })
	waitFor(t, b, "its own new meta", func(ms []Member) bool { got, _ := member(ms, "b"); return got.Meta == m })
}

func TestMetaTooLarge(t *testing.T) {
	key := newKey(t)
	big := Meta{Role: Worker, HTTP: strings.Repeat("x", 500)}
	if _, err := Start(Config{Name: "a", Bind: "127.0.0.1:0", Key: key, Meta: big, Profile: ProfileLocal}); err == nil || !strings.Contains(err.Error(), "512") {
		t.Fatalf("Start with %d-byte meta: %v", len(big.HTTP), err)
	}
	a := start(t, "a", key, Meta{Role: Worker})
	if err := a.SetMeta(big); err == nil || !strings.Contains(err.Error(), "512") {
		t.Fatalf("SetMeta too large: %v", err)
	}
	if got, _ := member(a.Members(), "a"); got.Meta != (Meta{Role: Worker}) {
		t.Fatalf("a refused SetMeta changed the meta: %+v", got.Meta)
	}
}

func TestConfigErrors(t *testing.T) {
	key := newKey(t)
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Bind: "127.0.0.1:0", Key: key}, "Name"},
		{Config{Name: "a", Bind: "127.0.0.1:0", Key: key[:16]}, "16 bytes"},
		{Config{Name: "a", Bind: "127.0.0.1:0", Key: key, Profile: "wan"}, `"wan"`},
		{Config{Name: "a", Bind: "localhost:0", Key: key}, "IP address"},
		{Config{Name: "a", Bind: "127.0.0.1", Key: key}, "Bind"},
		{Config{Name: "a", Bind: "127.0.0.1:0", Advertise: "127.0.0.1:x", Key: key}, "Advertise"},
	} {
		if g, err := Start(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			if g != nil {
				g.Shutdown()
			}
			t.Errorf("Start(%+v): %v, want an error naming %s", c.cfg, err, c.want)
		}
	}
}

func TestShutdownIsSuspectThenDead(t *testing.T) {
	key := newKey(t)
	a := start(t, "a", key, Meta{Role: Coordinator})
	b := start(t, "b", key, Meta{Role: Worker})
	c := start(t, "c", key, Meta{Role: Worker})
	join(t, b, a)
	join(t, c, a)
	for _, g := range []*Gossip{a, b} {
		waitFor(t, g, "c alive", healthIs("c", api.Alive))
	}
	stopped := time.Now()
	c.Shutdown()
	var suspectAt time.Duration
	waitFor(t, a, "c dead", func(ms []Member) bool {
		m, _ := member(ms, "c")
		if m.Health == api.Suspect && suspectAt == 0 {
			suspectAt = time.Since(stopped)
		}
		return m.Health == api.Dead
	})
	deadAt := time.Since(stopped)
	t.Logf("after Shutdown, c was suspect at %v and dead at %v", suspectAt, deadAt)
	if suspectAt == 0 {
		t.Error("a never saw c suspect before dead")
	}
	// The local profile's bound is ~2.5 s; allow for a loaded machine.
	if deadAt > 15*time.Second {
		t.Errorf("c found dead after %v", deadAt)
	}
	waitFor(t, b, "c dead", healthIs("c", api.Dead))
	if m, _ := member(a.Members(), "b"); m.Health != api.Alive {
		t.Errorf("b is %s", m.Health)
	}
}

func TestLeaveIsLeft(t *testing.T) {
	key := newKey(t)
	a, b := pair(t, key, Meta{Role: Worker, Ring: "127.0.0.1:1"})
	if err := b.Leave(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	ms := waitFor(t, a, "b left", func(ms []Member) bool { m, _ := member(ms, "b"); return m.Health == api.Left || m.Health == api.Dead })
	if m, _ := member(ms, "b"); m.Health != api.Left || m.Meta != (Meta{Role: Worker, Ring: "127.0.0.1:1"}) {
		t.Fatalf("b after Leave: %+v", m)
	}
	waitFor(t, b, "itself left", healthIs("b", api.Left))
	b.Shutdown()
	if err := b.Leave(time.Second); err == nil {
		t.Error("Leave after Shutdown: no error")
	}
}

func TestWrongKeyCannotJoin(t *testing.T) {
	key := newKey(t)
	a, b := pair(t, key, Meta{Role: Worker})

	x := start(t, "x", newKey(t), Meta{Role: Worker})
	if n, err := x.Join([]string{a.Addr(), b.Addr()}); n != 0 || err == nil {
		t.Fatalf("a member with another key joined %d members (%v)", n, err)
	}
	// x also pings and gossips at a and b on its own; give that a few probe rounds.
	deadline := time.After(3 * time.Second)
	for watching := true; watching; {
		for _, g := range []*Gossip{a, b} {
			if _, ok := member(g.Members(), "x"); ok {
				t.Fatalf("%s lists x: %+v", g.ml.LocalNode().Name, g.Members())
			}
		}
		select {
		case <-a.Changes():
		case <-b.Changes():
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			watching = false
		}
	}
	if ms := x.Members(); len(ms) != 1 || ms[0].Name != "x" {
		t.Fatalf("x sees %+v", ms)
	}
}

func TestRestartedMemberComesBackAtItsNewAddress(t *testing.T) {
	key := newKey(t)
	a, b := pair(t, key, Meta{Role: Worker, Ring: "old"})
	oldAddr := b.Addr()
	b.Shutdown()
	waitFor(t, a, "b dead", healthIs("b", api.Dead))

	b2 := start(t, "b", key, Meta{Role: Worker, Ring: "new"})
	if b2.Addr() == oldAddr {
		t.Fatalf("restarted on the same address %s", oldAddr)
	}
	join(t, b2, a)
	want := Member{Name: "b", Addr: b2.Addr(), Meta: Meta{Role: Worker, Ring: "new"}, Health: api.Alive}
	waitFor(t, a, "b alive at "+b2.Addr(), func(ms []Member) bool { m, _ := member(ms, "b"); return m == want })
	waitFor(t, b2, "a alive", healthIs("a", api.Alive))
}
