package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bertnode/bertnode/allreduce/ringbench"
	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/stream"
)

// benchStreamServeEnv makes the process the bench's block server: {"plan": ..., "file": ...}.
const benchStreamServeEnv = "BERTNODE_BENCH_STREAM_SERVE"

func init() {
	benchSubcommands = append(benchSubcommands, newBenchStreamCmd)
}

type benchStreamOptions struct {
	sizes        []int64
	dir          string
	format       string
	blockRecords int
	window       int
	batch        int
	cache        int64
	keep         bool
}

func newBenchStreamCmd() *cobra.Command {
	var (
		o            benchStreamOptions
		sizes, cache string
	)
	c := &cobra.Command{
		Use:   "stream",
		Short: "Measure dataset planning and record streaming as the dataset grows: time, plan size, peak memory",
		Long: `For each of --sizes, writes a synthetic dataset (--format jsonl or labeltext) in --dir,
plans it (stream.Build: time, plan JSON bytes, peak Go heap and RSS), then reads one
epoch's pieces for rank 1 of 2 (global batch --batch) through stream.NewRemote with a
--cache bound, from a block server (stream.Handler, zstd) in a separate process over
loopback HTTP, and prints the reader's peak heap and RSS and its records/s, then the
same as JSON lines. The reader holds the plan (as a node does) and computes the order a
window at a time (stream.Epoch). Peak heap is sampled every 5ms (it includes garbage
not yet collected); live heap is measured after a GC at the end of the phase, the plan
or the reader (plan, order and cache) still held. Peak RSS is the kernel's high-water
mark (VmHWM), reset before each phase; "base" is the RSS when the phase starts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if spec := os.Getenv(benchStreamServeEnv); spec != "" {
				return serveBlocks(spec, cmd.OutOrStdout())
			}
			var err error
			if o.sizes, err = parseSizes(sizes); err != nil {
				return err
			}
			if o.cache, err = ringbench.ParseSize(cache); err != nil {
				return fmt.Errorf("--cache: %w", err)
			}
			if o.format != "jsonl" && o.format != "labeltext" {
				return fmt.Errorf("--format %q: want jsonl or labeltext", o.format)
			}
			return benchStream(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := c.Flags()
	f.StringVar(&sizes, "sizes", "100M,1G,3G", "dataset sizes (K, M, G are binary)")
	f.StringVar(&o.dir, "dir", "", "where to write the datasets (default: a new temporary directory)")
	f.StringVar(&o.format, "format", "labeltext", "labeltext or jsonl")
	f.IntVar(&o.blockRecords, "block-records", 256, "records per block")
	f.IntVar(&o.window, "window-blocks", 4, "blocks per shuffle window")
	f.IntVar(&o.batch, "batch", 32, "global batch size")
	f.StringVar(&cache, "cache", "64M", "the reader's block cache bound")
	f.BoolVar(&o.keep, "keep", false, "keep the datasets and plans")
	return c
}

type streamRow struct {
	Size       int64   `json:"size"`
	Records    int     `json:"records"`
	Blocks     int     `json:"blocks"`
	PlanBytes  int     `json:"plan_bytes"`
	PlanSec    float64 `json:"plan_s"`
	PlanHeap   uint64  `json:"plan_peak_heap"`
	PlanLive   uint64  `json:"plan_live_heap"`
	PlanRSS    uint64  `json:"plan_peak_rss"`
	PlanBase   uint64  `json:"plan_base_rss"`
	ReadHeap   uint64  `json:"read_peak_heap"`
	ReadLive   uint64  `json:"read_live_heap"`
	ReadRSS    uint64  `json:"read_peak_rss"`
	ReadBase   uint64  `json:"read_base_rss"`
	Read       int     `json:"records_read"`
	Fetches    int64   `json:"blocks_fetched"`
	RecordsSec float64 `json:"records_per_s"`
}

func benchStream(ctx context.Context, o benchStreamOptions, out io.Writer) error {
	dir := o.dir
	if dir == "" {
		d, err := os.MkdirTemp("", "bertnode-bench-stream-")
		if err != nil {
			return err
		}
		if !o.keep {
			defer os.RemoveAll(d)
		}
		dir = d
	}
	var rows []streamRow
	for _, size := range o.sizes {
		fmt.Fprintf(os.Stderr, "bench stream: %s dataset...\n", ringbench.FormatSize(size))
		row, err := benchStreamSize(ctx, o, dir, size)
		if err != nil {
			return err
		}
		rows = append(rows, row)
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "dataset\trecords\tblocks\tplan\tplan time\tplan heap (live)\tplan RSS (base)\tread heap (live)\tread RSS (base)\trecords read\tblocks fetched\trecords/s\t")
	mib := func(b uint64) string { return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20)) }
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%.1fs\t%s (%s)\t%s (%s)\t%s (%s)\t%s (%s)\t%d\t%d\t%.0f\t\n",
			ringbench.FormatSize(r.Size), r.Records, r.Blocks, ringbench.FormatSize(int64(r.PlanBytes)), r.PlanSec,
			mib(r.PlanHeap), mib(r.PlanLive), mib(r.PlanRSS), mib(r.PlanBase),
			mib(r.ReadHeap), mib(r.ReadLive), mib(r.ReadRSS), mib(r.ReadBase),
			r.Read, r.Fetches, r.RecordsSec)
	}
	tw.Flush()
	enc := json.NewEncoder(out)
	for _, r := range rows {
		enc.Encode(r)
	}
	return nil
}

func benchStreamSize(ctx context.Context, o benchStreamOptions, dir string, size int64) (streamRow, error) {
	row := streamRow{Size: size}
	ext := map[string]string{"jsonl": ".jsonl", "labeltext": ".txt"}[o.format]
	data := filepath.Join(dir, fmt.Sprintf("data-%d%s", size, ext))
	if err := writeSyntheticDataset(data, o.format, size); err != nil {
		return row, err
	}
	if !o.keep {
		defer os.Remove(data)
	}
	spec := shard.Spec{Format: shard.Format(o.format)}

	var p *stream.Plan
	ph, err := measurePhase(func() (any, error) {
		var err error
		p, err = stream.Build(data, spec, stream.Options{BlockRecords: o.blockRecords, Task: "classify"})
		return p, err
	})
	if err != nil {
		return row, err
	}
	row.Records, row.Blocks = p.Records, len(p.Blocks)
	row.PlanSec, row.PlanHeap, row.PlanLive, row.PlanRSS, row.PlanBase = ph.elapsed.Seconds(), ph.heap, ph.live, ph.rss, ph.base
	planJSON, err := json.Marshal(p)
	if err != nil {
		return row, err
	}
	p = nil
	row.PlanBytes = len(planJSON)
	planFile := data + ".plan.json"
	if err := os.WriteFile(planFile, planJSON, 0o644); err != nil {
		return row, err
	}
	if !o.keep {
		defer os.Remove(planFile)
	}

	addr, stop, err := startBlockServer(ctx, planFile, data)
	if err != nil {
		return row, err
	}
	defer stop()
	var fetches atomic.Int64
	var src stream.Source
	ph, err = measurePhase(func() (any, error) {
		var p stream.Plan
		if err := json.Unmarshal(planJSON, &p); err != nil {
			return nil, err
		}
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
		src = stream.NewRemote(&p, func(ctx context.Context, b int) (io.ReadCloser, error) {
			fetches.Add(1)
			return stream.FetchBlock(ctx, client, "http://"+addr+stream.BlockPath("bench", b), nil)
		}, o.cache)
		e := p.Epoch(1, 0, o.window)
		dst := make([]shard.Record, o.batch)
		for pos := 0; pos < e.Len(); {
			batch := e.Batch(pos, o.batch)
			pos += len(batch)
			piece := stream.Piece(batch, 2, 1)
			if pos < e.Len() {
				src.(stream.Prefetcher).Prefetch(stream.Piece(e.Batch(pos, o.batch), 2, 1))
			}
			if err := src.Read(ctx, piece, dst); err != nil {
				return nil, err
			}
			row.Read += len(piece)
		}
		return src, nil
	})
	if src != nil {
		src.Close()
	}
	if err != nil {
		return row, err
	}
	row.ReadHeap, row.ReadLive, row.ReadRSS, row.ReadBase = ph.heap, ph.live, ph.rss, ph.base
	row.Fetches = fetches.Load()
	row.RecordsSec = float64(row.Read) / ph.elapsed.Seconds()
	return row, nil
}

// phase is what measurePhase saw.
type phase struct {
	elapsed   time.Duration
	heap      uint64 // peak heap objects, live or not yet swept, sampled every 5ms
	live      uint64 // heap after a GC at the end, what f returned still referenced
	rss, base uint64 // peak RSS (VmHWM), and RSS at the start
}

// measurePhase runs f after a full GC with the kernel's RSS high-water mark reset,
// then measures the heap that what f returns keeps alive.
func measurePhase(f func() (keep any, err error)) (phase, error) {
	runtime.GC()
	debug.FreeOSMemory()
	// "5" resets VmHWM to the current RSS (Linux 4.0+).
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		return phase{}, fmt.Errorf("resetting the RSS high-water mark: %w", err)
	}
	var ph phase
	ph.base = procStatus("VmRSS")
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			ph.heap = max(ph.heap, sample[0].Value.Uint64())
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	start := time.Now()
	keep, err := f()
	ph.elapsed = time.Since(start)
	close(done)
	<-stopped
	ph.rss = procStatus("VmHWM")
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	ph.live = ms.HeapAlloc
	runtime.KeepAlive(keep)
	return ph, err
}

// procStatus reads a kB field of /proc/self/status, in bytes; 0 when absent.
func procStatus(field string) uint64 {
	b, _ := os.ReadFile("/proc/self/status")
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// writeSyntheticDataset writes about size bytes of classification records: 8-60 words
// from a vocabulary of 5000 made-up words, one of 4 labels.
func writeSyntheticDataset(path, format string, size int64) error {
	rng := rand.New(rand.NewPCG(uint64(size), 1))
	vocab := make([]string, 5000)
	for i := range vocab {
		var w []byte
		for range 2 + rng.IntN(9) {
			w = append(w, byte('a'+rng.IntN(26)))
		}
		vocab[i] = string(w)
	}
	labels := []string{"world", "sports", "business", "science"}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var n int64
	var line []byte
	for n < size {
		line = line[:0]
		label := labels[rng.IntN(len(labels))]
		if format == "jsonl" {
			line = append(line, `{"label":"`...)
			line = append(line, label...)
			line = append(line, `","text":"`...)
		} else {
			line = append(line, label...)
			line = append(line, ' ')
		}
		for i := range 8 + rng.IntN(53) {
			if i > 0 {
				line = append(line, ' ')
			}
			line = append(line, vocab[rng.IntN(len(vocab))]...)
		}
		if format == "jsonl" {
			line = append(line, `"}`...)
		}
		line = append(line, '\n')
		w.Write(line)
		n += int64(len(line))
	}
	return errors.Join(w.Flush(), f.Close())
}

// startBlockServer runs this binary as the block server of a plan in another process,
// so that the reader's memory is measured alone; stop ends it.
func startBlockServer(ctx context.Context, plan, data string) (addr string, stop func(), err error) {
	self, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	spec, _ := json.Marshal(map[string]string{"plan": plan, "file": data})
	cmd := exec.CommandContext(ctx, self, "bench", "stream")
	cmd.Env = append(os.Environ(), benchStreamServeEnv+"="+string(spec))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop = func() {
		stdin.Close() // the server exits when its stdin closes
		cmd.Wait()
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		stop()
		return "", nil, fmt.Errorf("block server: %w", err)
	}
	return strings.TrimSpace(line), stop, nil
}

// serveBlocks is the block server process: it prints its address, then serves until
// its stdin closes.
func serveBlocks(specJSON string, out io.Writer) error {
	var spec struct{ Plan, File string }
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		return fmt.Errorf("%s: %w", benchStreamServeEnv, err)
	}
	b, err := os.ReadFile(spec.Plan)
	if err != nil {
		return err
	}
	var p stream.Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	f, err := os.Open(spec.File)
	if err != nil {
		return err
	}
	defer f.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	// The handler closes what open returns when it is an io.Closer: hand it the file
	// without its Close.
	data := io.NewSectionReader(f, 0, p.Size)
	srv := &http.Server{Handler: stream.Handler(func(string) (*stream.Plan, io.ReaderAt, error) { return &p, data, nil })}
	go srv.Serve(ln)
	fmt.Fprintln(out, ln.Addr())
	io.Copy(io.Discard, os.Stdin)
	return srv.Close()
}
