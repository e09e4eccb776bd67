package serve

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bertnode/bertnode/tokenize"
	"github.com/bertnode/bertnode/train"
)

type reply struct {
	code   int
	body   []byte
	header http.Header
	err    error
}

// send posts body in the background.
func send(url, body string) <-chan reply {
	c := make(chan reply, 1)
	go func() {
		resp, err := http.Post(url, "application/json", strings.NewReader(body))
		if err != nil {
			c <- reply{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		c <- reply{code: resp.StatusCode, body: b, header: resp.Header, err: err}
	}()
	return c
}

// gated serves the classify checkpoint with its first batch held by a gate, so that
// what follows queues up; ref is a second copy of the model for reference answers.
func gated(t *testing.T, change func(*Options)) (srv *server, g *gate, ref *train.Trainer) {
	t.Helper()
	dir := checkpoint(t, "classify")
	ref = load(t, dir)
	tr := load(t, dir)
	g = newGate(RunnerFunc(tr.InferBatch))
	srv = start(t, tr, func(o *Options) {
		o.Runner = g
		if change != nil {
			change(o)
		}
	})
	return srv, g, ref
}

// predictions are ref's answers to texts, by text.
func predictions(t *testing.T, ref *train.Trainer, texts []string) map[string]train.Prediction {
	t.Helper()
	preds, err := ref.Predict(texts, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]train.Prediction{}
	for i, p := range preds {
		want[texts[i]] = p
	}
	return want
}

// checkOwn fails unless a is a 200 reply to texts, as ref predicts them.
func checkOwn(t *testing.T, a reply, texts []string, ref map[string]train.Prediction) {
	t.Helper()
	if a.err != nil || a.code != http.StatusOK {
		t.Errorf("%v: %d %s", a.err, a.code, a.body)
		return
	}
	got := decodeAs[classifyResponse](t, a.body)
	if len(got.Predictions) != len(texts) {
		t.Errorf("%d predictions for %d texts", len(got.Predictions), len(texts))
		return
	}
	for i, p := range got.Predictions {
		sameProbs(t, fmt.Sprintf("text %q", texts[i]), p.Prediction, ref[texts[i]])
	}
}

// Concurrent clients' requests are batched together and each client gets the answers
// to its own texts: first with the queue filled while the model is held, then freely.
func TestConcurrentClientsGetTheirOwnAnswers(t *testing.T) {
	srv, g, ref := gated(t, func(o *Options) { o.Batch.MaxBatch, o.Batch.MinFill = 16, 0 })
	texts := smsTexts(t, 90)
	want := predictions(t, ref, texts)
	url := srv.url + "/v1/classify"
	blocker := send(url, jsonBody(t, map[string]any{"texts": texts[:1]}))
	<-g.entered
	const clients = 30
	reqs := make([][]string, clients)
	answers := make([]<-chan reply, clients)
	queued := 0
	for c := range reqs {
		reqs[c] = texts[3*c : 3*c+1+c%3] // 1 to 3 texts each
		queued += len(reqs[c])
		answers[c] = send(url, jsonBody(t, map[string]any{"texts": reqs[c]}))
	}
	waitFor(t, "the clients to queue", func() bool {
		return metric(t, srv.url, "bertnode_serve_queue_depth") == float64(queued)
	})
	close(g.release)
	checkOwn(t, <-blocker, texts[:1], want)
	for c := range reqs {
		checkOwn(t, <-answers[c], reqs[c], want)
	}
	batches := metric(t, srv.url, "bertnode_serve_batch_size_count")
	seqs := metric(t, srv.url, "bertnode_serve_batch_size_sum")
	// 60 queued sequences in batches of up to 16 (padding unbounded): 4, after the held one.
	if seqs != float64(queued+1) || batches != 5 {
		t.Errorf("%v sequences in %v batches, want %d in 5", seqs, batches, queued+1)
	}

	manyClients(t, url, want, 16, 8, func(c, i int) []string {
		return []string{texts[(7*c+i)%len(texts)], texts[(11*c+3*i)%len(texts)]}
	})
}

// manyClients runs clients concurrent clients, each sending rounds requests of the
// texts pick gives, and checks that each gets want's answers to its own texts.
func manyClients(t *testing.T, url string, want map[string]train.Prediction, clients, rounds int, pick func(c, i int) []string) {
	t.Helper()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				ts := pick(c, i)
				checkOwn(t, <-send(url, jsonBody(t, map[string]any{"texts": ts})), ts, want)
			}
		}()
	}
	wg.Wait()
}

// A full queue answers 429 at once, with Retry-After; the server goes on afterwards.
func TestOverloadIsRefusedNotQueued(t *testing.T) {
	srv, g, ref := gated(t, func(o *Options) { o.Batch.MaxBatch, o.Batch.MaxQueue = 4, 6 })
	url := srv.url + "/v1/classify"
	blocker := send(url, `{"texts": ["held"]}`)
	<-g.entered
	texts := smsTexts(t, 6)
	var queued []<-chan reply
	for i := range 3 {
		queued = append(queued, send(url, jsonBody(t, map[string]any{"texts": texts[2*i : 2*i+2]})))
	}
	waitFor(t, "6 queued", func() bool { return metric(t, srv.url, "bertnode_serve_queue_depth") == 6 })
	a := <-send(url, `{"texts": ["one more"]}`)
	if e := decodeAs[errorBody](t, a.body); a.code != http.StatusTooManyRequests || e.Type != kindOverloaded || a.header.Get("Retry-After") == "" {
		t.Errorf("over the queue: %d %s (Retry-After %q)", a.code, a.body, a.header.Get("Retry-After"))
	}
	close(g.release)
	<-blocker
	want := predictions(t, ref, texts)
	for i, c := range queued {
		checkOwn(t, <-c, texts[2*i:2*i+2], want)
	}
	checkOwn(t, <-send(url, jsonBody(t, map[string]any{"texts": texts[:1]})), texts[:1], want)
}

// A request that waits longer than the timeout answers 503 and leaves the queue.
func TestTimeoutAnswers503(t *testing.T) {
	srv, g, _ := gated(t, func(o *Options) { o.Timeout = time.Second })
	url := srv.url + "/v1/classify"
	blocker := send(url, `{"texts": ["held"]}`)
	<-g.entered
	a := <-send(url, `{"texts": ["waits"]}`)
	if e := decodeAs[errorBody](t, a.body); a.code != http.StatusServiceUnavailable || e.Type != kindUnavailable || !strings.Contains(e.Error, "timeout of 1s") {
		t.Errorf("timed out: %d %s", a.code, a.body)
	}
	if d := metric(t, srv.url, "bertnode_serve_queue_depth"); d != 0 {
		t.Errorf("queue depth %v after the timeout, want 0", d)
	}
	close(g.release)
	<-blocker
	if a := <-send(url, `{"texts": ["next"]}`); a.code != http.StatusOK {
		t.Errorf("after the timeout: %d %s", a.code, a.body)
	}
}

// Shutting down stops readiness and the listener, answers every request already taken,
// then returns.
func TestShutdownDrainsInFlightRequests(t *testing.T) {
	srv, g, ref := gated(t, nil)
	url := srv.url + "/v1/classify"
	texts := smsTexts(t, 10)
	want := predictions(t, ref, texts)
	var inflight []<-chan reply
	for i, text := range texts {
		inflight = append(inflight, send(url, jsonBody(t, map[string]any{"texts": []string{text}})))
		if i == 0 {
			<-g.entered
		}
	}
	waitFor(t, "9 queued", func() bool { return metric(t, srv.url, "bertnode_serve_queue_depth") == 9 })
	srv.stop() // what SIGTERM does in `bertnode serve`
	waitFor(t, "readiness to fail", func() bool {
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		return rec.Code == http.StatusServiceUnavailable
	})
	addr := strings.TrimPrefix(srv.url, "http://")
	waitFor(t, "the listener to close", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	select {
	case err := <-srv.served:
		t.Fatalf("Serve returned (%v) with requests in flight", err)
	default:
	}
	close(g.release)
	for i, c := range inflight {
		checkOwn(t, <-c, texts[i:i+1], want)
	}
	if err := <-srv.served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	srv.served <- nil // for the cleanup
}

// With two instances on the real model, one instance held in a batch does not hold the
// server: the other answers every client meanwhile. Then both run at once. Each client
// gets its own answers: the instances share the weights and pad into buffers of their
// own.
func TestInstancesAnswerWhileOneIsBusy(t *testing.T) {
	dir := checkpoint(t, "classify")
	ref, tr := load(t, dir), load(t, dir)
	h := &holdFirst{inner: RunnerFunc(tr.InferBatch), entered: make(chan struct{}), release: make(chan struct{})}
	srv := start(t, tr, func(o *Options) { o.Runner, o.Batch.Instances = h, 2 })
	texts := smsTexts(t, 60)
	want := predictions(t, ref, texts)
	url := srv.url + "/v1/classify"
	blocker := send(url, jsonBody(t, map[string]any{"texts": texts[:1]}))
	<-h.entered
	manyClients(t, url, want, 8, 6, func(c, i int) []string {
		return []string{texts[(7*c+i)%len(texts)], texts[(11*c+3*i)%len(texts)]}
	})
	close(h.release)
	checkOwn(t, <-blocker, texts[:1], want)
	// Then both run freely, their batches side by side.
	manyClients(t, url, want, 16, 10, func(c, i int) []string {
		return []string{texts[(5*c+i)%len(texts)], texts[(13*c+7*i)%len(texts)], texts[(3*c+11*i)%len(texts)]}
	})
}

// holdFirst holds the first batch it runs until released; the others run at once.
type holdFirst struct {
	inner            Runner
	held             atomic.Bool
	entered, release chan struct{}
}

func (h *holdFirst) Run(seqs []*tokenize.Encoding) ([][]float32, error) {
	if h.held.CompareAndSwap(false, true) {
		close(h.entered)
		<-h.release
	}
	return h.inner.Run(seqs)
}
