package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/spf13/cobra"
)

func init() { subcommands = append(subcommands, newNodesCmd) }

func newNodesCmd() *cobra.Command {
	var wait bool
	c := &cobra.Command{
		Use:   "nodes [drain ID... [--wait] | undrain ID... | remove ID...]",
		Short: "List the worker nodes: health, job, rank and speed; drain one for maintenance, remove a dead one",
		Long: `Without arguments: the worker nodes, their health, job, rank and speed.

drain: the nodes take no new job, and each leaves its job through a reconfiguration
(one aborted step, as for a failure, but no wait for a timeout) as soon as the job can
go on without it: another of its nodes stays to hand its state on, and with the idle
nodes it may take, the job keeps its min_nodes. Until then a drained node trains on.
With --wait the command returns once every drained node is on no job: its process can
then be stopped, and nothing is lost. A drain survives the node's restarts. A node
whose disk fails (full, read-only, an I/O error) drains itself; bertnode logs JOB says
why.
undrain: the nodes take work again.
remove: the nodes leave the catalog, as nomad node purge does: for a machine gone
for good. Each must be dead or left in gossip (stop its bertnode join first: a live
agent registers again), on no job, and in no running job's generation. Finished jobs
keep naming it. Should it come back, it registers as a new node. The coordinators
remove nodes dead or left for longer than --node-gc (24h) by themselves.`,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(args) == 0 && !wait:
				return nil
			case len(args) >= 2 && args[0] == "drain":
				return nil
			case len(args) >= 2 && (args[0] == "undrain" || args[0] == "remove") && !wait:
				return nil
			}
			return fmt.Errorf("want no arguments, drain ID... [--wait], undrain ID... or remove ID..., not %q", strings.Join(args, " "))
		},
	}
	c.Flags().BoolVar(&wait, "wait", false, "drain: return once the nodes are on no job")
	withClient(c, func(cmd *cobra.Command, ctx context.Context, cl *api.Client, args []string) error {
		out := cmd.OutOrStdout()
		if len(args) == 0 {
			nodes, err := cl.Nodes(ctx)
			if err != nil {
				return err
			}
			printNodes(out, nodes)
			return nil
		}
		if args[0] == "remove" {
			for _, id := range args[1:] {
				if err := cl.RemoveNode(ctx, id); err != nil {
					return err
				}
				fmt.Fprintf(out, "%s: removed\n", id)
			}
			return nil
		}
		on := args[0] == "drain"
		for _, id := range args[1:] {
			if err := cl.Drain(ctx, id, on); err != nil {
				return err
			}
		}
		for _, id := range args[1:] {
			n, err := drainState(ctx, cl, id, on && wait, out)
			if err != nil {
				return err
			}
			switch {
			case !on:
				fmt.Fprintf(out, "%s: takes work again\n", id)
			case n.Job == "":
				fmt.Fprintf(out, "%s: drained, on no job\n", id)
			default:
				fmt.Fprintf(out, "%s: draining, still on %s until it can go on without it\n", id, n.Job)
			}
		}
		return nil
	})
	return c
}

// drainState reads node id; with wait, once it is on no job, saying once what it waits
// for.
func drainState(ctx context.Context, cl *api.Client, id string, wait bool, out io.Writer) (*api.Node, error) {
	var idx uint64
	said := ""
	for {
		n, next, err := cl.NodeWait(ctx, id, idx, time.Minute)
		if err != nil || !wait || n.Job == "" {
			return n, err
		}
		if !n.Drain {
			return nil, fmt.Errorf("%s: no longer draining (bertnode nodes undrain)", id)
		}
		if said != n.Job {
			fmt.Fprintf(out, "%s: waiting for it to leave %s\n", id, n.Job)
			said = n.Job
		}
		idx = next
	}
}
