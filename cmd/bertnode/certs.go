package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/bertnode/bertnode/internal/atomicfile"
	"github.com/bertnode/bertnode/internal/tlsconfig"
	"github.com/spf13/cobra"
)

func init() { subcommands = append(subcommands, newCertsCmd) }

func newCertsCmd() *cobra.Command {
	var (
		dir   string
		hosts []string
		days  int
		force bool
	)
	c := &cobra.Command{
		Use:   "certs --dir DIR [--hosts 127.0.0.1,localhost]",
		Short: "Make a throwaway CA and certificates to try mutual TLS",
		Long: `Writes into DIR a new certificate authority and two certificates it signs:

  ca.pem                        the CA certificate (--tls-ca)
  server.pem, server-key.pem    for coordinators and nodes, which both accept and
                                dial: valid for --hosts, as server and as client
  client.pem, client-key.pem    for the CLI: a client certificate

The CA's private key is not kept, so this CA signs these two certificates and no
more. This is for trying TLS on one machine or a test cluster. Production clusters
bring their own CA: a certificate per host, signed by the organisation's CA,
given to each process with --tls-cert, --tls-key and --tls-ca.

Existing files are kept unless --force.`,
		Example: `  bertnode certs --dir tls --hosts 127.0.0.1,localhost`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case dir == "":
				return errors.New("--dir: a directory is required")
			case len(hosts) == 0:
				return errors.New("--hosts: at least one host name or IP address is required")
			case days <= 0:
				return fmt.Errorf("--days %d: must be positive", days)
			}
			validity := time.Duration(days) * 24 * time.Hour
			ca, err := tlsconfig.NewCA("bertnode test CA", validity)
			if err != nil {
				return err
			}
			server, err := ca.Issue("bertnode server", hosts, tlsconfig.ServerAndClient, validity)
			if err != nil {
				return err
			}
			client, err := ca.Issue("bertnode client", nil, tlsconfig.ClientOnly, validity)
			if err != nil {
				return err
			}
			files := []struct {
				name string
				data []byte
				perm os.FileMode
			}{
				{"ca.pem", ca.CertPEM, 0o644},
				{"server.pem", server.CertPEM, 0o644},
				{"server-key.pem", server.KeyPEM, 0o600},
				{"client.pem", client.CertPEM, 0o644},
				{"client-key.pem", client.KeyPEM, 0o600},
			}
			for _, f := range files {
				if err := refuseOverwrite(filepath.Join(dir, f.name), force); err != nil {
					return err
				}
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			for _, f := range files {
				if err := atomicfile.WriteFile(filepath.Join(dir, f.name), f.data, f.perm); err != nil {
					return err
				}
			}
			p := func(name string) string { return filepath.Join(dir, name) }
			fmt.Fprintf(cmd.OutOrStdout(), `wrote a CA and two certificates, valid for %d days, into %s
coordinators and nodes: --tls-cert %s --tls-key %s --tls-ca %s
the CLI:                --tls-cert %s --tls-key %s --tls-ca %s
`, days, dir, p("server.pem"), p("server-key.pem"), p("ca.pem"), p("client.pem"), p("client-key.pem"), p("ca.pem"))
			return nil
		},
	}
	c.Flags().StringVar(&dir, "dir", "", "write the files into this `DIR` (made if missing)")
	c.Flags().StringSliceVar(&hosts, "hosts", []string{"127.0.0.1", "localhost"}, "IP addresses and DNS names the server certificate is valid for")
	c.Flags().IntVar(&days, "days", 365, "how long the certificates are valid")
	c.Flags().BoolVar(&force, "force", false, "replace existing files")
	return c
}
