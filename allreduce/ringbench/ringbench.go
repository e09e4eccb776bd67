// Package ringbench measures allreduce rings the way a training job uses them: one
// process per rank, over loopback or given addresses, reducing realistic gradients.
// bertnode bench allreduce is its command line.
package ringbench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bertnode/bertnode/allreduce"
)

// Options describe one benchmark run.
type Options struct {
	Ranks    int
	Sizes    []int64 // buffer sizes in bytes; ignored for Data "bert" and "file"
	Codec    allreduce.Codec
	PowerSGD allreduce.PowerSGDParams
	// Data is "random" (dense normal values), "bert" (SyntheticBERTGradient, ~420 MiB)
	// or "file" (GradFiles, see LoadGradFile).
	Data      string
	GradFiles []string
	Seed      uint64
	Iters     int
	Warmup    int
	Timeout   time.Duration
	// BucketElems and ChunkElems override the ring's defaults when non-zero.
	BucketElems int
	ChunkElems  int
	// Peers and Rank run a single rank of a ring whose other ranks are started
	// elsewhere with the same options (the cluster secret comes from SecretEnv).
	Peers []string
	Rank  int
	// CPUProfile, when set, makes each rank write a CPU profile to CPUProfile.rank<i>.
	CPUProfile string
}

// SecretEnv holds the cluster secret when ranks are started by hand (Options.Peers).
const SecretEnv = "BERTNODE_RING_SECRET"

// workerEnv carries a workerSpec to the rank processes RunLocal starts.
const workerEnv = "BERTNODE_RING_WORKER"

type workerSpec struct {
	Options
	Secret []byte
}

// Gloo's bus bandwidth for a 64 MiB all-reduce over loopback on the project's 2-core
// machine (torch.distributed, measured when the work was specified), in GB/s.
var glooBusBW = map[int]float64{2: 0.60, 4: 0.30}

// sample is one rank's timing of one iteration, as a worker prints it.
type sample struct {
	Rank    int     `json:"rank"`
	Size    int64   `json:"size"`
	Iter    int     `json:"iter"`
	Seconds float64 `json:"seconds"`
	Wire    int64   `json:"wire"`
	Logical int64   `json:"logical"`
	CPU     float64 `json:"cpu"` // CPU seconds the rank process spent, user and system
}

// Result is one row of the report.
type Result struct {
	Data          string  `json:"data"`
	Codec         string  `json:"codec"`
	Ranks         int     `json:"ranks"`
	SizeBytes     int64   `json:"size_bytes"`
	Iters         int     `json:"iters"`
	MedianSeconds float64 `json:"median_s"`
	AlgBW         float64 `json:"algbw_GBps"` // size / median time
	BusBW         float64 `json:"busbw_GBps"` // algbw * 2(n-1)/n
	WirePerRank   int64   `json:"wire_bytes_per_rank"`
	CPUPerRank    float64 `json:"cpu_s_per_rank"` // median CPU time of a rank process per operation
	Ratio         float64 `json:"compression_ratio"`
	GlooBusBW     float64 `json:"gloo_busbw_GBps,omitempty"`
	VsGloo        float64 `json:"vs_gloo,omitempty"`
}

// IsWorker reports whether this process was started by RunLocal as a rank.
func IsWorker() bool { return os.Getenv(workerEnv) != "" }

// Worker runs the rank described by the environment RunLocal set up, on the listener
// inherited as file descriptor 3, printing its samples as JSON lines to out.
func Worker(ctx context.Context, out io.Writer) error {
	var spec workerSpec
	if err := json.Unmarshal([]byte(os.Getenv(workerEnv)), &spec); err != nil {
		return fmt.Errorf("ringbench: %s: %w", workerEnv, err)
	}
	ln, err := InheritedListener()
	if err != nil {
		return fmt.Errorf("ringbench: %w", err)
	}
	defer ln.Close()
	return runRank(ctx, spec, ln, out)
}

// Run measures: all ranks as child processes of self (argv of a command that calls
// Worker when IsWorker) over loopback, or, with o.Peers, this one rank. It prints a
// table and JSON lines to out.
func Run(ctx context.Context, o Options, self []string, out io.Writer) ([]Result, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	var samples []sample
	var err error
	if len(o.Peers) > 0 {
		samples, err = runGiven(ctx, o)
	} else {
		samples, err = runLocal(ctx, o, self)
	}
	if err != nil {
		return nil, err
	}
	res := summarise(o, samples)
	return res, Report(out, res)
}

func (o *Options) check() error {
	switch {
	case len(o.Peers) == 0 && (o.Ranks < 2 || o.Ranks > allreduce.MaxRanks):
		return fmt.Errorf("ringbench: --ranks %d, want 2 to %d", o.Ranks, allreduce.MaxRanks)
	case len(o.Peers) > 0 && (o.Rank < 0 || o.Rank >= len(o.Peers)):
		return fmt.Errorf("ringbench: --rank %d out of range for %d peers", o.Rank, len(o.Peers))
	case o.Iters < 1:
		return fmt.Errorf("ringbench: --iters %d, want >= 1", o.Iters)
	case o.Data == "file" && len(o.GradFiles) == 0:
		return errors.New("ringbench: data \"file\" needs --grad-file")
	case o.Data == "random" && len(o.Sizes) == 0:
		return errors.New("ringbench: no --sizes")
	case o.Data != "random" && o.Data != "bert" && o.Data != "file":
		return fmt.Errorf("ringbench: data %q, want random, bert or file", o.Data)
	}
	if len(o.Peers) > 0 {
		o.Ranks = len(o.Peers)
	}
	return nil
}

func runGiven(ctx context.Context, o Options) ([]sample, error) {
	secret := os.Getenv(SecretEnv)
	if len(secret) < 16 {
		return nil, fmt.Errorf("ringbench: set %s to the cluster secret (16 characters or more) on every rank", SecretEnv)
	}
	ln, err := net.Listen("tcp", o.Peers[o.Rank])
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	pr, pw := io.Pipe()
	var samples []sample
	var readErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		samples, readErr = readSamples(pr)
	}()
	err = runRank(ctx, workerSpec{Options: o, Secret: []byte(secret)}, ln.(*net.TCPListener), pw)
	pw.CloseWithError(err)
	<-done
	if err == nil {
		err = readErr
	}
	return samples, err
}

func runLocal(ctx context.Context, o Options, self []string) ([]sample, error) {
	secret := make([]byte, 32)
	rand.Read(secret)
	var (
		mu      sync.Mutex
		samples []sample
	)
	err := Launch(ctx, o.Ranks, self, workerEnv, func(rank int, addrs []string) (string, error) {
		o := o
		o.Peers, o.Rank = addrs, rank
		spec, err := json.Marshal(workerSpec{Options: o, Secret: []byte(hex.EncodeToString(secret))})
		return string(spec), err
	}, func(_ int, stdout io.Reader) error {
		s, err := readSamples(stdout)
		mu.Lock()
		samples = append(samples, s...)
		mu.Unlock()
		return err
	})
	return samples, err
}

func readSamples(r io.Reader) ([]sample, error) {
	var out []sample
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		var s sample
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			return out, fmt.Errorf("worker output line %d: %w: %q", line, err, sc.Text())
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

// runRank is one rank: build the ring, then for every size reduce Warmup+Iters times,
// refilling the buffer from the rank's pristine gradient before each (untimed) and
// lining the ranks up with a one-value all-reduce, printing a sample per timed
// iteration.
func runRank(ctx context.Context, spec workerSpec, ln *net.TCPListener, out io.Writer) error {
	o := spec.Options
	ring, err := allreduce.New(ctx, allreduce.Config{Peers: o.Peers, Rank: o.Rank, Secret: spec.Secret,
		Listener: ln, Codec: o.Codec, PowerSGD: o.PowerSGD, Timeout: o.Timeout,
		BucketElems: o.BucketElems, ChunkElems: o.ChunkElems})
	if err != nil {
		return err
	}
	defer ring.Close()
	stop, err := Profile(o.CPUProfile, o.Rank)
	if err != nil {
		return err
	}
	defer stop()
	enc := json.NewEncoder(out)
	one := make([]float32, 1)
	for _, size := range o.sizes() {
		src, err := o.gradient(size, o.Rank)
		if err != nil {
			return err
		}
		buf := make([]float32, len(src))
		for it := -o.Warmup; it < o.Iters; it++ {
			copy(buf, src)
			if err := ring.AllReduce(ctx, one, allreduce.OpSum); err != nil {
				return err
			}
			before, start, cpu0 := ring.Stats(), time.Now(), CPUTime()
			if err := ring.AllReduce(ctx, buf, allreduce.OpAvg); err != nil {
				return err
			}
			took, after, cpu := time.Since(start), ring.Stats(), CPUTime()-cpu0
			if it < 0 {
				continue
			}
			if err := enc.Encode(sample{Rank: o.Rank, Size: int64(4 * len(buf)), Iter: it, Seconds: took.Seconds(),
				Wire: after.WireBytes - before.WireBytes, Logical: after.LogicalBytes - before.LogicalBytes,
				CPU: cpu.Seconds()}); err != nil {
				return err
			}
		}
	}
	return nil
}

// sizes lists the buffer sizes in bytes; the data modes with a natural size have one.
func (o *Options) sizes() []int64 {
	switch o.Data {
	case "bert":
		return []int64{4 * int64(BERTBaseParams())}
	case "file":
		return []int64{0} // whatever the file holds
	}
	return o.Sizes
}

func (o *Options) gradient(size int64, rank int) ([]float32, error) {
	switch o.Data {
	case "bert":
		return SyntheticBERTGradient(rank, o.Seed), nil
	case "file":
		return LoadGradFile(o.GradFiles, rank, o.Ranks, o.Seed)
	}
	return RandomGradient(int(size/4), rank, o.Seed), nil
}

// summarise takes, per size and iteration, the slowest rank's time (the ring is as fast
// as its slowest member), and reports the median over iterations.
func summarise(o Options, samples []sample) []Result {
	bySize := map[int64]map[int]float64{}
	cpus := map[int64][]float64{}
	wire, logical, count := map[int64]int64{}, map[int64]int64{}, map[int64]int64{}
	var sizes []int64
	for _, s := range samples {
		if bySize[s.Size] == nil {
			bySize[s.Size] = map[int]float64{}
			sizes = append(sizes, s.Size)
		}
		bySize[s.Size][s.Iter] = max(bySize[s.Size][s.Iter], s.Seconds)
		cpus[s.Size] = append(cpus[s.Size], s.CPU)
		wire[s.Size] += s.Wire
		logical[s.Size] += s.Logical
		count[s.Size]++
	}
	slices.Sort(sizes)
	var res []Result
	n := float64(o.Ranks)
	for _, size := range sizes {
		var times []float64
		for _, t := range bySize[size] {
			times = append(times, t)
		}
		med := Median(times)
		r := Result{Data: o.Data, Codec: o.Codec.String(), Ranks: o.Ranks, SizeBytes: size, Iters: len(times),
			MedianSeconds: med, AlgBW: float64(size) / med / 1e9, WirePerRank: wire[size] / count[size],
			CPUPerRank: Median(cpus[size]), Ratio: 1}
		r.BusBW = r.AlgBW * 2 * (n - 1) / n
		if wire[size] > 0 {
			r.Ratio = float64(logical[size]) / float64(wire[size])
		}
		if g, ok := glooBusBW[o.Ranks]; ok {
			r.GlooBusBW, r.VsGloo = g, r.BusBW/g
		}
		res = append(res, r)
	}
	return res
}

// Profile starts a CPU profile of this rank process in path.rank<i> when path is not
// empty; stop ends it.
func Profile(path string, rank int) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path + ".rank" + strconv.Itoa(rank))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// Median is the median of v (0 when empty), which it leaves as it is.
func Median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 0 {
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return v[len(v)/2]
}

// CPUTime is the CPU time this process has spent, user and system, all threads.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Report prints the table, then one JSON line per row.
func Report(w io.Writer, res []Result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%-6s %-8s %5s %9s %9s %10s %10s %11s %7s %9s %11s %7s\n", "data", "codec", "ranks", "size",
		"median_ms", "algbw_GB/s", "busbw_GB/s", "wire_MiB/rk", "ratio", "cpu_ms/rk", "gloo_busbw*", "vs_gloo")
	for _, r := range res {
		gloo, vs := "-", "-"
		if r.GlooBusBW > 0 {
			gloo, vs = fmt.Sprintf("%.2f", r.GlooBusBW), fmt.Sprintf("%.2fx", r.VsGloo)
		}
		fmt.Fprintf(&b, "%-6s %-8s %5d %9s %9.1f %10.3f %10.3f %11.1f %7.2f %9.1f %11s %7s\n", r.Data, r.Codec, r.Ranks,
			FormatSize(r.SizeBytes), r.MedianSeconds*1e3, r.AlgBW, r.BusBW, float64(r.WirePerRank)/(1<<20), r.Ratio,
			r.CPUPerRank*1e3, gloo, vs)
	}
	b.WriteString("* gloo: torch.distributed all-reduce, 64 MiB over loopback on the same 2-core machine (reference figure)\n")
	for _, r := range res {
		j, _ := json.Marshal(r)
		b.Write(j)
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// ParseSize reads 16M, 420MiB, 1G, 4096 (bytes); K, M, G are binary.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B"), "I")
	mult := int64(1)
	switch {
	case strings.HasSuffix(t, "K"):
		mult, t = 1<<10, t[:len(t)-1]
	case strings.HasSuffix(t, "M"):
		mult, t = 1<<20, t[:len(t)-1]
	case strings.HasSuffix(t, "G"):
		mult, t = 1<<30, t[:len(t)-1]
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("size %q: want a number of bytes with an optional K, M or G suffix", s)
	}
	n := int64(v * float64(mult))
	if n%4 != 0 {
		return 0, fmt.Errorf("size %q: %d bytes is not a whole number of float32", s, n)
	}
	return n, nil
}

// FormatSize prints bytes as the largest binary unit that keeps a short number.
func FormatSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.4gGiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.4gMiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.4gKiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}
