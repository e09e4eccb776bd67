// Package ringbench measures allreduce rings the way a training job uses them: one
// process per rank, over loopback, over rate-limited links between network
// namespaces, or on given addresses, reducing realistic gradients. bertnode bench
// allreduce is its command line.
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
	"os/exec"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bertnode/bertnode/allreduce"
	"github.com/bertnode/bertnode/internal/netlab"
)

// Options describe one benchmark run.
type Options struct {
	Ranks int
	Sizes []int64 // buffer sizes in bytes; ignored for Data "bert" and "file"
	// Codecs are measured in the same run, each on its own ring, taking turns
	// iteration by iteration so that they share whatever else the machine is doing;
	// each row is compared with codec none's if it is among them. Empty: none.
	Codecs []allreduce.Codec
	// Transports are crossed with Codecs, each pair on its own ring taking its turn:
	// "auto" lets the ring choose (shared memory when the ranks share a host and
	// namespace, for codec none), "shm" requires shared memory (the run fails if the
	// ring declines it), "tcp" forbids it. Empty: auto.
	Transports []string
	PowerSGD   allreduce.PowerSGDParams
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
	// NetNS runs each local rank in its own network namespace (internal/netlab),
	// the namespaces joined by veth pairs to one bridge, instead of on loopback.
	// LinkRate, when set, caps each rank's link in each direction with tc tbf, with a
	// LinkBurst-byte bucket (0: netlab's default, max(128 KiB, 1 ms at the rate)).
	NetNS     bool
	LinkRate  netlab.Rate
	LinkBurst int
	// RawTCP adds the row raw-tcp, taking its turn with the codecs: plain TCP streams
	// in the ring's shape carrying codec none's bytes (rawRing), the ceiling the links
	// and the machine set. Local runs only.
	RawTCP bool
}

// SecretEnv holds the cluster secret when ranks are started by hand (Options.Peers).
const SecretEnv = "BERTNODE_RING_SECRET"

// workerEnv carries a workerSpec to the rank processes RunLocal starts.
const workerEnv = "BERTNODE_RING_WORKER"

type workerSpec struct {
	Options
	Secret []byte
	Rings  [][]string // the peers of the ring of each variant, then of the raw TCP ring
}

// sample is one rank's timing of one iteration, as a worker prints it.
type sample struct {
	Rank    int    `json:"rank"`
	Codec   string `json:"codec"`
	Variant int    `json:"variant"` // index in Options.variants
	// Transport is the one the ring used ("tcp" or "shm"); Note why not shm.
	Transport string  `json:"transport"`
	Note      string  `json:"note,omitempty"`
	Size      int64   `json:"size"`
	Iter      int     `json:"iter"`
	Seconds   float64 `json:"seconds"`
	Wire      int64   `json:"wire"`
	Logical   int64   `json:"logical"`
	CPU       float64 `json:"cpu"`  // CPU seconds the rank process spent, user and system
	Wait      float64 `json:"wait"` // seconds its threads were runnable but waiting for a CPU
}

// Result is one row of the report.
type Result struct {
	Data      string `json:"data"`
	Codec     string `json:"codec"`
	Transport string `json:"transport"` // the one the ring used: tcp or shm
	// TransportNote says why a ring that could have used shared memory did not.
	TransportNote string  `json:"transport_note,omitempty"`
	Ranks         int     `json:"ranks"`
	SizeBytes     int64   `json:"size_bytes"`
	Iters         int     `json:"iters"`
	MedianSeconds float64 `json:"median_s"`
	AlgBW         float64 `json:"algbw_GBps"` // size / median time
	// BusBW is algbw * 2(n-1)/n: with a codec, the effective busbw, counting the
	// values reduced rather than the bytes sent.
	BusBW float64 `json:"busbw_GBps"`
	// WireBusBW is the bytes a rank put on the wire / median time: what the link
	// carried; for codec none it is BusBW plus the frame headers (0.014%).
	WireBusBW   float64 `json:"wire_busbw_GBps"`
	WirePerRank int64   `json:"wire_bytes_per_rank"`
	CPUPerRank  float64 `json:"cpu_s_per_rank"` // median CPU time of a rank process per operation
	// WaitPerRank is the median time per operation that a rank process's threads
	// were ready to run but waited for a CPU (schedstat run delay): what other work on
	// the machine took from it. Near the operation's time, the rank was CPU-starved.
	WaitPerRank float64 `json:"cpu_wait_s_per_rank"`
	Ratio       float64 `json:"compression_ratio"`
	// VsNone is BusBW / codec none's BusBW, for the same data, ranks, size and
	// requested transport in the
	// same run.
	VsNone float64 `json:"vs_none,omitempty"`
	// Link is the rate each rank's link was capped at, LinkGBps the same in GB/s and
	// LinkUse WireBusBW / LinkGBps.
	Link     string  `json:"link,omitempty"`
	LinkGBps float64 `json:"link_GBps,omitempty"`
	LinkUse  float64 `json:"link_use,omitempty"`
	Load     float64 `json:"load_avg"` // the machine's 1-minute load average when the run ended
}

// IsWorker reports whether this process was started by RunLocal as a rank.
func IsWorker() bool { return os.Getenv(workerEnv) != "" }

// Worker runs the rank described by the environment RunLocal set up, on the listeners
// inherited as file descriptors 3, 4, ... (one per codec), printing its samples as
// JSON lines to out.
func Worker(ctx context.Context, out io.Writer) error {
	var spec workerSpec
	if err := json.Unmarshal([]byte(os.Getenv(workerEnv)), &spec); err != nil {
		return fmt.Errorf("ringbench: %s: %w", workerEnv, err)
	}
	lns, err := InheritedListeners(len(spec.Rings))
	if err != nil {
		return fmt.Errorf("ringbench: %w", err)
	}
	for _, ln := range lns {
		defer ln.Close()
	}
	return runRank(ctx, spec, lns, out)
}

// Run measures: all ranks as child processes of self (argv of a command that calls
// Worker when IsWorker) over loopback or in network namespaces, or, with o.Peers,
// this one rank. It prints a table and JSON lines to out.
func Run(ctx context.Context, o Options, self []string, out io.Writer) (res []Result, err error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	var samples []sample
	if len(o.Peers) > 0 {
		samples, err = runGiven(ctx, o)
	} else {
		var hosts []*netlab.Host
		if o.NetNS {
			lab, h, err := rankHosts(o)
			if err != nil {
				return nil, err
			}
			defer func() { err = errors.Join(err, lab.Close()) }()
			hosts = h
		}
		samples, err = runLocal(ctx, o, self, hosts)
	}
	if err != nil {
		return nil, err
	}
	res = summarise(o, samples)
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
	case len(o.Peers) > 0 && len(o.Codecs) > 1:
		return errors.New("ringbench: one codec at a time with --peers")
	case len(o.Codecs)*max(1, len(o.Transports)) > 8:
		return fmt.Errorf("ringbench: %d codecs and %d transports, at most 8 rings in one run", len(o.Codecs), len(o.Transports))
	case len(o.Peers) > 0 && len(o.Transports) > 1:
		return errors.New("ringbench: one transport at a time with --peers")
	case len(o.Peers) > 0 && o.RawTCP:
		return errors.New("ringbench: the raw TCP baseline starts the ranks here; it does not go with --peers")
	case len(o.Peers) > 0 && o.NetNS:
		return errors.New("ringbench: --netns starts the ranks here; it does not go with --peers")
	case o.LinkRate > 0 && !o.NetNS:
		return errors.New("ringbench: --link-rate needs --netns (loopback cannot be rate-limited)")
	}
	if len(o.Peers) > 0 {
		o.Ranks = len(o.Peers)
	}
	if len(o.Codecs) == 0 {
		o.Codecs = []allreduce.Codec{allreduce.CodecNone}
	}
	if len(o.Transports) == 0 {
		o.Transports = []string{"auto"}
	}
	for _, t := range o.Transports {
		if t != "auto" && t != "shm" && t != "tcp" {
			return fmt.Errorf("ringbench: transport %q, want auto, shm or tcp", t)
		}
	}
	if o.Timeout == 0 {
		o.Timeout = allreduce.DefaultTimeout
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
	err = runRank(ctx, workerSpec{Options: o, Secret: []byte(secret), Rings: [][]string{o.Peers}},
		[]*net.TCPListener{ln.(*net.TCPListener)}, pw)
	pw.CloseWithError(err)
	<-done
	if err == nil {
		err = readErr
	}
	return samples, err
}

// runLocal starts the ranks as processes of self, on loopback, or with hosts, rank i
// in hosts[i].
func runLocal(ctx context.Context, o Options, self []string, hosts []*netlab.Host) ([]sample, error) {
	secret := make([]byte, 32)
	rand.Read(secret)
	var (
		mu      sync.Mutex
		samples []sample
	)
	l := LocalRanks{Ranks: o.Ranks, Listeners: len(o.variants()), Self: self, Env: workerEnv,
		// rings[v]: the ring of variant v, then the raw TCP ring
		Spec: func(rank int, rings [][]string) (string, error) {
			o := o
			o.Rank = rank
			spec, err := json.Marshal(workerSpec{Options: o, Secret: []byte(hex.EncodeToString(secret)), Rings: rings})
			return string(spec), err
		},
		Read: func(_ int, stdout io.Reader) error {
			s, err := readSamples(stdout)
			mu.Lock()
			samples = append(samples, s...)
			mu.Unlock()
			return err
		},
		Listen: func(rank int) (*net.TCPListener, error) { return listen(hosts, rank) },
	}
	if o.RawTCP {
		l.Listeners++
	}
	if hosts != nil {
		l.Command = func(ctx context.Context, rank int, argv []string) *exec.Cmd {
			return hosts[rank].Command(ctx, argv[0], argv[1:]...)
		}
	}
	err := l.Run(ctx)
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

// variant is one ring of a run: a codec over a transport.
type variant struct {
	codec     allreduce.Codec
	transport string
}

// variants crosses Codecs with Transports, codecs outermost.
func (o *Options) variants() []variant {
	var vs []variant
	for _, c := range o.Codecs {
		for _, t := range o.Transports {
			vs = append(vs, variant{c, t})
		}
	}
	return vs
}

// runRank is one rank: build a ring per variant, then for every size reduce
// Warmup+Iters times on each ring in turn, refilling the buffer from the rank's
// pristine gradient before each (untimed) and lining the ranks up with a one-value
// all-reduce, printing a sample per timed iteration.
func runRank(ctx context.Context, spec workerSpec, lns []*net.TCPListener, out io.Writer) error {
	o := spec.Options
	vs := o.variants()
	rings := make([]*allreduce.Ring, len(vs))
	for c, v := range vs {
		ring, err := allreduce.New(ctx, allreduce.Config{Peers: spec.Rings[c], Rank: o.Rank, Secret: spec.Secret,
			Listener: lns[c], Codec: v.codec, PowerSGD: o.PowerSGD, Timeout: o.Timeout,
			BucketElems: o.BucketElems, ChunkElems: o.ChunkElems, NoSharedMemory: v.transport == "tcp"})
		if err != nil {
			return fmt.Errorf("ring for codec %s over %s: %w", v.codec, v.transport, err)
		}
		defer ring.Close()
		if st := ring.Stats(); v.transport == "shm" && st.Transport != "shm" {
			return fmt.Errorf("ring for codec %s: shared memory required, but %s", v.codec, st.TransportNote)
		}
		rings[c] = ring
	}
	var raw *rawRing
	if o.RawTCP {
		var err error
		if raw, err = newRawRing(ctx, spec.Rings[len(vs)], o.Rank, lns[len(vs)], o.Timeout); err != nil {
			return err
		}
		defer raw.close()
	}
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
		// what codec none puts on the wire, frame headers aside
		rawBytes := 4 * int64(len(buf)) * 2 * int64(o.Ranks-1) / int64(o.Ranks)
		for it := -o.Warmup; it < o.Iters; it++ {
			if raw != nil {
				if err := rings[0].AllReduce(ctx, one, allreduce.OpSum); err != nil {
					return err
				}
				cpu0, wait0, start := CPUTime(), runDelay(), time.Now()
				if err := raw.transfer(rawBytes, 4*len(buf)); err != nil {
					return err
				}
				took, cpu, wait := time.Since(start), CPUTime()-cpu0, runDelay()-wait0
				if it >= 0 {
					if err := enc.Encode(sample{Rank: o.Rank, Codec: rawTCPRow, Variant: -1, Transport: "tcp", Size: int64(4 * len(buf)), Iter: it,
						Seconds: took.Seconds(), Wire: rawBytes, Logical: rawBytes, CPU: cpu.Seconds(), Wait: wait.Seconds()}); err != nil {
						return err
					}
				}
			}
			for c, ring := range rings {
				copy(buf, src)
				if err := ring.AllReduce(ctx, one, allreduce.OpSum); err != nil {
					return err
				}
				cpu0, wait0 := CPUTime(), runDelay()
				before, start := ring.Stats(), time.Now()
				if err := ring.AllReduce(ctx, buf, allreduce.OpAvg); err != nil {
					return err
				}
				took, after := time.Since(start), ring.Stats()
				cpu, wait := CPUTime()-cpu0, runDelay()-wait0
				if it < 0 {
					continue
				}
				if err := enc.Encode(sample{Rank: o.Rank, Codec: vs[c].codec.String(), Variant: c,
					Transport: after.Transport, Note: after.TransportNote, Size: int64(4 * len(buf)), Iter: it, Seconds: took.Seconds(), Wire: after.WireBytes - before.WireBytes,
					Logical: after.LogicalBytes - before.LogicalBytes, CPU: cpu.Seconds(), Wait: wait.Seconds()}); err != nil {
					return err
				}
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

// summarise takes, per variant, size and iteration, the slowest rank's time (the ring
// is as fast as its slowest member), and reports the median over iterations, sizes in
// increasing order and each size's variants in the order given.
func summarise(o Options, samples []sample) []Result {
	type key struct {
		variant int // -1: raw TCP
		size    int64
	}
	first := map[key]sample{}
	byKey := map[key]map[int]float64{}
	cpus, waits := map[key][]float64{}, map[key][]float64{}
	wire, logical, count := map[key]int64{}, map[key]int64{}, map[key]int64{}
	var sizes []int64
	for _, s := range samples {
		k := key{s.Variant, s.Size}
		if byKey[k] == nil {
			byKey[k] = map[int]float64{}
			first[k] = s
			if !slices.Contains(sizes, s.Size) {
				sizes = append(sizes, s.Size)
			}
		}
		byKey[k][s.Iter] = max(byKey[k][s.Iter], s.Seconds)
		cpus[k] = append(cpus[k], s.CPU)
		waits[k] = append(waits[k], s.Wait)
		wire[k] += s.Wire
		logical[k] += s.Logical
		count[k]++
	}
	slices.Sort(sizes)
	load := LoadAvg()
	var res []Result
	n := float64(o.Ranks)
	rows := []int{}
	if o.RawTCP {
		rows = append(rows, -1)
	}
	for v := range o.variants() {
		rows = append(rows, v)
	}
	for _, size := range sizes {
		for _, row := range rows {
			k := key{row, size}
			if byKey[k] == nil {
				continue
			}
			var times []float64
			for _, t := range byKey[k] {
				times = append(times, t)
			}
			med := Median(times)
			r := Result{Data: o.Data, Codec: first[k].Codec, Transport: first[k].Transport,
				TransportNote: first[k].Note, Ranks: o.Ranks, SizeBytes: size, Iters: len(times),
				MedianSeconds: med, AlgBW: float64(size) / med / 1e9, WirePerRank: wire[k] / count[k],
				CPUPerRank: Median(cpus[k]), WaitPerRank: Median(waits[k]), Ratio: 1, Load: load}
			r.BusBW = r.AlgBW * 2 * (n - 1) / n
			r.WireBusBW = float64(r.WirePerRank) / med / 1e9
			if wire[k] > 0 {
				r.Ratio = float64(logical[k]) / float64(wire[k])
			}
			if o.LinkRate > 0 {
				r.Link, r.LinkGBps = o.LinkRate.String(), o.LinkRate.BytesPerSecond()/1e9
				r.LinkUse = r.WireBusBW / r.LinkGBps
			}
			res = append(res, r)
		}
	}
	compareToNone(res)
	return res
}

// compareToNone sets VsNone on every row that has a codec none row over the same
// transport to compare with.
func compareToNone(res []Result) {
	for i := range res {
		for _, b := range res {
			if b.Codec == allreduce.CodecNone.String() && b.Data == res[i].Data && b.Ranks == res[i].Ranks &&
				b.SizeBytes == res[i].SizeBytes && b.Link == res[i].Link && b.Transport == res[i].Transport {
				res[i].VsNone = res[i].BusBW / b.BusBW
			}
		}
	}
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

// runDelay is the time this process's threads have spent runnable but waiting for a
// CPU, summed over /proc/self/task/*/schedstat (second field); 0 where the kernel
// does not keep it.
func runDelay() time.Duration {
	tasks, _ := os.ReadDir("/proc/self/task")
	var total int64
	for _, t := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + t.Name() + "/schedstat")
		if f := strings.Fields(string(b)); err == nil && len(f) >= 2 {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			total += v
		}
	}
	return time.Duration(total)
}

// LoadAvg is the machine's 1-minute load average, 0 if unknown.
func LoadAvg() float64 {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// Report prints the table, then one JSON line per row.
func Report(w io.Writer, res []Result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%-6s %-8s %-5s %5s %9s %7s %9s %10s %10s %9s %11s %6s %9s %10s %7s %8s\n", "data", "codec",
		"trans", "ranks", "size", "link", "median_ms", "algbw_GB/s", "busbw_GB/s", "wire_GB/s", "wire_MiB/rk", "ratio",
		"cpu_ms/rk", "cpuwait_ms", "vs_none", "link_use")
	opt := func(v float64, format string) string {
		if v == 0 {
			return "-"
		}
		return fmt.Sprintf(format, v)
	}
	for _, r := range res {
		link := r.Link
		if link == "" {
			link = "-"
		}
		fmt.Fprintf(&b, "%-6s %-8s %-5s %5d %9s %7s %9.1f %10.3f %10.3f %9.3f %11.1f %6.2f %9.1f %10.1f %7s %8s\n",
			r.Data, r.Codec, r.Transport, r.Ranks, FormatSize(r.SizeBytes), link, r.MedianSeconds*1e3, r.AlgBW, r.BusBW, r.WireBusBW,
			float64(r.WirePerRank)/(1<<20), r.Ratio, r.CPUPerRank*1e3, r.WaitPerRank*1e3, opt(r.VsNone, "%.2fx"),
			opt(r.LinkUse*100, "%.1f%%"))
	}
	notes := map[string]bool{}
	for _, r := range res {
		if r.TransportNote != "" && !notes[r.TransportNote] {
			notes[r.TransportNote] = true
			fmt.Fprintf(&b, "%s: %s\n", r.Codec, r.TransportNote)
		}
	}
	if len(res) > 0 {
		fmt.Fprintf(&b, "load average %.1f on %d CPUs at the end of the run; cpuwait: time a rank was ready to run but had no CPU\n",
			res[0].Load, runtime.NumCPU())
	}
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
