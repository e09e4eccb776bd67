package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func init() { subcommands = append(subcommands, newCancelCmd) }

func newCancelCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "cancel JOB",
		Short: "Cancel a job; its nodes go back to the idle pool",
		Args:  cobra.ExactArgs(1),
	}
	cf := addClusterFlags(c, true)
	c.RunE = func(cmd *cobra.Command, args []string) error {
		cl, ctx, stop, err := cf.connect(cmd)
		if err != nil {
			return err
		}
		defer stop()
		if err := cl.Cancel(ctx, args[0]); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "cancelled %s\n", args[0])
		return nil
	}
	return c
}
