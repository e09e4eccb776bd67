package main

import (
	"fmt"
	"net/url"

	"github.com/spf13/cobra"
)

func init() { subcommands = append(subcommands, newUICmd) }

func newUICmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "ui",
		Short: "Print the address of the coordinators' dashboard, with a token for it",
		Long: `Prints the address of the dashboard every coordinator serves at /ui/: jobs with
their progress, loss, latest evaluation and time left; a job's evaluation curves,
generation, models and event log; nodes with their health and speed; the
coordinators. It refreshes every 2 seconds and only reads.

The address carries the read-only token (bertnode token --read-only) after its #,
which browsers do not send to the server; the page keeps it for the tab and takes it
off the address bar. Anyone with the address reads the catalog until the cluster
secret changes. Behind mutual TLS the browser needs a client certificate the CA signed.`,
		Example: `  bertnode ui --coordinator 10.0.0.1:7300`,
		Args:    cobra.NoArgs,
	}
	cf := addClusterFlags(c, true)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		cl, err := cf.client()
		if err != nil {
			return err
		}
		s, err := cf.secret()
		if err != nil {
			return err
		}
		scheme := "http"
		if cl.TLS != nil {
			scheme = "https"
		}
		for _, a := range cl.Addrs {
			fmt.Fprintf(cmd.OutOrStdout(), "%s://%s/ui/#token=%s\n", scheme, a, url.QueryEscape(s.ReadToken()))
		}
		return nil
	}
	return c
}
