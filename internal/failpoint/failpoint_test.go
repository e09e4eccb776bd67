package failpoint

import (
	"syscall"
	"testing"
	"time"
)

func TestPointsFireOnTheirHit(t *testing.T) {
	sigs := make(chan syscall.Signal, 10)
	kill = func(s syscall.Signal) { sigs <- s }
	defer Set("")
	if err := Set("a=kill@3, b=stop, c=kill-after:20ms"); err != nil {
		t.Fatal(err)
	}
	Hit("a")
	Hit("a")
	Hit("other")
	select {
	case s := <-sigs:
		t.Fatalf("signal %v before the third hit", s)
	default:
	}
	Hit("a")
	if s := <-sigs; s != syscall.SIGKILL {
		t.Fatalf("a sent %v", s)
	}
	Hit("a") // fires once
	Hit("b")
	if s := <-sigs; s != syscall.SIGSTOP {
		t.Fatalf("b sent %v", s)
	}
	start := time.Now()
	Hit("c")
	if s := <-sigs; s != syscall.SIGKILL || time.Since(start) < 20*time.Millisecond {
		t.Fatalf("c sent %v after %v", s, time.Since(start))
	}
	select {
	case s := <-sigs:
		t.Fatalf("extra signal %v", s)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestBadSpecs(t *testing.T) {
	for _, bad := range []string{"a", "=kill", "a=explode", "a=kill@0", "a=kill@x", "a=kill-after:soon"} {
		if err := Set(bad); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
	Set("")
}
