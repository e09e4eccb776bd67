package main

import (
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bertnode/bertnode/allreduce"
	"github.com/bertnode/bertnode/allreduce/ringbench"
)

func init() {
	benchSubcommands = append(benchSubcommands, newBenchAllReduceCmd)
}

func newBenchAllReduceCmd() *cobra.Command {
	var (
		o     ringbench.Options
		sizes string
		codec string
		peers string
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
rank), such as the model package's flat gradient buffer after a backward pass.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ringbench.IsWorker() {
				return ringbench.Worker(cmd.Context(), os.Stdout)
			}
			var err error
			if o.Codec, err = allreduce.ParseCodec(codec); err != nil {
				return err
			}
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
	f.StringVar(&codec, "codec", "none", "none, s2, zstd, bf16, fp16 or powersgd")
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
	return c
}
