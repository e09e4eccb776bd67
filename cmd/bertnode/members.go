package main

import (
	"context"
	"fmt"
	"strconv"
	"text/tabwriter"

	"github.com/bertnode/bertnode/api"
	"github.com/spf13/cobra"
)

func init() { subcommands = append(subcommands, newMembersCmd) }

func newMembersCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "members [add ID RAFT_ADDR API_ADDR [GOSSIP_ADDR] | remove ID]",
		Short: "List, add or remove the coordinators (raft members)",
		Long: `Without arguments: the coordinators, which one leads, their addresses, and the
coordinator protocol each one's build speaks (- for a build before protocol
versions, counted as the oldest): until every member speaks a protocol, the leader
refuses what needs it (see bertnode coordinator --help, Upgrades).

add: makes a coordinator a raft voter by hand (bertnode coordinator --join does it
itself). remove: takes one out, for a member whose machine is gone for good; a
member that is only down rejoins by itself when it restarts.`,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(args) == 0:
				return nil
			case args[0] == "add" && (len(args) == 4 || len(args) == 5):
				return nil
			case args[0] == "remove" && len(args) == 2:
				return nil
			}
			return fmt.Errorf("want no arguments, add ID RAFT_ADDR API_ADDR [GOSSIP_ADDR], or remove ID")
		},
	}
	withClient(c, func(cmd *cobra.Command, ctx context.Context, cl *api.Client, args []string) error {
		out := cmd.OutOrStdout()
		if len(args) > 0 && args[0] == "add" {
			j := api.JoinMember{ID: args[1], RaftAddr: args[2], APIAddr: args[3]}
			if len(args) == 5 {
				j.GossipAddr = args[4]
			}
			if err := cl.JoinMember(ctx, j); err != nil {
				return err
			}
			fmt.Fprintf(out, "added %s\n", j.ID)
			return nil
		}
		if len(args) > 0 {
			if err := cl.RemoveMember(ctx, args[1]); err != nil {
				return err
			}
			fmt.Fprintf(out, "removed %s\n", args[1])
			return nil
		}
		ms, err := cl.Members(ctx)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tLEADER\tVOTER\tHEALTH\tPROTOCOL\tAPI\tRAFT\tGOSSIP")
		for _, m := range ms {
			protocol := "-"
			if m.Protocol > 0 {
				protocol = strconv.Itoa(m.Protocol)
			}
			fmt.Fprintf(w, "%s\t%v\t%v\t%s\t%s\t%s\t%s\t%s\n", m.ID, m.Leader, m.Voter, or(string(m.Health), "-"), protocol,
				or(m.APIAddr, "-"), m.RaftAddr, or(m.GossipAddr, "-"))
		}
		return w.Flush()
	})
	return c
}
