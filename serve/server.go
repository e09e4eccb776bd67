// Package serve is bertnode's inference server: a fine-tuned checkpoint behind JSON
// over HTTP. Handlers validate and tokenize requests on their own goroutines and hand
// the encoded sequences to a Batcher, which runs sequences from concurrent requests
// together on the model's one goroutine; the answers are read back with the same code
// as `bertnode predict` (package train). Limits answer 4xx, a full queue 429, and
// shutdown drains what was accepted.
package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/bertnode/bertnode/tokenize"
	"github.com/bertnode/bertnode/train"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options configure a Server.
type Options struct {
	Batch  BatchConfig
	Limits Limits
	// AllowEmpty lets question answering answer nothing where [CLS] outscores every
	// span (SQuAD v2.0 models), unless a request says otherwise.
	AllowEmpty bool
	// Timeout bounds a request's wait for the model, queueing included.
	Timeout time.Duration
	// Runner runs the batches; nil is the trainer's model (InferBatch). Tests and
	// benchmarks wrap it.
	Runner Runner
	Log    *log.Logger // model failures; nil: log's default
}

// DefaultOptions are `bertnode serve`'s defaults.
func DefaultOptions() Options {
	return Options{
		Batch:   BatchConfig{MaxBatch: 32, MaxTokens: 16384, MaxQueue: 1024, MinFill: 0.75},
		Limits:  Limits{MaxBodyBytes: 1 << 20, MaxTexts: 64, Truncate: true},
		Timeout: time.Minute,
	}
}

// Server serves one model.
type Server struct {
	t       *train.Trainer
	opts    Options
	batch   *Batcher
	metrics *Metrics
	reg     *prometheus.Registry
	handler http.Handler
	ready   atomic.Bool
}

// New starts a server's batcher for a checkpoint loaded with train.ForEval; Serve
// serves it. The trainer's model is used only from the batcher's goroutine from now on.
func New(t *train.Trainer, opts Options) (*Server, error) {
	if err := opts.Batch.Validate(); err != nil {
		return nil, err
	}
	if err := opts.Limits.Validate(); err != nil {
		return nil, err
	}
	switch {
	case opts.Batch.MaxTokens < t.Spec.MaxLength:
		return nil, fmt.Errorf("max batch tokens: %d is less than one sequence of the max length %d", opts.Batch.MaxTokens, t.Spec.MaxLength)
	case opts.Timeout <= 0:
		return nil, fmt.Errorf("timeout: %v: must be positive", opts.Timeout)
	}
	if opts.Runner == nil {
		opts.Runner = RunnerFunc(t.InferBatch)
	}
	if opts.Log == nil {
		opts.Log = log.Default()
	}
	s := &Server{t: t, opts: opts, reg: prometheus.NewRegistry()}
	s.metrics = NewMetrics(s.reg)
	var err error
	if s.batch, err = NewBatcher(opts.Runner, opts.Batch, s.metrics); err != nil {
		return nil, err
	}
	s.handler = s.routes()
	return s, nil
}

// Handler is the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve answers requests on ln until ctx ends, then shuts down gracefully: readiness
// fails, the listener closes, requests in flight are answered and the batcher drains,
// all within grace. A Server serves once.
func (s *Server) Serve(ctx context.Context, ln net.Listener, grace time.Duration) error {
	hs := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second, ErrorLog: s.opts.Log}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	s.ready.Store(true)
	var err error
	select {
	case err = <-served: // the listener failed
	case <-ctx.Done():
	}
	s.ready.Store(false)
	drain, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if e := hs.Shutdown(drain); e != nil {
		err = errors.Join(err, fmt.Errorf("shutting down: %w", e))
	}
	if e := s.batch.Close(drain); e != nil {
		err = errors.Join(err, e)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// handler answers one request: a value to write as JSON, or an error.
type handler func(w http.ResponseWriter, r *http.Request) (any, error)

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	s.route(mux, http.MethodPost, "/v1/classify", s.classify)
	s.route(mux, http.MethodPost, "/v1/ner", s.ner)
	s.route(mux, http.MethodPost, "/v1/qa", s.qa)
	s.route(mux, http.MethodPost, "/v1/choice", s.choice)
	s.route(mux, http.MethodPost, "/v1/fill-mask", s.fillMask)
	s.route(mux, http.MethodPost, "/v1/rerank", s.rerank)
	s.route(mux, http.MethodPost, "/v1/attention", s.attention)
	s.route(mux, http.MethodPost, "/v1/embed", s.embed)
	s.route(mux, http.MethodPost, "/v1/embeddings", s.embeddings)
	s.route(mux, http.MethodPost, "/v1/similarity", s.similarity)
	s.route(mux, http.MethodPost, "/v1/tokenize", s.tokenize)
	s.route(mux, http.MethodGet, "/v1/model", s.modelInfo)
	s.route(mux, http.MethodGet, "/healthz", s.healthz)
	s.route(mux, http.MethodGet, "/readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	s.route(mux, "", "/", func(_ http.ResponseWriter, r *http.Request) (any, error) {
		return nil, &apiError{http.StatusNotFound, kindNotFound, fmt.Sprintf("no route %s", r.URL.Path)}
	})
	return mux
}

// route serves path with h for method (any when ""), with the request's timeout, JSON
// answers and errors, and metrics.
func (s *Server) route(mux *http.ServeMux, method, path string, h handler) {
	label := path
	if path == "/" {
		label = "other"
	}
	mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ctx, cancel := context.WithTimeout(r.Context(), s.opts.Timeout)
		defer cancel()
		var (
			v   any
			err error
		)
		if method != "" && r.Method != method {
			w.Header().Set("Allow", method)
			err = &apiError{http.StatusMethodNotAllowed, kindNotFound, fmt.Sprintf("%s takes %s, not %s", path, method, r.Method)}
		} else {
			err = guard(func() (err error) {
				v, err = h(w, r.WithContext(ctx))
				return err
			})
		}
		code := http.StatusOK
		if err != nil {
			ae := toAPIError(err, s.opts.Timeout)
			if ae.status >= 500 && ae.kind == kindInternal {
				s.opts.Log.Printf("serve: %s: %v", path, err)
			}
			switch ae.status {
			case http.StatusTooManyRequests, http.StatusServiceUnavailable:
				w.Header().Set("Retry-After", "1")
			}
			code, v = ae.status, struct {
				Error string `json:"error"`
				Type  string `json:"type"`
			}{ae.msg, ae.kind}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		enc.Encode(v) // a client gone away is no error of ours
		s.metrics.answered(label, code, time.Since(start))
	})
}

// via is the trainer with its model calls going through the batcher, for one request.
func (s *Server) via(ctx context.Context) *train.Trainer {
	return s.t.WithInfer(func(encs []*tokenize.Encoding) ([][]float32, error) {
		return s.batch.Submit(ctx, encs)
	})
}

// tokens counts text's tokens, specials included, untruncated.
func (s *Server) tokens(text string) int {
	enc, err := s.t.Tok.Encode(text, 0)
	if err != nil {
		return 0 // Encode fails only for a bad max length
	}
	return enc.Len()
}

// pairTokens counts the tokens of first and a text as a pair, specials included,
// untruncated: the text's count for the limits.
func (s *Server) pairTokens(first string) func(string) int {
	return func(text string) int {
		enc, err := s.t.Tok.EncodePair(first, text, 0)
		if err != nil {
			return 0 // EncodePair fails only for a bad max length
		}
		return enc.Len()
	}
}

// wrongTask refuses a route the model's head does not serve.
func (s *Server) wrongTask(route string, want string) error {
	return invalid("%s needs a %s model; this server's model (%s) is %s", route, want, s.t.Spec.Model, s.t.Spec.Task)
}
