package loadtest

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestMain plays `bertnode bench load --json` when RunIn starts this test binary as the
// clients' process.
func TestMain(m *testing.M) {
	if os.Getenv("LOADTEST_CHILD") == "" {
		os.Exit(m.Run())
	}
	var o Options
	var bodies string
	fs := flag.NewFlagSet("child", flag.ExitOnError)
	fs.Bool("json", true, "")
	fs.StringVar(&o.URL, "url", "", "")
	fs.StringVar(&bodies, "bodies", "", "")
	fs.IntVar(&o.Concurrency, "concurrency", 0, "")
	fs.DurationVar(&o.Warmup, "warmup", 0, "")
	fs.DurationVar(&o.Duration, "duration", 0, "")
	fs.Parse(os.Args[1:])
	var err error
	if o.Bodies, err = ReadBodies(bodies); err == nil {
		err = Child(context.Background(), o, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// RunIn: the clients run in another process, which gets every body in turn; CPU is
// this process's time in the child's window (the server's work), ClientCPU the child's.
func TestRunInAnotherProcess(t *testing.T) {
	var got [3]atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b [16]byte
		n, _ := r.Body.Read(b[:])
		switch string(b[:n]) {
		case `{"n":0}`, `{"n":1}`, `{"n":2}`:
			got[b[5]-'0'].Add(1)
		default:
			http.Error(w, "unknown body "+string(b[:n]), http.StatusBadRequest)
		}
		for end := time.Now().Add(2 * time.Millisecond); time.Now().Before(end); {
		} // the server's CPU time
	})}
	go srv.Serve(ln)
	defer srv.Close()
	t.Setenv("LOADTEST_CHILD", "1")
	o := Options{URL: "http://" + ln.Addr().String(), Bodies: [][]byte{[]byte(`{"n":0}`), []byte(`{"n":1}`), []byte(`{"n":2}`)},
		Concurrency: 3, Warmup: 100 * time.Millisecond, Duration: 500 * time.Millisecond}
	res, err := RunIn(context.Background(), []string{os.Args[0]}, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Requests == 0 || res.Concurrency != 3 {
		t.Fatalf("%+v", res)
	}
	for i := range got {
		if got[i].Load() == 0 {
			t.Errorf("body %d was never sent", i)
		}
	}
	// The handler spins 2 ms a request: this process spent about that per answer (the
	// window's edges cut some requests), the clients far less (even built with -race).
	if min := time.Duration(res.Requests) * time.Millisecond; res.CPU < min || res.ClientCPU <= 0 || res.ClientCPU > res.CPU {
		t.Errorf("CPU %v for %d answers (want at least %v), clients' CPU %v", res.CPU, res.Requests, min, res.ClientCPU)
	}
	if _, err := RunIn(context.Background(), []string{os.Args[0]}, Options{URL: o.URL, Bodies: [][]byte{[]byte("a\nb")}, Concurrency: 1, Duration: time.Second}); err == nil || !strings.Contains(err.Error(), "line break") {
		t.Errorf("a body with a line break: %v", err)
	}
}
