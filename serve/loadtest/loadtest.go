// Package loadtest measures an HTTP endpoint under load: closed-loop clients, each
// sending its next request as soon as its last is answered, and the throughput and
// latency percentiles of what they got; and, for `bertnode bench serve`, the server
// with batching off and on side by side with the model's raw forward.
package loadtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Options are one load.
type Options struct {
	URL         string   // the endpoint, POSTed to
	Bodies      [][]byte // request bodies (JSON), taken in turn
	Concurrency int      // clients
	// Warmup is sent but not counted; then Duration is measured. A warmup longer than a
	// request's latency makes the measured window a steady state.
	Warmup, Duration time.Duration
	// Window, when set, is called as the measured window begins (true) and ends.
	Window func(begin bool)
}

// Result is what the clients got in the measured window: the requests answered 200
// within it (sent then or during the warmup), and their latencies.
type Result struct {
	Concurrency int
	Requests    int
	Errors      int     // other answers and transport errors
	FirstError  string  // the first of them
	Throughput  float64 // requests answered per second
	P50, P99    time.Duration
	// CPU is the CPU time this process (server and clients, when in one process) used
	// in the measured window: a cost that other load on the machine does not change.
	CPU time.Duration
	// ClientCPU is the clients' when they ran in another process (RunIn); CPU is then
	// the server's alone.
	ClientCPU time.Duration `json:",omitempty"`
}

// PerCPUSecond is the requests answered per second of CPU time.
func (r Result) PerCPUSecond() float64 { return float64(r.Requests) / r.CPU.Seconds() }

// clientCores is the cores the clients used over a load of duration d, when they ran in
// another process; "-" when they ran in this one (their CPU is then in PerCPUSecond).
func (r Result) clientCores(d time.Duration) string {
	if r.ClientCPU <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", r.ClientCPU.Seconds()/d.Seconds())
}

// CPUTime is the CPU time this process has used, all threads, user and system.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ThreadCPU is the CPU time the calling thread has used; the caller is locked to it.
func ThreadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// Run applies one load and waits for every request sent to be answered, so that the
// server is idle again when it returns.
func Run(ctx context.Context, o Options) (Result, error) {
	if o.Concurrency < 1 || len(o.Bodies) == 0 || o.Duration <= 0 {
		return Result{}, fmt.Errorf("loadtest: want clients, bodies and a duration; got %d, %d, %v", o.Concurrency, len(o.Bodies), o.Duration)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.Concurrency, DisableCompression: true}}
	defer client.CloseIdleConnections()
	from := time.Now().Add(o.Warmup)
	to := from.Add(o.Duration)
	var (
		next atomic.Int64
		mu   sync.Mutex
		res  = Result{Concurrency: o.Concurrency}
		lat  []time.Duration
		wg   sync.WaitGroup
	)
	cpu := make(chan time.Duration, 1)
	go func() {
		time.Sleep(time.Until(from))
		if o.Window != nil {
			o.Window(true)
		}
		start := CPUTime()
		time.Sleep(time.Until(to))
		cpu <- CPUTime() - start
		if o.Window != nil {
			o.Window(false)
		}
	}()
	for range o.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				sent := time.Now()
				if !sent.Before(to) {
					return
				}
				err := post(ctx, client, o.URL, o.Bodies[next.Add(1)%int64(len(o.Bodies))])
				done := time.Now()
				if done.Before(from) || done.After(to) {
					continue
				}
				mu.Lock()
				if err != nil {
					if res.Errors++; res.FirstError == "" {
						res.FirstError = err.Error()
					}
				} else {
					res.Requests++
					lat = append(lat, done.Sub(sent))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return res, err
	}
	res.CPU = <-cpu
	res.Throughput = float64(res.Requests) / o.Duration.Seconds()
	res.P50, res.P99 = percentile(lat, 0.50), percentile(lat, 0.99)
	return res, nil
}

// post sends one request; any answer but 200 is an error.
func post(ctx context.Context, c *http.Client, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%d %.200s", resp.StatusCode, b)
	}
	return nil
}

// percentile is the q-quantile of lat (nearest rank); 0 when empty.
func percentile(lat []time.Duration, q float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(lat))
	return s[max(int(math.Ceil(q*float64(len(s))))-1, 0)]
}
