package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/bertnode/bertnode/chaos"
	"github.com/bertnode/bertnode/hf"
	"github.com/bertnode/bertnode/internal/netlab"
	"github.com/bertnode/bertnode/model"
	"github.com/spf13/cobra"
)

func init() { subcommands = append(subcommands, newChaosCmd) }

func newChaosCmd() *cobra.Command {
	o := chaos.Options{Runs: 20, Seed: 1, Nodes: 3, Dir: "runs/chaos", Steps: 120, RingTimeout: 4 * time.Second, Timeout: 10 * time.Minute, EvalSplit: 0.2, Tolerance: 1e-5}
	var kinds, data, vocab string
	c := &cobra.Command{
		Use:   "chaos",
		Short: "Run the fault suite: a job on a local cluster of processes, with faults injected",
		Long: `Runs --runs jobs, each on a fresh local cluster of real processes (3 coordinators,
--nodes nodes; all in network namespaces when partitions are among the faults, which needs
root), after one fault-free baseline run of the same job. Each run injects one
to three faults picked at random (--seed) among --faults:

  node-kill       SIGKILL of a node in its backward pass
  allreduce-kill  SIGKILL of a node while its gradient all-reduce runs
  leader-kill     SIGKILL of the raft leader (restarted 3 s later)
  node-stop       SIGSTOP of a node past the ring timeout, then SIGCONT
  partition       a node's network cut past the ring timeout, then healed
  node-join       a node killed and replaced by a new node joining mid-epoch
  leader-partition  the raft leader cut off the network for 6 s, then healed
  node-drain      a node drained (bertnode nodes drain) mid-epoch, undrained once out
  rolling-restart every coordinator in turn stopped (SIGTERM) and started again, the
                  next once the members list it alive, as for an upgrade
  nodes-kill      SIGKILL of every node but one in the same step's backward pass
  power-loss      SIGKILL of every process, coordinators and nodes, all started
                  again 3 s later
  quorum-loss     SIGKILL of the raft leader and another coordinator, both started
                  again 6 s later (no majority meanwhile)
  disk-full       a node's data directory (a tmpfs of its own, root only) filled: the
                  node drains itself; undrained, with room again, once it is out
  checkpoint-rot  SIGKILL of a node, a byte of its newest checkpoint flipped, the
                  node started again

A killed node is restarted a second later and rejoins the job. After every run it checks
that the job succeeded, that the last generation's ranks hold identical weights, from
every node's audit log that every sample was trained exactly once, and that the final
eval metrics are within --tolerance of the fault-free run's; it prints the
time from each fault to the next applied step, and ends with a summary table. It exits
1 if any check failed.

The job: a random-init tiny BERT without dropout (so runs differ from the baseline only
by the order floats are summed in) on the SMS spam data, --nodes nodes (each on one
thread), global batch 24.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if o.Nodes < 2 || o.Nodes > 8 {
				return fmt.Errorf("--nodes %d: want 2 to 8", o.Nodes)
			}
			if o.Kinds, err = chaos.ParseKinds(kinds); err != nil {
				return err
			}
			if nerr := netlab.Available(); nerr != nil && !cmd.Flags().Changed("faults") {
				fmt.Fprintf(cmd.ErrOrStderr(), "no partition faults: %v\n", nerr)
				o.Kinds = slices.DeleteFunc(o.Kinds, func(k chaos.Kind) bool { return k == chaos.Partition || k == chaos.LeaderPartition })
			}
			if derr := chaos.DiskFullAvailable(); derr != nil && !cmd.Flags().Changed("faults") {
				fmt.Fprintf(cmd.ErrOrStderr(), "no disk-full faults: %v\n", derr)
				o.Kinds = slices.DeleteFunc(o.Kinds, func(k chaos.Kind) bool { return k == chaos.DiskFull })
			}
			if o.Dir, err = filepath.Abs(o.Dir); err != nil {
				return err
			}
			if o.Train, err = filepath.Abs(data); err != nil {
				return err
			}
			if vocab, err = filepath.Abs(vocab); err != nil {
				return err
			}
			modelDir := filepath.Join(o.Dir, "model")
			if err := tinyWithoutDropout(modelDir); err != nil {
				return err
			}
			o.Spec = strings.Join([]string{"task: classify", "train: " + o.Train, `data: {format: labeltext, delimiter: "\t"}`,
				fmt.Sprintf("eval_split: %g", o.EvalSplit), "model: " + modelDir, "tokenizer: " + vocab, "max_length: 32",
				"batch_size: 24", fmt.Sprintf("max_steps: %d", o.Steps), "lr: 1.0e-3", fmt.Sprintf("eval_steps: %d", o.Steps/2),
				"save_steps: 20", "metric: accuracy",
				fmt.Sprintf("cluster: {nodes: %d, min_nodes: 1, data: shared, ring_timeout: %s, rejoin_window: 2s}", o.Nodes, o.RingTimeout)}, "\n")
			o.Out = cmd.OutOrStdout()
			ctx, stop := interruptible(cmd)
			defer stop()
			base, runs, err := chaos.Suite(ctx, o)
			if err != nil {
				return err
			}
			if !chaos.Summary(o.Out, o, base, runs) {
				return fmt.Errorf("the fault suite failed: see the runs above (logs in %s)", o.Dir)
			}
			return nil
		},
	}
	f := c.Flags()
	f.IntVar(&o.Runs, "runs", o.Runs, "runs with faults")
	f.Int64Var(&o.Seed, "seed", o.Seed, "seed of the faults' choice")
	f.StringVar(&o.Dir, "dir", o.Dir, "where each run's cluster lives (run-N: data, logs, audit logs)")
	f.StringVar(&kinds, "faults", strings.Join(func() []string {
		var s []string
		for _, k := range chaos.Kinds {
			s = append(s, string(k))
		}
		return s
	}(), ","), "the kinds of faults to pick from")
	f.Int64Var(&o.Steps, "steps", o.Steps, "optimizer steps of the job")
	f.IntVar(&o.Nodes, "nodes", o.Nodes, "the cluster's nodes, all in the job (2 to 8)")
	f.Float64Var(&o.Tolerance, "tolerance", o.Tolerance, "the largest difference allowed between a run's final eval metrics and the fault-free run's")
	f.DurationVar(&o.RingTimeout, "ring-timeout", o.RingTimeout, "the job's cluster.ring_timeout")
	f.DurationVar(&o.Timeout, "run-timeout", o.Timeout, "longest a run may take")
	f.StringVar(&data, "data", "data/sms_spam/SMSSpamCollection", "the training data (label<TAB>text)")
	f.StringVar(&vocab, "vocab", "data/vocab/bert-base-uncased.vocab.txt", "the tokenizer's vocab.txt")
	return c
}

// tinyWithoutDropout saves a random-init tiny BERT for classification whose config turns
// dropout off, into dir: runs of it on different numbers of nodes then differ only in
// the order floats are summed.
func tinyWithoutDropout(dir string) error {
	cfg, err := hf.Preset("tiny")
	if err != nil {
		return err
	}
	cfg.HiddenDropoutProb, cfg.AttentionProbsDropoutProb = 0, 0
	model.ManualSeed(7)
	m, err := model.New(cfg, model.Options{Task: model.Classify, NumLabels: 2, HeadDropout: 0})
	if err != nil {
		return err
	}
	os.RemoveAll(dir)
	return m.Save(dir, []string{"ham", "spam"}, model.SaveOptions{})
}
