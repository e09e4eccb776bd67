package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/internal/tarball"
	"github.com/spf13/cobra"
)

func init() { subcommands = append(subcommands, newDownloadCmd) }

func newDownloadCmd() *cobra.Command {
	var output, kind string
	c := &cobra.Command{
		Use:   "download JOB --output DIR [--kind final|best|checkpoint]",
		Short: "Download a job's model into a directory, or a predict job's output",
		Long: `Downloads a model a job produced (a Hugging Face directory: config.json,
model.safetensors, vocab.txt, ...) into DIR: final, the model at the end; best, the
best by the spec's metric; checkpoint, the latest resumable one. The coordinators keep
a copy of each; when they cannot give one, final and best come from a node that
trained the job and still holds them.

For a predict job (bertnode infer) --output is a file: the predictions of every
record of the input, in its order, as bertnode predict prints them.`,
		Example: `  bertnode download job-3 --output models/sms --kind best
  bertnode download job-4 --output scores.jsonl`,
		Args: cobra.ExactArgs(1),
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
		if j, err := cl.Job(ctx, args[0]); err == nil && j.Kind == api.KindPredict {
			return downloadOutput(ctx, cl, j, output, cmd.OutOrStdout())
		}
		j, a, err := downloadResult(ctx, cl, args[0], kind, output)
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s model of %s (step %d, %s) in %s\n", kind, j.ID, a.Step, byteSize(a.Size), output)
		return nil
	}
	c.Flags().StringVar(&output, "output", "", "the `DIR` to write the model into (made if missing)")
	c.Flags().StringVar(&kind, "kind", "final", "which model: final, best or checkpoint")
	return c
}

// downloadResult writes a job's model of kind into dir: from the coordinators' blob
// store, or, when they cannot give it (final and best only), from a node that trained
// the job and keeps it. Nothing is written unless the whole download checks out.
func downloadResult(ctx context.Context, cl *api.Client, id, kind, dir string) (*api.Job, api.Artifact, error) {
	j, err := cl.Job(ctx, id)
	if err != nil {
		return nil, api.Artifact{}, err
	}
	a, ok := j.Results[kind]
	if !ok {
		var have []string
		for k := range j.Results {
			have = append(have, k)
		}
		slices.Sort(have)
		return j, a, fmt.Errorf("%s (%s) has no %s model; it has: %s", j.ID, j.State, kind, or(strings.Join(have, ", "), "none"))
	}
	tmp, err := os.CreateTemp("", "bertnode-download-*")
	if err != nil {
		return j, a, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	// The blob is checked against its hash as a whole before a file is written.
	rc, _, err := cl.GetBlob(ctx, a.Blob)
	if err == nil {
		_, err = io.Copy(tmp, rc)
		rc.Close()
	}
	if err != nil {
		if kind == "checkpoint" {
			return j, a, fmt.Errorf("%s %s model: %w", j.ID, kind, err)
		}
		if nerr := fromNodes(ctx, cl, j, kind, tmp); nerr != nil {
			return j, a, fmt.Errorf("%s %s model: from the coordinators: %v; from the nodes: %w", j.ID, kind, err, nerr)
		}
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return j, a, err
	}
	if err := tarball.Unpack(tmp, dir); err != nil {
		return j, a, fmt.Errorf("%s %s model: %w", j.ID, kind, err)
	}
	return j, a, nil
}

// fromNodes fetches a job's model from the first node that serves it (node.ResultsHandler).
func fromNodes(ctx context.Context, cl *api.Client, j *api.Job, kind string, w *os.File) error {
	nodes, err := cl.Nodes(ctx)
	if err != nil {
		return err
	}
	var errs []string
	for _, n := range nodes {
		if n.HTTPAddr == "" || n.Health != api.Alive {
			continue
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/v1/jobs/%s/results/%s", n.HTTPAddr, j.ID, kind), nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+cl.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			errs = append(errs, n.ID+": "+err.Error())
			continue
		}
		if resp.StatusCode == http.StatusOK {
			w.Truncate(0)
			w.Seek(0, io.SeekStart)
			_, err = io.Copy(w, resp.Body)
		} else {
			err = fmt.Errorf("%s", resp.Status)
		}
		resp.Body.Close()
		if err == nil {
			return nil
		}
		errs = append(errs, n.ID+": "+err.Error())
	}
	return fmt.Errorf("no node has it (%s)", or(strings.Join(errs, "; "), "no live node"))
}
