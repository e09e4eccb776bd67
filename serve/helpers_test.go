package serve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bertnode/bertnode/internal/nativeenv"
	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/tokenize"
	"github.com/bertnode/bertnode/train"
)

const (
	smsFile   = "../data/sms_spam/SMSSpamCollection"
	vocabFile = "../data/vocab/bert-base-uncased.vocab.txt"
	maxLen    = 32 // the served models' max length: short, so that long texts are easy to make
)

var fixtures string // holds the checkpoints, made once per test binary

func TestMain(m *testing.M) {
	nativeenv.Ensure()
	dir, err := os.MkdirTemp("", "bertnode-serve-test-")
	if err != nil {
		panic(err)
	}
	fixtures = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var (
	ckptMu sync.Mutex
	ckpts  = map[string]string{}
)

// checkpoint is a tiny random-init checkpoint of task, prepared on a little real or
// made-up data and saved as train writes it (untrained: the tests compare the server
// with predict, not with the truth).
func checkpoint(t *testing.T, task string) string {
	t.Helper()
	ckptMu.Lock()
	defer ckptMu.Unlock()
	if dir, ok := ckpts[task]; ok {
		return dir
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	s := train.Defaults()
	s.Task, s.Model, s.Tokenizer, s.MaxLength, s.Threads = task, "tiny", vocabFile, 64, 2
	s.Output = filepath.Join(fixtures, task+"-run")
	write := func(name, content string) string {
		path := filepath.Join(fixtures, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	switch task {
	case "classify":
		b, err := os.ReadFile(smsFile)
		if err != nil {
			t.Fatal(err)
		}
		s.Train, s.Data = write("sms.txt", strings.Join(strings.SplitAfter(string(b), "\n")[:200], "")), shard.Spec{Format: shard.LabelText}
	case "multilabel":
		s.Train = write("tags.jsonl", `{"text": "cheap flights to paris", "label": ["travel", "deals"]}
{"text": "the match ended in a draw", "label": ["sport"]}
{"text": "discount tickets for the final", "label": ["sport", "deals"]}
`)
	case "regression": // a cross-encoder: (query, passage) pairs scored by relevance
		s.Train, s.Data = write("pairs.jsonl", `{"text": "cheap flights", "text_pair": "discount tickets to paris", "label": 0.9}
{"text": "cheap flights", "text_pair": "the match ended in a draw", "label": 0.05}
{"text": "football results", "text_pair": "the match ended in a draw", "label": 1}
`), shard.Spec{TextPair: "text_pair"}
	case "ner":
		s.Train, s.Data = write("ner.conll", "Peter B-person\nBlackburn I-person\nvisited O\nBrussels B-location\n. O\n\n"+
			"EU B-corporation\nrejects O\nGerman O\ncall O\n"), shard.Spec{Format: shard.CoNLL}
	case "qa":
		s.Train, s.Data = write("qa.json", `{"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": "The Eiffel Tower is in Paris and was built in 1889.",
			"qas": [{"id": "q1", "question": "Where is the tower?", "answers": [{"text": "Paris", "answer_start": 23}]}]}]}]}`), shard.Spec{Format: shard.SQuAD}
	case "mlm":
		s.Train = write("texts.jsonl", `{"text": "the capital of france is paris ."}
{"text": "the capital of italy is rome ."}
`)
	case "choice":
		s.Train = write("choice.jsonl", `{"text": "She opened the umbrella because", "choices": ["it was sunny", "it was raining", "she was hungry"], "label": 1}
{"text": "He drank water because", "choices": ["he was thirsty", "it was late", "the bus came"], "label": 0}
`)
	default:
		t.Fatalf("no fixture for task %s", task)
	}
	tr, err := train.Prepare(s, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(fixtures, task)
	if err := tr.Save(dir); err != nil {
		t.Fatal(err)
	}
	ckpts[task] = dir
	return dir
}

// load is a checkpoint as `bertnode serve` and `bertnode predict` load it. Each load is
// its own model: the server's is used from its batcher's goroutine, a reference one
// from the test's (locked) goroutine.
func load(t *testing.T, dir string) *train.Trainer {
	t.Helper()
	runtime.LockOSThread()
	s := train.Defaults()
	s.Model, s.MaxLength, s.Threads = dir, maxLen, 2
	tr, err := train.ForEval(s, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// server is a Server on a loopback port.
type server struct {
	*Server
	url    string
	stop   context.CancelFunc
	served chan error
}

// start serves tr with opts (DefaultOptions when nil changes nothing) until the test
// ends, when it must shut down cleanly.
func start(t *testing.T, tr *train.Trainer, change func(*Options)) *server {
	t.Helper()
	opts := DefaultOptions()
	opts.Log = log.New(io.Discard, "", 0)
	if change != nil {
		change(&opts)
	}
	s, err := New(tr, opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := &server{Server: s, url: "http://" + ln.Addr().String(), stop: cancel, served: make(chan error, 1)}
	go func() { srv.served <- s.Serve(ctx, ln, time.Minute) }()
	t.Cleanup(func() {
		cancel()
		if err := <-srv.served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv
}

// call sends a request and returns the status and the body.
func call(t *testing.T, method, url, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// post sends body and decodes a 200 answer into a T.
func post[T any](t *testing.T, url, body string) T {
	t.Helper()
	code, b := call(t, http.MethodPost, url, body)
	if code != http.StatusOK {
		t.Fatalf("POST %s %.200s: %d %s", url, body, code, b)
	}
	return decodeAs[T](t, b)
}

func decodeAs[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("answer %.300s: %v", b, err)
	}
	return v
}

// jsonBody is v as JSON.
func jsonBody(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// errorBody is an error answer.
type errorBody struct {
	Error string `json:"error"`
	Type  string `json:"type"`
}

// wantError sends a request that must fail with code, of kind, its message naming every
// one of want.
func wantError(t *testing.T, method, url, body string, code int, kind string, want ...string) {
	t.Helper()
	got, b := call(t, method, url, body)
	e := decodeAs[errorBody](t, b)
	if got != code || e.Type != kind {
		t.Errorf("%s %s %.80q: %d %s, want %d %s", method, url, body, got, b, code, kind)
	}
	for _, w := range want {
		if !strings.Contains(e.Error, w) {
			t.Errorf("%s %s %.80q: error %q does not name %q", method, url, body, e.Error, w)
		}
	}
}

// metric reads one sample of the server's /metrics, 0 when absent.
func metric(t *testing.T, url, name string) float64 {
	t.Helper()
	code, b := call(t, http.MethodGet, url+"/metrics", "")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", sc.Text(), err)
			}
			return f
		}
	}
	return 0
}

// gate holds the first batch until released, so that a test can fill the queue.
type gate struct {
	inner   Runner
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func newGate(inner Runner) *gate {
	return &gate{inner: inner, entered: make(chan struct{}), release: make(chan struct{})}
}

func (g *gate) Run(seqs []*tokenize.Encoding) ([][]float32, error) {
	g.once.Do(func() {
		close(g.entered)
		<-g.release
	})
	return g.inner.Run(seqs)
}

// texts are SMS messages, some over maxLen tokens.
func smsTexts(t *testing.T, n int) []string {
	t.Helper()
	f, err := os.Open(smsFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() && len(out) < n {
		_, text, ok := strings.Cut(sc.Text(), "\t")
		if !ok {
			t.Fatalf("%s: %q", smsFile, sc.Text())
		}
		out = append(out, text)
	}
	return out
}
