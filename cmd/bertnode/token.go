package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func init() { subcommands = append(subcommands, newTokenCmd) }

func newTokenCmd() *cobra.Command {
	var readOnly bool
	c := &cobra.Command{
		Use:   "token [--read-only]",
		Short: "Print the coordinators' API bearer token, or the read-only one for monitoring",
		Long: `Prints the bearer token the coordinators' HTTP API takes, derived from the cluster
secret (--secret-file, else $BERTNODE_SECRET, else the config file), for tools that
are not bertnode: curl, a dashboard, Prometheus (authorization: credentials_file).

With --read-only it prints the read-only token instead: it reads the catalog (GET of
/v1/status, /v1/jobs, /v1/nodes, /v1/members, job logs) and /metrics, and nothing
else: no blob or dataset block, no write. Give monitoring that one, so that it holds no
key that can change the cluster or read its data and models.`,
		Example: `  bertnode token --read-only > /etc/prometheus/bertnode-token
  curl -H "Authorization: Bearer $(bertnode token --read-only)" http://10.0.0.1:7300/v1/status`,
		Args: cobra.NoArgs,
	}
	cf := addClusterFlags(c, false)
	for _, tls := range []string{"tls-cert", "tls-key", "tls-ca"} {
		c.Flags().MarkHidden(tls) // no connection is made
	}
	c.Flags().BoolVar(&readOnly, "read-only", false, "the read-only token: the catalog and /metrics")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		s, err := cf.secret()
		if err != nil {
			return err
		}
		tok := s.Token()
		if readOnly {
			tok = s.ReadToken()
		}
		fmt.Fprintln(cmd.OutOrStdout(), tok)
		return nil
	}
	return c
}
