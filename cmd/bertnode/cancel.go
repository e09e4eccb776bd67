package main

import (
	"context"
	"fmt"

	"github.com/bertnode/bertnode/api"
	"github.com/spf13/cobra"
)

func init() { subcommands = append(subcommands, newCancelCmd) }

func newCancelCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "cancel JOB",
		Short: "Cancel a job; its nodes go back to the idle pool",
		Args:  cobra.ExactArgs(1),
	}
	withClient(c, func(cmd *cobra.Command, ctx context.Context, cl *api.Client, args []string) error {
		if err := cl.Cancel(ctx, args[0]); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "cancelled %s\n", args[0])
		return nil
	})
	return c
}
