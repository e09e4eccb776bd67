package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/bertnode/bertnode/serve"
	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/train"
)

// runServe starts `bertnode serve` in-process on a loopback port and returns its URL
// and a channel that gets its error once it has stopped.
func runServe(t *testing.T, args ...string) (string, <-chan error) {
	t.Helper()
	// serve puts the process's threads in the background: the tests after it run as usual
	t.Cleanup(func() {
		if err := serve.DefaultThreads(); err != nil {
			t.Error(err)
		}
	})
	root := newRootCmd()
	r, w := io.Pipe()
	root.SetArgs(append([]string{"serve", "--addr", "127.0.0.1:0", "--threads", "2"}, args...))
	root.SetOut(io.Discard)
	root.SetErr(w)
	done := make(chan error, 1)
	go func() {
		err := root.ExecuteContext(context.Background())
		w.Close()
		done <- err
	}()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if _, url, ok := strings.Cut(sc.Text(), " on http://"); ok && strings.HasPrefix(sc.Text(), "serving ") {
			go io.Copy(io.Discard, r)
			return "http://" + url, done
		}
	}
	t.Fatalf("bertnode serve %s stopped before serving: %v", strings.Join(args, " "), <-done)
	return "", nil
}

// postJSON posts v and decodes the 200 answer into out.
func postJSON(t *testing.T, url string, v, out any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(url, "application/json", strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %d %s (%v)", url, resp.StatusCode, body, err)
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("POST %s: %v in %s", url, err, body)
	}
}

// stopServe sends the process SIGTERM, as a service manager does, and waits for serve
// to drain and return.
func stopServe(t *testing.T, done <-chan error) {
	t.Helper()
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("bertnode serve: %v", err)
	}
}

// The server answers what `bertnode predict` prints for the same input and checkpoint,
// for each task, and stops cleanly on SIGTERM.
func TestServeAnswersAsPredict(t *testing.T) {
	runtime.LockOSThread()
	texts := []string{"WINNER!! Claim your free prize now", "see you at 6?", "Peter Blackburn visited Brussels. Zoë lives in Zürich"}

	m := trainedSMS(t)
	url, done := runServe(t, "--model", m.dir, "--max-length", "64")
	var cls struct{ Predictions []train.Prediction }
	postJSON(t, url+"/v1/classify", map[string]any{"texts": texts}, &cls)
	want := jsonLines[train.Prediction](t, mustRun(t, append([]string{"predict", "--model", m.dir, "--max-length", "64"}, texts...)...))
	if len(cls.Predictions) != len(want) {
		t.Fatalf("%d predictions, predict prints %d", len(cls.Predictions), len(want))
	}
	for i, p := range cls.Predictions {
		w := want[i]
		if p.Text != w.Text || p.Label != w.Label || !slices.Equal(p.Labels, w.Labels) || math.Abs(p.Probs[p.Label]-w.Probs[w.Label]) > 1e-5 {
			t.Errorf("text %d: %+v; predict: %+v", i, p, w)
		}
	}
	stopServe(t, done)

	ner := tinyCheckpoint(t, "ner", writeLines(t, t.TempDir(), "ner.conll", nerData), shard.CoNLL)
	url, done = runServe(t, "--model", ner)
	var tags struct{ Predictions []train.Tagged }
	postJSON(t, url+"/v1/ner", map[string]any{"texts": texts}, &tags)
	wantTags := jsonLines[train.Tagged](t, mustRun(t, append([]string{"predict", "--model", ner}, texts...)...))
	for i, p := range tags.Predictions {
		w := wantTags[i]
		if fmt.Sprint(p.Words, p.Tags, p.Entities) != fmt.Sprint(w.Words, w.Tags, w.Entities) || math.Abs(p.Confidence-w.Confidence) > 1e-5*w.Confidence {
			t.Errorf("text %d: %+v; predict: %+v", i, p, w)
		}
	}
	stopServe(t, done)

	dir := t.TempDir()
	qa := tinyCheckpoint(t, "qa", writeSQuAD(t, dir, false), shard.SQuAD)
	url, done = runServe(t, "--model", qa, "--max-length", "48")
	var qs []map[string]string
	for _, q := range squadQuestions {
		qs = append(qs, map[string]string{"id": q[0], "question": q[1], "context": squadContext})
	}
	var ans struct {
		Answers []struct {
			ID, Answer string
			Start, End int
			Score      float64
		}
	}
	postJSON(t, url+"/v1/qa", map[string]any{"questions": qs}, &ans)
	wantAns := answers(t, mustRun(t, "predict", "--model", qa, "--max-length", "48", "--file", questionLines(t, dir)))
	for i, a := range ans.Answers {
		w := wantAns[i]
		if a.Answer != w.Answer || a.Start != w.Start || math.Abs(a.Score-w.Score) > 1e-5 || a.ID != squadQuestions[i][0] {
			t.Errorf("question %d: %+v; predict: %+v", i, a, w)
		}
	}
	stopServe(t, done)
}

// Flags that cannot work are errors before anything is served.
func TestServeFlagErrors(t *testing.T) {
	m := trainedSMS(t)
	wantErr(t, "", []string{"--model"}, "serve")
	wantErr(t, "", []string{"max batch tokens: 16 is less than one sequence of the max length 64"},
		"serve", "--model", m.dir, "--max-length", "64", "--max-batch-tokens", "16")
	wantErr(t, "", []string{"max queue"}, "serve", "--model", m.dir, "--max-queue", "4")
	wantErr(t, "", []string{"max texts"}, "serve", "--model", m.dir, "--max-texts", "0")
}

// TestServeProcs: the server runs with the cores' Ps plus one per model instance, the
// same however often it is set up in one process, unless $GOMAXPROCS is set.
func TestServeProcs(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	t.Setenv("GOMAXPROCS", "")
	serveProcs(2)
	serveProcs(2)
	if got := runtime.GOMAXPROCS(0); got != defaultProcs+2 {
		t.Fatalf("GOMAXPROCS %d after two instances, want the %d cores' plus 2", got, defaultProcs)
	}
	t.Setenv("GOMAXPROCS", "3")
	serveProcs(5)
	if got := runtime.GOMAXPROCS(0); got != defaultProcs+2 {
		t.Fatalf("GOMAXPROCS %d with $GOMAXPROCS set: serveProcs should have left it", got)
	}
}
