package coordinator_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/coordinator"
	"github.com/bertnode/bertnode/coordinator/coordtest"
	"github.com/bertnode/bertnode/shard"
)

// TestSubmitRejectsBadSpecs: a bad spec is a 400 naming its field, and no job.
func TestSubmitRejectsBadSpecs(t *testing.T) {
	c := coordtest.New(t, coordtest.Options{})
	cl := c.Client()
	data := putData(t, cl, trainData)
	unknown := "blob:" + strings.Repeat("0", 64)
	for _, tc := range []struct{ spec, field, says string }{
		{"train: [", "spec", "yaml"},
		{"- a list", "spec", "mapping"},
		{"task: translate\ntrain: " + data, "task", "translate"},
		{"epochs: 1", "train", "required"},
		{"train: data/train.tsv", "train", "upload it"},
		{"train: blob:xyz", "train", "sha256"},
		{"train: " + unknown, "train", "not in the blob store"},
		{"train: " + data + "\neval: " + unknown, "eval", "not in the blob store"},
		{"train: " + data + "\neval_split: 1.5", "eval_split", "1.5"},
		{"train: " + data + "\nbatch_size: lots", "batch_size", "line 2"},
		{"train: " + data + "\ngrad_accum: 0", "grad_accum", "positive"},
		{"train: " + data + "\nepochs: 0", "epochs", "max_steps"},
		{"train: " + data + "\ndata: {format: xml}", "data", "xml"},
		{"train: " + data + "\ncluster: 3", "cluster", "mapping"},
		{"train: " + data + "\ncluster: {nodes: 100}", "cluster.nodes", "100"},
		{"train: " + data + "\ncluster: {nodes: 2, min_nodes: 3}", "cluster.min_nodes", "3"},
		{"train: " + data + "\ncluster: {rejoin_window: soon}", "cluster.rejoin_window", "soon"},
		{"train: " + data + "\ncluster: {data: nfs}", "cluster.data", "nfs"},
		{"train: /no/such/file\ncluster: {data: shared}", "train", "no such file"},
		{"train: " + data + "\nmodel: " + unknown, "model", "not in the blob store"},
		{"train: " + data + "\ntokenizer: " + unknown + "/vocab.txt", "tokenizer", "not in the blob store"},
		{"train: " + data + "\ntokenizer: " + data + "/../vocab.txt", "tokenizer", "file name"},
		{"train: " + data + "\nmodel: blob:xyz", "model", "sha256"},
	} {
		_, err := cl.Submit(ctx(t), api.SubmitRequest{Spec: tc.spec})
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || ae.Field != tc.field || !strings.Contains(ae.Message, tc.says) {
			t.Errorf("spec %q: got %v (field %q), want a 400 on %s saying %q", tc.spec, err, fieldOf(err), tc.field, tc.says)
		}
	}
	code, _, body := raw(t, "POST", c.Servers[0].APIAddr(), "/v1/jobs", c.Secret.Token(), []byte(`{"spec": 3}`))
	var e api.Error
	if json.Unmarshal(body, &e); code != 400 || e.Field != "spec" {
		t.Errorf("spec of the wrong JSON type: %d %s", code, body)
	}
	code, _, body = raw(t, "POST", c.Servers[0].APIAddr(), "/v1/jobs", c.Secret.Token(), []byte(`{"spec": `))
	if code != 400 || !strings.Contains(string(body), "JSON") {
		t.Errorf("truncated JSON: %d %s", code, body)
	}
	if js, err := cl.Jobs(ctx(t)); err != nil || len(js) != 0 {
		t.Fatalf("jobs after bad submissions: %v %v", js, err)
	}

	// A shared path the coordinator can read is fine.
	shared := filepath.Join(t.TempDir(), "train.tsv")
	os.WriteFile(shared, []byte(trainData), 0o644)
	id, err := cl.Submit(ctx(t), api.SubmitRequest{Spec: "train: " + shared + "\ncluster: {data: shared}\nunknown_to_the_coordinator: 1"})
	if err != nil {
		t.Fatal(err)
	}
	c.WaitFor("the shared file's plan", func() bool { return job(c, id).Train.Records == 3 })
}

// TestSubmitWithUploadedModel: a spec naming an uploaded model and tokenizer is
// accepted and the job lists their blobs, which a node fetches; presets and hub names
// are left to the nodes.
func TestSubmitWithUploadedModel(t *testing.T) {
	c := coordtest.New(t, coordtest.Options{})
	cl := c.Client()
	data := putData(t, cl, trainData)
	model, vocab := putData(t, cl, "a model's tar"), putData(t, cl, "a vocabulary's tar")
	id, err := cl.Submit(ctx(t), api.SubmitRequest{Spec: "train: " + data + "\nmodel: " + model + "\ntokenizer: " + vocab + "/vocab.txt"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"model": strings.TrimPrefix(model, "blob:"), "tokenizer": strings.TrimPrefix(vocab, "blob:")}
	if got := job(c, id).Uploads; !maps.Equal(got, want) {
		t.Errorf("uploads %v, want %v", got, want)
	}
	id, err = cl.Submit(ctx(t), api.SubmitRequest{Spec: "train: " + data + "\nmodel: bert-base-uncased"})
	if err != nil {
		t.Fatal(err)
	}
	if got := job(c, id).Uploads; got != nil {
		t.Errorf("a hub name's job lists uploads %v", got)
	}
}

func fieldOf(err error) string {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae.Field
	}
	return ""
}

// TestPlanningErrorFailsTheJob: the planner's error, naming the file as submitted
// and the line, is the failed job's reason.
func TestPlanningErrorFailsTheJob(t *testing.T) {
	c := coordtest.New(t, coordtest.Options{})
	data := putData(t, c.Client(), "ham\tfine\nno tab here\n")
	id := submit(c, jobSpecText(data, 1, 1))
	c.WaitFor("the job to fail", func() bool { return job(c, id).State == api.Failed })
	if j := job(c, id); j.Reason != "planning train data "+data+": "+data+":2: no tab between label and text" || j.Train.Error == "" {
		t.Fatalf("reason %q", j.Reason)
	}
}

// TestBlockingQuery: a read with ?index waits for a change of what it reads, and
// answers with the same index when the wait ends first.
func TestBlockingQuery(t *testing.T) {
	c := coordtest.New(t, coordtest.Options{})
	cl := c.Client()
	id := submit(c, jobSpecText(putData(t, cl, trainData), 1, 1))
	c.WaitFor("the plan", func() bool { return job(c, id).Reason == "waiting for nodes: 0 of 1 idle" })
	_, idx, err := cl.JobWait(ctx(t), id, 0, 0)
	if err != nil || idx == 0 {
		t.Fatalf("index %d, %v", idx, err)
	}
	// An unrelated write does not wake the query.
	start := time.Now()
	putData(t, cl, "another file")
	_, idx2, err := cl.JobWait(ctx(t), id, idx, 300*time.Millisecond)
	if err != nil || idx2 != idx || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("an idle wait: index %d (was %d) after %v, %v", idx2, idx, time.Since(start), err)
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		cl.Cancel(ctx(t), id)
	}()
	j, idx3, err := cl.JobWait(ctx(t), id, idx, time.Minute)
	if err != nil || j.State != api.Cancelled || idx3 <= idx {
		t.Fatalf("woken: %s at %d (was %d), %v", j.State, idx3, idx, err)
	}
	code, _, body := raw(t, "GET", c.Servers[0].APIAddr(), "/v1/jobs/"+id+"?index=x", c.Secret.Token(), nil)
	if code != 400 || !strings.Contains(string(body), `"field":"index"`) {
		t.Fatalf("bad index: %d %s", code, body)
	}
}

// TestLeaderForgetsDeletedJobs: the list of deleted jobs the nodes read keeps a
// deleted job for Timing.DeletedRetention, in the commands' time, and then the leader
// trims it.
func TestLeaderForgetsDeletedJobs(t *testing.T) {
	c := coordtest.New(t, coordtest.Options{Tweak: func(_ int, cfg *coordinator.Config) {
		cfg.Timing.DeletedRetention = 24 * time.Hour
	}})
	cl := c.Client()
	id := submit(c, jobSpecText(putData(t, cl, trainData), 1, 1))
	if err := cl.Cancel(ctx(t), id); err != nil {
		t.Fatal(err)
	}
	if err := cl.DeleteJob(ctx(t), id); err != nil {
		t.Fatal(err)
	}
	listed := func() bool {
		del, err := cl.DeletedJobs(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		_, ok := del[id]
		return ok
	}
	c.Clock.Advance(23 * time.Hour)
	settle()
	if !listed() {
		t.Fatal("a job deleted less than the retention ago was forgotten")
	}
	c.Clock.Advance(2 * time.Hour)
	c.WaitFor("the leader to forget the deleted job", func() bool { return !listed() })
}

// TestRegressionJob: a regression job is accepted and its task reaches the planner,
// which reads the labels as scores (stream.Build; planned for real in cmd/bertnode's
// TestClusterRegressionJob).
func TestRegressionJob(t *testing.T) {
	tasks := make(chan string, 1)
	c := coordtest.New(t, coordtest.Options{Tweak: func(_ int, cfg *coordinator.Config) {
		cfg.Planner = coordinator.PlannerFunc(func(ctx context.Context, path string, data shard.Spec, opts coordinator.PlanOptions) (coordinator.Planned, error) {
			tasks <- opts.Task
			return coordtest.LinePlanner(ctx, path, data, opts)
		})
	}})
	spec := strings.Replace(jobSpecText(putData(t, c.Client(), "4.5\thello there\n0.25\twin a prize\n"), 1, 1), "task: classify", "task: regression", 1)
	id := submit(c, spec)
	if task := <-tasks; task != "regression" {
		t.Fatalf("planned for task %q", task)
	}
	c.WaitFor("the plan", func() bool { return job(c, id).Train.Records == 2 })
}
