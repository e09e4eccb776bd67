package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/dataset"
	"github.com/bertnode/bertnode/internal/tarball"
	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/train"
	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"
)

func init() { subcommands = append(subcommands, newSubmitCmd) }

func newSubmitCmd() *cobra.Command {
	var (
		name, resume string
		wait         bool
	)
	c := &cobra.Command{
		Use:   "submit SPEC.yaml [--wait]",
		Short: "Submit a training job to the cluster",
		Long: `Submits a job spec, the same YAML bertnode train reads, with a cluster: section
for how many nodes it trains on (nodes, min_nodes, batch, codec, rejoin_window,
data, ...). The spec is checked here first, as train checks it.

Unless cluster.data is shared (every node and coordinator sees the paths), the
local data files (train, eval) are uploaded to the coordinators' blob store and the
spec sent names them blob:<sha256>; so are the model, the tokenizer and
distill.teacher when they are local paths (a Hugging Face checkpoint directory, a
vocab.txt), which each node fetches once. Presets and hub names are left for the nodes to resolve.
A Parquet data file, or an hf://datasets/ URL, is downloaded and converted here (to
JSON lines, or with data.format squad to SQuAD JSON), and that is uploaded with
data.format set to match (so cluster.data shared cannot read one).

With --wait it follows the job until it ends, showing step, loss, samples/s and the
time left, then prints the final metrics; it exits 0 if the job succeeded and 1 if
not. Without it, follow a job with bertnode status JOB or bertnode logs JOB -f.`,
		Example: `  bertnode submit examples/sms.yaml --coordinator 10.0.0.1:7300 --wait`,
		Args:    cobra.ExactArgs(1),
	}
	cf := addClusterFlags(c, true)
	c.RunE = func(cmd *cobra.Command, args []string) error {
		path := args[0]
		text, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if api.SpecKind(string(text)) == api.KindPredict {
			return fmt.Errorf("%s: kind: predict: run it with bertnode infer, which reads the model's task and uploads the model and input", path)
		}
		spec, err := checkJobSpec(string(text), path)
		if err != nil {
			return err
		}
		cl, ctx, stop, err := cf.connect(cmd)
		if err != nil {
			return err
		}
		defer stop()
		out := cmd.OutOrStdout()
		sent := string(text)
		if spec.Cluster.WithDefaults().Data != "shared" {
			if sent, err = uploadData(ctx, cl, sent, out, nil); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
		}
		if name == "" {
			name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
		}
		_, err = submitJob(ctx, cl, api.SubmitRequest{Name: name, Spec: sent, ResumeOf: resume}, wait, out)
		return err
	}
	c.Flags().StringVar(&name, "name", "", "the job's name (default: the spec file's)")
	c.Flags().StringVar(&resume, "resume", "", "the `JOB` this one continues")
	c.Flags().BoolVar(&wait, "wait", false, "follow the job until it ends; exit 1 unless it succeeds")
	return c
}

// submitJob submits req and, with wait, follows the job until it ends: it returns the
// job as it ended (nil without wait), and an error unless it succeeded.
func submitJob(ctx context.Context, cl *api.Client, req api.SubmitRequest, wait bool, out io.Writer) (*api.Job, error) {
	id, err := cl.Submit(ctx, req)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "submitted %s (%s)\n", id, req.Name)
	if !wait {
		return nil, nil
	}
	j, err := follow(ctx, cl, id, out)
	if err != nil {
		return nil, err
	}
	if j.State != api.Succeeded {
		return j, fmt.Errorf("%s %s: %s", id, j.State, j.Reason)
	}
	return j, nil
}

// checkJobSpec parses and checks a job spec's text as train and the coordinator will;
// errors begin with where.
func checkJobSpec(text, where string) (train.Spec, error) {
	spec, err := train.ParseSpec(text)
	if err == nil {
		err = spec.Validate()
	}
	if err == nil {
		err = spec.Cluster.WithDefaults().Validate()
	}
	for _, d := range [][2]string{{"train", spec.Train}, {"eval", spec.Eval}} {
		if err == nil && spec.Cluster.WithDefaults().Data == "shared" && dataset.Derived(d[1], spec.Data) {
			err = fmt.Errorf("%s: %s: cluster.data shared has the nodes read it in place, but it is downloaded or converted to JSON lines first: leave cluster.data unset, and bertnode submit uploads what it reads", d[0], d[1])
		}
	}
	if err != nil {
		return spec, fmt.Errorf("%s: %w", where, err)
	}
	return spec, nil
}

// uploadData uploads the spec's local train and eval files, and its model, tokenizer
// and distillation teacher when they are local paths (packed as a tar: a directory's
// files, or the one file), and returns the spec with their paths replaced by
// blob:<sha256> (a packed file: blob:<sha256>/<name>), the rest of the text as it was.
// A model or tokenizer that is no local path (a preset, a hub name) stays as it is. A
// non-nil done holds what earlier calls uploaded (field and path -> reference), so that
// a sweep's trials upload each file once.
func uploadData(ctx context.Context, cl *api.Client, text string, out io.Writer, done map[string]string) (string, error) {
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(text), &root); err != nil {
		return "", err
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return "", errors.New("the spec is not a YAML mapping")
	}
	// field uploads one field's path and replaces it by its blob reference.
	field := func(name string, val *yaml.Node, send func(context.Context, *api.Client, string, io.Writer) (string, error)) error {
		if val.Value == "" || strings.HasPrefix(val.Value, "blob:") {
			return nil
		}
		ref, ok := done[name+"\x00"+val.Value]
		if !ok {
			var err error
			if ref, err = send(ctx, cl, val.Value, out); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if done != nil {
				done[name+"\x00"+val.Value] = ref
			}
		}
		if ref != "" {
			val.Value, val.Style = "blob:"+ref, 0
		}
		return nil
	}
	spec, err := train.ParseSpec(text)
	if err != nil {
		return "", err
	}
	// A Parquet file, or a split of the hub's conversion, is converted here (to JSON
	// lines, or squad) and uploaded so: the coordinators and nodes read the conversion.
	sendData := func(ctx context.Context, cl *api.Client, path string, out io.Writer) (string, error) {
		f, err := dataset.Resolve(path, spec.Data)
		if err != nil {
			return "", err
		}
		return uploadAs(ctx, cl, f.Path, path, out)
	}
	var converted []string
	m := root.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		key, val := m.Content[i].Value, m.Content[i+1]
		var err error
		switch key {
		case "train", "eval":
			if dataset.Converted(val.Value, spec.Data) {
				converted = append(converted, key)
			}
			err = field(key, val, sendData)
		case "model", "tokenizer":
			err = field(key, val, uploadPacked)
		case "distill":
			for j := 0; val.Kind == yaml.MappingNode && j+1 < len(val.Content); j += 2 {
				if val.Content[j].Value == "teacher" {
					err = field("distill.teacher", val.Content[j+1], uploadPacked)
				}
			}
		}
		if err != nil {
			return "", err
		}
	}
	if len(converted) > 0 {
		f := dataset.ConvertedFormat(spec.Data)
		if len(converted) < len(datasets(spec)) {
			return "", fmt.Errorf("%s is Parquet, read as %s, and the other data file is not: the cluster reads both with one data.format", converted[0], f)
		}
		setDataFormat(m, f)
	}
	b, err := yaml.Marshal(&root)
	return string(b), err
}

// datasets are the spec's data files that are set.
func datasets(s train.Spec) []string {
	if s.Eval == "" {
		return []string{s.Train}
	}
	return []string{s.Train, s.Eval}
}

// setDataFormat sets data.format in the spec's top-level mapping m.
func setDataFormat(m *yaml.Node, f shard.Format) {
	scalar := func(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: v} }
	for i := 0; i+1 < len(m.Content); i += 2 {
		if d := m.Content[i+1]; m.Content[i].Value == "data" && d.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(d.Content); j += 2 {
				if d.Content[j].Value == "format" {
					d.Content[j+1] = scalar(string(f))
					return
				}
			}
			d.Content = append(d.Content, scalar("format"), scalar(string(f)))
			return
		}
	}
	m.Content = append(m.Content, scalar("data"), &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{scalar("format"), scalar(string(f))}})
}

// uploadPacked uploads a local model or tokenizer path as a tar, and returns its
// reference without the blob: prefix; "" when path is not a local path.
func uploadPacked(ctx context.Context, cl *api.Client, path string, out io.Writer) (string, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp("", "bertnode-upload-*.tar")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if fi.IsDir() {
		err = tarball.Pack(path, tmp)
	} else {
		err = tarball.PackFile(path, tmp)
	}
	if err != nil {
		return "", err
	}
	sha, err := upload(ctx, cl, tmp.Name(), io.Discard)
	if err != nil {
		return "", fmt.Errorf("uploading %s: %w", path, err)
	}
	size, _ := tmp.Seek(0, io.SeekCurrent)
	fmt.Fprintf(out, "uploaded %s (%s packed) as blob %s\n", path, byteSize(size), sha[:12])
	if fi.IsDir() {
		return sha, nil
	}
	return sha + "/" + filepath.Base(path), nil
}

func upload(ctx context.Context, cl *api.Client, path string, out io.Writer) (string, error) {
	return uploadAs(ctx, cl, path, path, out)
}

// uploadAs uploads the file at path, named name in messages (the file a conversion
// was made from).
func uploadAs(ctx context.Context, cl *api.Client, path, name string, out io.Writer) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	start := time.Now()
	sha, err := cl.PutBlob(ctx, f, fi.Size())
	if err != nil {
		return "", fmt.Errorf("uploading %s: %w", name, err)
	}
	from := ""
	if name != path {
		from = ", from " + path
	}
	fmt.Fprintf(out, "uploaded %s (%s%s) as blob %s in %v\n", name, byteSize(fi.Size()), from, sha[:12], time.Since(start).Round(time.Millisecond))
	return sha, nil
}

// follow prints a job's progress until it ends, and returns it as it ended.
func follow(ctx context.Context, cl *api.Client, id string, out io.Writer) (*api.Job, error) {
	var idx uint64
	var last string
	var shown time.Time
	for {
		j, next, err := cl.JobWait(ctx, id, idx, time.Minute)
		if err != nil {
			return nil, err
		}
		idx = next
		line := progressLine(j)
		// A line when something other than the numbers changes, else once a second.
		if line != last && (j.State.Done() || time.Since(shown) >= time.Second || stateOf(line) != stateOf(last)) {
			fmt.Fprintln(out, line)
			last, shown = line, time.Now()
		}
		if j.State.Done() {
			printOutcome(out, j)
			return j, nil
		}
		if j.Kind == api.KindPredict {
			// Every unit done changes the job, and the job holds every unit: look once a
			// second rather than at each.
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
}

// stateOf is the part of a progress line before its numbers.
func stateOf(line string) string {
	s, _, _ := strings.Cut(line, ": step")
	return s
}
