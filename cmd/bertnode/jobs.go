package main

import (
	"github.com/spf13/cobra"
)

func init() { subcommands = append(subcommands, newJobsCmd) }

func newJobsCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "jobs",
		Short: "List the cluster's jobs",
		Args:  cobra.NoArgs,
	}
	cf := addClusterFlags(c, true)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		cl, ctx, stop, err := cf.connect(cmd)
		if err != nil {
			return err
		}
		defer stop()
		jobs, err := cl.Jobs(ctx)
		if err != nil {
			return err
		}
		printJobs(cmd.OutOrStdout(), jobs)
		return nil
	}
	return c
}
