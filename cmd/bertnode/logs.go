package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/spf13/cobra"
)

func init() { subcommands = append(subcommands, newLogsCmd) }

func newLogsCmd() *cobra.Command {
	var follow bool
	c := &cobra.Command{
		Use:   "logs JOB [-f]",
		Short: "Print a job's event log: generations, failures, checkpoints, evaluations",
		Long: `Prints what happened to a job, as the coordinators recorded it: its
generations and why each opened, failures and confirmations, nodes lost and joined,
checkpoints whose replicas agreed, evaluations, results, and its end. The log keeps
the newest 500 events. With -f it waits for new ones until the job ends.`,
		Args: cobra.ExactArgs(1),
	}
	withClient(c, func(cmd *cobra.Command, ctx context.Context, cl *api.Client, args []string) error {
		id, out := args[0], cmd.OutOrStdout()
		var idx uint64
		var seen int64
		for {
			logs, err := cl.Logs(ctx, id, idx, time.Minute)
			if err != nil {
				if ctx.Err() != nil && follow {
					return nil
				}
				return err
			}
			idx = logs.Index
			for _, e := range logs.Events {
				if e.Seq > seen {
					printEvent(out, e)
					seen = e.Seq
				}
			}
			if !follow {
				return nil
			}
			if n := len(logs.Events); n > 0 && isEnd(logs.Events[n-1].Kind) {
				return nil
			}
		}
	})
	c.Flags().BoolVarP(&follow, "follow", "f", false, "wait for new events until the job ends")
	return c
}

func isEnd(kind string) bool {
	return api.JobState(kind).Done()
}

func printEvent(out io.Writer, e api.Event) {
	gen := "-"
	if e.Gen > 0 {
		gen = fmt.Sprintf("g%d", e.Gen)
	}
	fmt.Fprintf(out, "%s  %-4s %-10s %s\n", e.Time.Local().Format("2006-01-02 15:04:05.000"), gen, e.Kind, e.Message)
}
