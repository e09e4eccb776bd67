package main

import (
	"context"

	"github.com/bertnode/bertnode/api"
	"github.com/spf13/cobra"
)

func init() { subcommands = append(subcommands, newNodesCmd) }

func newNodesCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "nodes",
		Short: "List the worker nodes: health, job, rank and speed",
		Args:  cobra.NoArgs,
	}
	withClient(c, func(cmd *cobra.Command, ctx context.Context, cl *api.Client, _ []string) error {
		nodes, err := cl.Nodes(ctx)
		if err != nil {
			return err
		}
		printNodes(cmd.OutOrStdout(), nodes)
		return nil
	})
	return c
}
