package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bertnode/bertnode/allreduce"
	"github.com/bertnode/bertnode/node/ddpbench"
)

func init() {
	benchSubcommands = append(benchSubcommands, newBenchDDPCmd)
}

func newBenchDDPCmd() *cobra.Command {
	var (
		o                         ddpbench.Options
		configs, codec, transport string
		torch                     ddpbench.Torch
		rounds                    int
		jsonl                     string
	)
	c := &cobra.Command{
		Use:   "ddp",
		Short: "Measure the cluster node's distributed training step on loopback, beside PyTorch DDP over gloo",
		Long: `Runs --nprocs rank processes of this binary on loopback, each training the same minimal
BERT (a model preset: tiny, mini, small, base) on a fixed random batch of its own (--batch
sequences of --seq tokens) with the cluster node's step: backward, the gradient all-reduce
over the ring (--codec; --transport tcp keeps it on TCP over loopback, as between hosts,
where by default codec none reduces through shared memory), the commit round, clipping
and AdamW. Each timed step is followed by a compute-only step (no all-reduce, no commit
round), as ddp_bert_gloo.py does, so the communication's cost shows. It prints per config
the median step time of the slowest rank, its phases (compute, comm, opt), global
samples/s, the compute-only step, the communication overhead (step minus compute-only, of
the medians and paired), and whether the ranks held the same weights after the warm-up;
then JSON lines.

The timed node steps all-reduce after backward. --overlap follows each with an
overlapped node step (the node's default: the all-reduce starts before backward and takes
each prefix of the gradient as backward finishes it) and prints what that saved, paired.

With --torch-script (ddp_bert_gloo.py in the shared bench directory) it runs --rounds
rounds of PyTorch then bertnode with the same parameters and threads, and prints both
side by side with the ratio of samples/s.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if ddpbench.IsWorker() {
				return ddpbench.Worker(ctx, os.Stdout)
			}
			var err error
			if o.Codec, err = allreduce.ParseCodec(codec); err != nil {
				return err
			}
			switch transport {
			case "auto", "tcp":
				o.TCP = transport == "tcp"
			default:
				return fmt.Errorf("--transport %q, want auto or tcp", transport)
			}
			for _, s := range strings.Split(configs, ",") {
				if s = strings.TrimSpace(s); s != "" {
					o.Configs = append(o.Configs, s)
				}
			}
			if rounds < 1 {
				return fmt.Errorf("--rounds %d, want >= 1", rounds)
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			argv := append([]string{self}, os.Args[1:]...)
			o.Defaults()
			out := cmd.OutOrStdout()
			var torchRes, ours []ddpbench.Result
			tag := o.Tag
			for i := range rounds {
				o.Tag = fmt.Sprintf("%sround%d", tag, i+1)
				if torch.Script != "" {
					if rounds > 1 {
						fmt.Fprintf(out, "## round %d of %d\n", i+1, rounds)
					}
					res, err := torch.Run(ctx, o, out)
					if err != nil {
						return err
					}
					torchRes = append(torchRes, res...)
				}
				res, err := ddpbench.Run(ctx, o, argv)
				if err != nil {
					return err
				}
				ours = append(ours, res...)
				if err := ddpbench.Report(out, res, torch.Script == ""); err != nil {
					return err
				}
			}
			if torch.Script != "" {
				fmt.Fprintln(out)
				if err := ddpbench.Compare(out, torchRes, ours); err != nil {
					return err
				}
			}
			if jsonl != "" {
				return appendJSONL(jsonl, append(torchRes, ours...))
			}
			return nil
		},
	}
	f := c.Flags()
	f.IntVar(&o.Ranks, "nprocs", 2, "rank processes on this machine")
	f.StringVar(&configs, "configs", "tiny,mini", "model presets, comma-separated: tiny, mini, small, base")
	f.IntVar(&o.Batch, "batch", 8, "sequences per rank and step")
	f.IntVar(&o.Seq, "seq", 128, "tokens per sequence")
	f.IntVar(&o.Threads, "threads", 0, "libtorch threads per rank (0: CPUs / nprocs, at least 1)")
	f.IntVar(&o.Warmup, "warmup", 3, "untimed steps per config")
	f.IntVar(&o.Steps, "steps", 10, "timed steps per config")
	f.IntVar(&o.NoSync, "nosync-steps", -1, "compute-only steps, each after one of the first timed ones (-1: --steps; 0: none)")
	f.BoolVar(&o.Overlap, "overlap", false, "also time overlapped node steps (all-reduce during backward), alternating")
	f.StringVar(&codec, "codec", "none", "the ring's codec: none, s2, zstd, bf16, fp16 or powersgd")
	f.StringVar(&transport, "transport", "auto", "auto (codec none through shared memory, the ranks sharing this host) or tcp (over loopback, as ranks on different hosts)")
	f.DurationVar(&o.Timeout, "timeout", ddpbench.DefaultTimeout, "how long a silent ring neighbour is waited for")
	f.StringVar(&o.CPUProfile, "cpuprofile", "", "write each rank's CPU profile to PATH.rank<i>")
	f.StringVar(&o.Tag, "tag", "", "label stored in each JSON line (the round is appended)")
	f.StringVar(&torch.Script, "torch-script", "", "ddp_bert_gloo.py: run PyTorch DDP in the same run and compare")
	f.StringVar(&torch.Python, "python", "/usr/bin/python3", "the interpreter for --torch-script (one with torch)")
	f.IntVar(&rounds, "rounds", 1, "rounds, each PyTorch then bertnode")
	f.StringVar(&jsonl, "jsonl", "", "append every row (both sides) as JSON lines to this file")
	return c
}

// appendJSONL appends rows to path as JSON lines.
func appendJSONL(path string, rows []ddpbench.Result) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	var b strings.Builder
	if err := ddpbench.WriteJSON(&b, rows); err != nil {
		f.Close()
		return err
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
