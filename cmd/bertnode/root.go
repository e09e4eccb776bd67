package main

import "github.com/spf13/cobra"

// subcommands is filled by each subcommand's file in its init, so that each command
// lives in its own file and files can be added without editing this one.
var subcommands []func() *cobra.Command

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "bertnode",
		Short:         "Fine-tune BERT models on one machine or data-parallel across a cluster; evaluate and serve them",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	for _, mk := range subcommands {
		root.AddCommand(mk())
	}
	return root
}
