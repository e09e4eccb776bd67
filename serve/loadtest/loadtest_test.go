package loadtest

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Run counts the 200 answers in the measured window, reports the others as errors, and
// returns only when no request is left in flight.
func TestRunCountsAnswersAndErrors(t *testing.T) {
	var inflight, served atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inflight.Add(1)
		defer inflight.Add(-1)
		served.Add(1)
		time.Sleep(2 * time.Millisecond)
		var b [16]byte
		n, _ := r.Body.Read(b[:])
		if strings.Contains(string(b[:n]), "bad") {
			http.Error(w, "no good", http.StatusTeapot)
		}
	})}
	go srv.Serve(ln)
	defer srv.Close()
	res, err := Run(context.Background(), Options{URL: "http://" + ln.Addr().String(), Bodies: [][]byte{[]byte("ok"), []byte("ok"), []byte("bad")},
		Concurrency: 4, Warmup: 100 * time.Millisecond, Duration: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if n := inflight.Load(); n != 0 {
		t.Errorf("%d requests still in flight after Run", n)
	}
	total := res.Requests + res.Errors
	if res.Requests == 0 || res.Errors == 0 || int64(total) >= served.Load() || !strings.Contains(res.FirstError, "418 no good") {
		t.Errorf("%+v: want some answers and some errors, fewer than the %d served (the warmup's left out)", res, served.Load())
	}
	if res.Requests < res.Errors || res.Requests > 3*res.Errors {
		t.Errorf("%d answers and %d errors: the bodies were not taken in turn", res.Requests, res.Errors)
	}
	if res.Throughput != float64(res.Requests)/0.5 || res.P50 < 2*time.Millisecond || res.P99 < res.P50 || res.CPU <= 0 || res.Concurrency != 4 {
		t.Errorf("%+v", res)
	}
}

func TestPercentile(t *testing.T) {
	var lat []time.Duration
	for i := 100; i >= 1; i-- {
		lat = append(lat, time.Duration(i))
	}
	if p50, p99, p100 := percentile(lat, 0.5), percentile(lat, 0.99), percentile(lat, 1); p50 != 50 || p99 != 99 || p100 != 100 {
		t.Errorf("p50 %v p99 %v p100 %v", p50, p99, p100)
	}
	if percentile(nil, 0.5) != 0 || percentile(lat[:1], 0.99) != 100 {
		t.Error("empty or single")
	}
}
