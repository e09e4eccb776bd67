package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bertnode/bertnode/allreduce/ringbench"
)

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

// parseSizes reads a --sizes list: comma-separated sizes such as 16M,1G.
func parseSizes(list string) ([]int64, error) {
	var sizes []int64
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := ringbench.ParseSize(s)
		if err != nil {
			return nil, fmt.Errorf("--sizes: %w", err)
		}
		sizes = append(sizes, n)
	}
	return sizes, nil
}
