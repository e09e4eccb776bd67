package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bertnode/bertnode/allreduce"
	"github.com/bertnode/bertnode/allreduce/ringbench"
	"github.com/bertnode/bertnode/internal/netlab"
)

func init() {
	benchSubcommands = append(benchSubcommands, newBenchAllReduceCmd)
}

func newBenchAllReduceCmd() *cobra.Command {
	var (
		o        ringbench.Options
		sizes    string
		codec    string
		peers    string
		linkRate string
	)
	c := &cobra.Command{
		Use:   "allreduce",
		Short: "Measure the ring all-reduce: N rank processes over loopback, or one rank of a ring on given addresses",
		Long: `Runs --ranks rank processes of this binary over loopback (or, with --peers and --rank,
this one rank of a ring whose other ranks run elsewhere with the same flags and the cluster
secret in $` + ringbench.SecretEnv + `), reduces each size --iters times after --warmup, and prints
per size the median time of the slowest rank, algbw, busbw = algbw * 2(N-1)/N (NCCL's
definition), the bytes each rank put on the wire and the compression ratio, then the same
as JSON lines.

--data random reduces dense normal values of each --sizes; --data bert a synthetic
BERT-base gradient (110M values, word embeddings 98% zero rows); --data file the raw
little-endian float32 gradients in --grad-file (one per rank, or fewer, perturbed per
rank), such as the model package's flat gradient buffer after a backward pass.

--netns runs each rank in its own network namespace, the namespaces joined by veth
pairs to one bridge (needs root), and --link-rate caps every rank's link in each
direction with tc tbf: a ring over slow links on one machine. The table then gives
each row's link use (bytes on the wire per second over the link rate). --codec takes a
comma-separated list to compare codecs in one run: each row's vs_none is its busbw
over codec none's; --raw-tcp adds a row of plain TCP streams in the ring's shape carrying
codec none's bytes from and into memory the buffer's size: what the links and the
machine allow without the all-reduce.

--transport chooses how ranks on one host reduce: auto (shared memory for codec none
when every rank shares the host and network namespace, else TCP), shm (shared memory
or fail), tcp (never shared memory); comma-separated to compare them in one run, each
on its own ring, taking turns.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ringbench.IsWorker() {
				return ringbench.Worker(cmd.Context(), os.Stdout)
			}
			for _, name := range strings.Split(codec, ",") {
				c, err := allreduce.ParseCodec(strings.TrimSpace(name))
				if err != nil {
					return fmt.Errorf("--codec: %w", err)
				}
				o.Codecs = append(o.Codecs, c)
			}
			if linkRate != "" {
				r, err := netlab.ParseRate(linkRate)
				if err != nil {
					return fmt.Errorf("--link-rate: %w", err)
				}
				o.LinkRate = r
			}
			var err error
			if o.Sizes, err = parseSizes(sizes); err != nil {
				return err
			}
			if peers != "" {
				o.Peers = strings.Split(peers, ",")
			}
			if len(o.GradFiles) > 0 && !cmd.Flags().Changed("data") {
				o.Data = "file"
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			_, err = ringbench.Run(cmd.Context(), o, append([]string{self}, os.Args[1:]...), cmd.OutOrStdout())
			return err
		},
	}
	f := c.Flags()
	f.IntVar(&o.Ranks, "ranks", 2, "number of rank processes to start on this machine")
	f.StringVar(&sizes, "sizes", "16M,64M,420M", "buffer sizes for --data random (K, M, G are binary)")
	f.StringVar(&codec, "codec", "none", "none, s2, zstd, bf16, fp16 or powersgd; comma-separated to compare several")
	f.StringSliceVar(&o.Transports, "transport", []string{"auto"}, "auto, shm or tcp; comma-separated to compare several")
	f.IntVar(&o.PowerSGD.Rank, "powersgd-rank", 4, "rank of the PowerSGD approximation")
	f.IntVar(&o.PowerSGD.Cols, "powersgd-cols", 768, "width PowerSGD folds each bucket to")
	f.StringVar(&o.Data, "data", "random", "random, bert or file")
	f.StringSliceVar(&o.GradFiles, "grad-file", nil,
		"raw little-endian float32 gradients to reduce, comma-separated; rank i takes file i mod count (implies --data file)")
	f.Uint64Var(&o.Seed, "seed", 1, "seed of the generated gradients")
	f.IntVar(&o.Iters, "iters", 10, "timed iterations per size")
	f.IntVar(&o.Warmup, "warmup", 2, "untimed iterations per size")
	f.DurationVar(&o.Timeout, "timeout", allreduce.DefaultTimeout, "how long a silent peer is waited for")
	f.IntVar(&o.BucketElems, "bucket-elems", 0, "values per bucket (0: the ring's default)")
	f.IntVar(&o.ChunkElems, "chunk-elems", 0, "values per frame (0: the ring's default)")
	f.StringVar(&peers, "peers", "", "comma-separated rank addresses, to run one rank of a multi-machine ring")
	f.IntVar(&o.Rank, "rank", 0, "this process's rank in --peers")
	f.StringVar(&o.CPUProfile, "cpuprofile", "", "write each rank's CPU profile to PATH.rank<i>")
	f.BoolVar(&o.NetNS, "netns", false, "run each rank in its own network namespace, joined by a bridge (root)")
	f.StringVar(&linkRate, "link-rate", "", "with --netns, cap each rank's link at this rate each way (tc units: 1gbit, 100mbit)")
	f.IntVar(&o.LinkBurst, "link-burst", 0, "with --link-rate, the token bucket in bytes (0: max(128 KiB, 1 ms at the rate))")
	f.BoolVar(&o.RawTCP, "raw-tcp", false, "add the row raw-tcp: plain TCP streams in the ring's shape carrying codec none's bytes from memory the buffer's size, the links' ceiling")
	return c
}
