package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/bertnode/bertnode/internal/nativeenv"
	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/train"
)

const (
	smsFile   = "../../data/sms_spam/SMSSpamCollection"
	vocabFile = "../../data/vocab/bert-base-uncased.vocab.txt"
)

// shared holds what several tests use, made once: the trained SMS model.
var shared string

// asMain makes the test binary stand in for bertnode in the processes the cluster tests
// start (bertnode cluster up runs os.Executable()).
const asMain = "BERTNODE_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMain) == "1" {
		main()
		os.Exit(0)
	}
	nativeenv.Ensure()
	dir, err := os.MkdirTemp("", "bertnode-cmd-test-")
	if err != nil {
		panic(err)
	}
	shared = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// bertnode runs the command line in-process with stdin and returns its output.
func bertnode(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetArgs(args)
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&errOut)
	err = root.Execute()
	return out.String(), errOut.String(), err
}

// mustRun is bertnode without stdin, failing the test on an error.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := bertnode(t, "", args...)
	if err != nil {
		t.Fatalf("bertnode %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// wantErr runs a command that must fail with an error naming every one of want.
func wantErr(t *testing.T, stdin string, want []string, args ...string) {
	t.Helper()
	_, _, err := bertnode(t, stdin, args...)
	for _, w := range want {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("bertnode %s: error %v, want it to name %q", strings.Join(args, " "), err, w)
		}
	}
}

// writeLines writes lines (each ended by a newline) to name in dir.
func writeLines(t *testing.T, dir, name string, lines ...string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// smsModel is a tiny BERT trained for 40 steps on SMS spam messages 401 and on,
// evaluated on messages 1-400 (evalFile) by the trainer: what eval must reproduce.
type smsModel struct {
	dir, evalFile string
	want          train.EvalResult
}

var (
	smsOnce  sync.Once
	smsFixed smsModel
	smsErr   error
)

func trainedSMS(t *testing.T) smsModel {
	t.Helper()
	smsOnce.Do(func() { smsFixed, smsErr = trainSMS() })
	if smsErr != nil {
		t.Fatal(smsErr)
	}
	return smsFixed
}

func trainSMS() (smsModel, error) {
	runtime.LockOSThread() // stays locked: the caller is a test goroutine
	b, err := os.ReadFile(smsFile)
	if err != nil {
		return smsModel{}, err
	}
	lines := strings.SplitAfter(string(b), "\n")
	m := smsModel{evalFile: filepath.Join(shared, "sms-eval.txt")}
	trainFile := filepath.Join(shared, "sms-train.txt")
	if err := os.WriteFile(m.evalFile, []byte(strings.Join(lines[:400], "")), 0o644); err != nil {
		return m, err
	}
	if err := os.WriteFile(trainFile, []byte(strings.Join(lines[400:], "")), 0o644); err != nil {
		return m, err
	}
	s := train.Defaults()
	s.Train, s.Eval, s.Data = trainFile, m.evalFile, shard.Spec{Format: shard.LabelText}
	s.Model, s.Tokenizer = "tiny", vocabFile
	s.MaxLength, s.BatchSize, s.LR, s.MaxSteps, s.Threads = 64, 32, 2e-3, 40, 2
	s.Metric, s.Output = "accuracy", filepath.Join(shared, "sms-run")
	tr, err := train.Prepare(s, io.Discard)
	if err != nil {
		return m, err
	}
	res, err := tr.Run(context.Background())
	if err != nil {
		return m, err
	}
	m.dir, m.want = filepath.Join(s.Output, "final"), res.Final
	return m, nil
}

// readLines returns a file's lines.
func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// TestNeedsNative: the commands that may run libtorch get its settings (a re-execution
// when missing); those that only talk to the cluster or write files start without it.
func TestNeedsNative(t *testing.T) {
	for _, c := range []struct {
		args []string
		want bool
	}{
		{[]string{"train", "spec.yaml"}, true}, {[]string{"join", "127.0.0.1:7300"}, true}, {[]string{"serve", "--model", "m"}, true},
		{[]string{"bench", "allreduce"}, true}, {[]string{"version"}, true}, {[]string{"predict", "--help"}, true},
		{[]string{"bogus"}, true},
		{nil, false}, {[]string{"--help"}, false}, {[]string{"nodes", "drain", "n1"}, false}, {[]string{"status", "job-1"}, false},
		{[]string{"cluster", "up", "--nodes", "3"}, false}, {[]string{"coordinator", "--bootstrap"}, false},
		{[]string{"submit", "job.yaml", "--wait"}, false}, {[]string{"completion", "bash"}, false}, {[]string{"help", "train"}, false},
	} {
		if got := needsNative(newRootCmd(), c.args); got != c.want {
			t.Errorf("bertnode %v: needs libtorch's settings %v, want %v", c.args, got, c.want)
		}
	}
	// Every other command may run libtorch, so a command added without a thought gets its
	// settings; the list names only commands that exist.
	names := map[string]bool{}
	for _, c := range newRootCmd().Commands() {
		names[c.Name()] = true
	}
	for name := range clusterOnly {
		if !names[name] && name != "help" && name != "completion" {
			t.Errorf("clusterOnly names %q, which is no command", name)
		}
	}
}
