package main

import (
	"context"
	"fmt"

	"github.com/bertnode/bertnode/api"
	"github.com/spf13/cobra"
)

func init() { subcommands = append(subcommands, newDeleteCmd) }

func newDeleteCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "delete JOB...",
		Short: "Delete ended jobs and the data and models only they use",
		Long: `Deletes jobs that ended (succeeded, failed or cancelled) from the coordinators'
state: the job, its event log, and the blobs no other job references (its uploaded
data, model and tokenizer, their plans, its final, best and checkpoint models). The
coordinators remove those files from their disks after the blob file grace. Download
what you want to keep first (bertnode download JOB). A running job must be cancelled
first; a job another running job continues (submit --resume) stays until that one
ends. Nodes remove their own files of the job (<data-dir>/jobs/JOB: checkpoints, logs,
models) within minutes, once no session of theirs runs it, and the uploaded models and
tokenizers they unpacked for it (<data-dir>/uploads) once every job that used them is
deleted; a node away longer than the coordinators' --deleted-retention (30 days) keeps
them.`,
		Example: `  bertnode delete job-3 job-4`,
		Args:    cobra.MinimumNArgs(1),
	}
	withClient(c, func(cmd *cobra.Command, ctx context.Context, cl *api.Client, args []string) error {
		for _, id := range args {
			if err := cl.DeleteJob(ctx, id); err != nil {
				return fmt.Errorf("%s: %w", id, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted %s\n", id)
		}
		return nil
	})
	return c
}
