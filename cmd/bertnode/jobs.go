package main

import (
	"context"

	"github.com/bertnode/bertnode/api"
	"github.com/spf13/cobra"
)

func init() { subcommands = append(subcommands, newJobsCmd) }

func newJobsCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "jobs",
		Short: "List the cluster's jobs",
		Args:  cobra.NoArgs,
	}
	withClient(c, func(cmd *cobra.Command, ctx context.Context, cl *api.Client, _ []string) error {
		jobs, err := cl.Jobs(ctx)
		if err != nil {
			return err
		}
		printJobs(cmd.OutOrStdout(), jobs)
		return nil
	})
	return c
}
