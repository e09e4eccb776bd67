package gossip

import (
	"io"
	"log"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/bertnode/bertnode/api"
)

func node(t *testing.T, name string, port uint16, m Meta, leaving bool) *memberlist.Node {
	t.Helper()
	b, err := encodeMeta(m, leaving)
	if err != nil {
		t.Fatal(err)
	}
	return &memberlist.Node{Name: name, Addr: net.IPv4(127, 0, 0, 1), Port: port, Meta: b}
}

func signalled(v *view) bool {
	select {
	case <-v.changes:
		return true
	default:
		return false
	}
}

func TestViewChecksMakeSuspectAndAlive(t *testing.T) {
	v := newView(log.New(io.Discard, "", 0), time.Minute)
	v.NotifyJoin(node(t, "self", 1, Meta{Role: Worker}, false))
	v.NotifyJoin(node(t, "b", 2, Meta{Role: Worker}, false))
	signalled(v)
	check := v.toCheck("self")
	if len(check) != 1 || check[0].Name != "b" {
		t.Fatalf("toCheck = %+v", check)
	}
	b := check[0]
	v.checked(b, false)
	if signalled(v) || v.list()[0].Health != api.Alive {
		t.Fatal("one miss made b suspect")
	}
	v.checked(b, false)
	if !signalled(v) || v.list()[0].Health != api.Suspect {
		t.Fatalf("two misses: %+v", v.list())
	}
	v.checked(b, true)
	if !signalled(v) || v.list()[0].Health != api.Alive {
		t.Fatalf("an answer: %+v", v.list())
	}
	// An answer resets the count: one more miss is not enough.
	v.checked(b, false)
	if v.list()[0].Health != api.Alive {
		t.Fatal("misses counted across an answer")
	}

	// A check of an old address, or of a member memberlist declared dead since, is void.
	v.NotifyJoin(node(t, "b", 3, Meta{Role: Worker}, false))
	v.checked(b, false)
	v.checked(b, false)
	if v.list()[0].Health != api.Alive {
		t.Fatal("misses at b's old address made it suspect")
	}
	v.NotifyLeave(node(t, "b", 3, Meta{Role: Worker}, false))
	b = v.list()[0]
	v.checked(b, true)
	if v.list()[0].Health != api.Dead {
		t.Fatal("a late answer revived a dead member")
	}
	if len(v.toCheck("self")) != 0 {
		t.Fatal("a dead member is still checked")
	}
}

func TestViewLeaveAndForget(t *testing.T) {
	v := newView(log.New(io.Discard, "", 0), time.Minute)
	m := Meta{Role: Worker, Ring: "r"}
	v.NotifyJoin(node(t, "dies", 1, m, false))
	v.NotifyJoin(node(t, "leaves", 2, m, false))
	signalled(v)

	// Marking itself leaving changes nothing a consumer sees.
	v.NotifyUpdate(node(t, "leaves", 2, m, true))
	if signalled(v) {
		t.Fatal("the leaving mark signalled a change")
	}
	v.NotifyLeave(node(t, "dies", 1, m, false))
	v.NotifyLeave(node(t, "leaves", 2, m, true))
	if !signalled(v) {
		t.Fatal("no change signalled")
	}
	ms := v.list()
	if ms[0].Health != api.Dead || ms[1].Health != api.Left || ms[1].Meta != m {
		t.Fatalf("after the departures: %+v", ms)
	}

	v.forget(time.Now())
	if len(v.list()) != 2 || signalled(v) {
		t.Fatal("forgot too early")
	}
	v.forget(time.Now().Add(2 * time.Minute))
	if len(v.list()) != 0 || !signalled(v) {
		t.Fatalf("not forgotten: %+v", v.list())
	}
}

func TestViewUnreadableMeta(t *testing.T) {
	v := newView(log.New(io.Discard, "", 0), time.Minute)
	v.NotifyJoin(&memberlist.Node{Name: "odd", Addr: net.IPv4(127, 0, 0, 1), Port: 1, Meta: []byte("{")})
	if ms := v.list(); len(ms) != 1 || ms[0].Health != api.Alive || ms[0].Meta != (Meta{}) {
		t.Fatalf("%+v", ms)
	}
}
