package coordinator

import (
	"net/http"
	"strconv"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the member's Prometheus metrics, in a registry of its own (tests run
// several members in one process).
type metrics struct {
	reg           *prometheus.Registry
	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	forwarded     prometheus.Counter
	leaderChanges prometheus.Counter
	blobBytesIn   prometheus.Counter
	nodesReaped   prometheus.Counter
	handler       http.Handler
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bertnode_http_requests_total", Help: "API requests by route and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "bertnode_http_request_seconds", Help: "API request latency by route (blocking queries include their wait).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"route"}),
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bertnode_http_forwarded_total", Help: "Requests this member forwarded to the leader.",
		}),
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bertnode_raft_leadership_changes_total", Help: "Times this member gained or lost the leadership.",
		}),
		blobBytesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bertnode_blob_received_bytes_total", Help: "Blob bytes stored by this member (uploads and replication).",
		}),
		nodesReaped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bertnode_nodes_reaped_total", Help: "Nodes this member's leader loop removed, dead or left longer than the node GC threshold.",
		}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.forwarded, m.leaderChanges, m.blobBytesIn, m.nodesReaped, stateCollector{s},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	return m
}

func (m *metrics) serve(w http.ResponseWriter, r *http.Request) { m.handler.ServeHTTP(w, r) }

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (m *metrics) instrument(route string, h http.Handler) http.Handler {
	lat := m.latency.WithLabelValues(route)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		if sw.code == 0 {
			sw.code = http.StatusOK
		}
		lat.Observe(time.Since(start).Seconds())
		m.requests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
	})
}

// stateCollector reports the raft state and the replicated state at scrape time.
type stateCollector struct{ s *Server }

var (
	descRaftState = prometheus.NewDesc("bertnode_raft_state", "1 for this member's raft state.", []string{"state"}, nil)
	descApplied   = prometheus.NewDesc("bertnode_raft_applied_index", "The raft index of the last command applied.", nil, nil)
	descJobs      = prometheus.NewDesc("bertnode_jobs", "Jobs by state.", []string{"state"}, nil)
	descNodes     = prometheus.NewDesc("bertnode_nodes", "Registered nodes by health.", []string{"health"}, nil)
	descDrained   = prometheus.NewDesc("bertnode_nodes_drained", "Registered nodes drained (bertnode nodes drain): they take no new job.", nil, nil)
	descMembers   = prometheus.NewDesc("bertnode_members", "Coordinators in the replicated state.", nil, nil)
	descBlobs     = prometheus.NewDesc("bertnode_blobs", "Blobs in the replicated state.", nil, nil)
)

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRaftState, descApplied, descJobs, descNodes, descDrained, descMembers, descBlobs} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	if c.s.raft != nil {
		cur := c.s.raft.State()
		for _, st := range []raft.RaftState{raft.Follower, raft.Candidate, raft.Leader, raft.Shutdown} {
			v := 0.0
			if st == cur {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descRaftState, prometheus.GaugeValue, v, st.String())
		}
	}
	jobs := map[api.JobState]int{api.Pending: 0, api.Running: 0, api.Succeeded: 0, api.Failed: 0, api.Cancelled: 0}
	nodes := map[api.Health]int{api.Alive: 0, api.Suspect: 0, api.Dead: 0, api.Left: 0}
	var applied uint64
	var members, blobs, drained int
	c.s.fsm.Read(func(st *State) {
		applied, members, blobs = st.Index, len(st.Members), len(st.Blobs)
		for _, j := range st.Jobs {
			jobs[j.State]++
		}
		for _, n := range st.Nodes {
			nodes[n.Health]++
			if n.Drain {
				drained++
			}
		}
	})
	ch <- prometheus.MustNewConstMetric(descApplied, prometheus.GaugeValue, float64(applied))
	ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(members))
	ch <- prometheus.MustNewConstMetric(descBlobs, prometheus.GaugeValue, float64(blobs))
	ch <- prometheus.MustNewConstMetric(descDrained, prometheus.GaugeValue, float64(drained))
	for k, v := range jobs {
		ch <- prometheus.MustNewConstMetric(descJobs, prometheus.GaugeValue, float64(v), string(k))
	}
	for k, v := range nodes {
		ch <- prometheus.MustNewConstMetric(descNodes, prometheus.GaugeValue, float64(v), string(k))
	}
}
