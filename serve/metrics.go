package serve

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the server's Prometheus metrics. It is the batcher's Observer. Tokens per
// second is rate(bertnode_serve_tokens_total[1m]).
type Metrics struct {
	requests   *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	batchSize  prometheus.Histogram
	batchTime  prometheus.Histogram
	queueWait  prometheus.Histogram
	queueDepth prometheus.Gauge
	sequences  prometheus.Counter
	tokens     prometheus.Counter
	padding    prometheus.Counter
	failures   prometheus.Counter
	splits     prometheus.Counter
}

// NewMetrics registers the server's metrics, and the Go runtime's and the process's,
// with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	const ns = "bertnode_serve"
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "requests_total",
			Help: "HTTP requests answered, by route and status code."}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "request_duration_seconds",
			Help:    "Time from reading a request to writing its answer, by route.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}, []string{"route"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "batch_size",
			Help: "Sequences per model batch.", Buckets: prometheus.ExponentialBuckets(1, 2, 10)}),
		batchTime: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "batch_duration_seconds",
			Help: "Model time per batch.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		queueWait: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "queue_wait_seconds",
			Help:    "Time the oldest sequence of each batch waited in the queue.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18)}),
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "queue_depth",
			Help: "Sequences waiting for the model."}),
		sequences: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "sequences_total",
			Help: "Sequences run through the model."}),
		tokens: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "tokens_total",
			Help: "Tokens run through the model, padding not counted."}),
		padding: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "padding_tokens_total",
			Help: "Padding tokens the model computed to batch sequences of unequal length."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "batch_failures_total",
			Help: "Batches the model failed on."}),
		splits: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "batch_splits_total",
			Help: "Batches, or parts of them, that ran out of the device's memory and were run again in halves (later batches are kept smaller)."}),
	}
	reg.MustRegister(m.requests, m.latency, m.batchSize, m.batchTime, m.queueWait, m.queueDepth,
		m.sequences, m.tokens, m.padding, m.failures, m.splits,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Queued sets the queue depth.
func (m *Metrics) Queued(depth int) { m.queueDepth.Set(float64(depth)) }

// Ran counts one batch.
func (m *Metrics) Ran(s BatchStats) {
	m.splits.Add(float64(s.Split))
	if s.Err != nil {
		m.failures.Inc()
		return
	}
	m.batchSize.Observe(float64(s.Seqs))
	m.batchTime.Observe(s.Run.Seconds())
	m.queueWait.Observe(s.Wait.Seconds())
	m.sequences.Add(float64(s.Seqs))
	m.tokens.Add(float64(s.Tokens))
	m.padding.Add(float64(s.Padded - s.Tokens))
}

// answered counts one HTTP request.
func (m *Metrics) answered(route string, code int, took time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(route).Observe(took.Seconds())
}
