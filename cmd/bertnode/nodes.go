package main

import (
	"github.com/spf13/cobra"
)

func init() { subcommands = append(subcommands, newNodesCmd) }

func newNodesCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "nodes",
		Short: "List the worker nodes: health, job, rank and speed",
		Args:  cobra.NoArgs,
	}
	cf := addClusterFlags(c, true)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		cl, ctx, stop, err := cf.connect(cmd)
		if err != nil {
			return err
		}
		defer stop()
		nodes, err := cl.Nodes(ctx)
		if err != nil {
			return err
		}
		printNodes(cmd.OutOrStdout(), nodes)
		return nil
	}
	return c
}
