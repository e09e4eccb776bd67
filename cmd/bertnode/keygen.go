package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/bertnode/bertnode/internal/atomicfile"
	"github.com/bertnode/bertnode/internal/clusterkey"
	"github.com/spf13/cobra"
)

func init() { subcommands = append(subcommands, newKeygenCmd) }

func newKeygenCmd() *cobra.Command {
	var (
		out   string
		force bool
	)
	c := &cobra.Command{
		Use:   "keygen [--out FILE [--force]]",
		Short: "Make a new cluster secret",
		Long: `Prints a new cluster secret: 32 random bytes, written bn1:<base64url>. Every
coordinator and node of a cluster, and the CLI that talks to them, holds the same
secret; each use derives its own key from it (the API's bearer token, gossip
encryption, the ring's and raft's handshakes), so one key seen in one place opens
nothing else.

A process reads the secret from the file --secret-file names, else from the
environment variable $` + clusterkey.Env + `, else from its config file's "secret:".
Keep it as you would a password: whoever holds it can join the cluster and use
its API.

With --out the secret is written to FILE instead (atomically, mode 0600); an
existing FILE is kept unless --force.`,
		Example: `  bertnode keygen --out /etc/bertnode/secret
  export ` + clusterkey.Env + `=$(bertnode keygen)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := clusterkey.Generate()
			if err != nil {
				return err
			}
			if out == "" {
				fmt.Fprintln(cmd.OutOrStdout(), s)
				return nil
			}
			if err := refuseOverwrite(out, force); err != nil {
				return err
			}
			if err := atomicfile.WriteFile(out, []byte(s.String()+"\n"), 0o600); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote a new cluster secret to %s (use --secret-file %s)\n", out, out)
			return nil
		},
	}
	c.Flags().StringVar(&out, "out", "", "write the secret to this `FILE` (mode 0600) instead of printing it")
	c.Flags().BoolVar(&force, "force", false, "with --out: replace an existing file")
	return c
}

// refuseOverwrite fails when path exists, unless force.
func refuseOverwrite(path string, force bool) error {
	if force {
		return nil
	}
	_, err := os.Lstat(path)
	switch {
	case err == nil:
		return fmt.Errorf("%s exists; keeping it (--force replaces it)", path)
	case errors.Is(err, fs.ErrNotExist):
		return nil
	default:
		return err
	}
}
