package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/bertnode/bertnode/internal/tarball"
	"github.com/spf13/cobra"
)

func init() { subcommands = append(subcommands, newDownloadCmd) }

func newDownloadCmd() *cobra.Command {
	var output, kind string
	c := &cobra.Command{
		Use:   "download JOB --output DIR [--kind final|best|checkpoint]",
		Short: "Download a job's model into a directory",
		Long: `Downloads a model a job produced (a Hugging Face directory: config.json,
model.safetensors, vocab.txt, ...) into DIR: final, the model at the end; best, the
best by the spec's metric; checkpoint, the latest resumable one.`,
		Example: `  bertnode download job-3 --output models/sms --kind best`,
		Args:    cobra.ExactArgs(1),
	}
	cf := addClusterFlags(c, true)
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if output == "" {
			return errors.New("--output: a directory is required")
		}
		cl, ctx, stop, err := cf.connect(cmd)
		if err != nil {
			return err
		}
		defer stop()
		j, err := cl.Job(ctx, args[0])
		if err != nil {
			return err
		}
		a, ok := j.Results[kind]
		if !ok {
			var have []string
			for k := range j.Results {
				have = append(have, k)
			}
			slices.Sort(have)
			return fmt.Errorf("%s (%s) has no %s model; it has: %s", j.ID, j.State, kind, or(strings.Join(have, ", "), "none"))
		}
		// The download is checked against its hash as a whole before a file is written.
		tmp, err := os.CreateTemp("", "bertnode-download-*")
		if err != nil {
			return err
		}
		defer os.Remove(tmp.Name())
		defer tmp.Close()
		rc, _, err := cl.GetBlob(ctx, a.Blob)
		if err != nil {
			return err
		}
		_, err = io.Copy(tmp, rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("%s %s model: %w", j.ID, kind, err)
		}
		if _, err := tmp.Seek(0, io.SeekStart); err != nil {
			return err
		}
		if err := tarball.Unpack(tmp, output); err != nil {
			return fmt.Errorf("%s %s model: %w", j.ID, kind, err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s model of %s (step %d, %s) in %s\n", kind, j.ID, a.Step, byteSize(a.Size), output)
		return nil
	}
	c.Flags().StringVar(&output, "output", "", "the `DIR` to write the model into (made if missing)")
	c.Flags().StringVar(&kind, "kind", "final", "which model: final, best or checkpoint")
	return c
}
