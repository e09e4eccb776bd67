package main

import "github.com/spf13/cobra"

// benchSubcommands is filled by each benchmark's file in its init.
var benchSubcommands []func() *cobra.Command

func init() {
	subcommands = append(subcommands, func() *cobra.Command {
		c := &cobra.Command{
			Use:   "bench",
			Short: "Measure parts of bertnode and print tables (and JSON lines)",
		}
		for _, mk := range benchSubcommands {
			c.AddCommand(mk())
		}
		return c
	})
}
