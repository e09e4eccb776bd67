package coordinator

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bertnode/bertnode/api"
)

// Where a route is answered.
type placement int

const (
	onLeader placement = iota // writes: forwarded to the leader
	readable                  // reads: the leader, or any member with ?stale=1
	local                     // whichever member receives it (blobs)
	own                       // this member about itself (/v1/self, /metrics): answered when halted too
)

// headerForwarded marks a request a member forwarded, so that it is not forwarded
// again by a member that lost its leadership meanwhile.
const headerForwarded = "X-Bertnode-Forwarded"

// maxWait bounds a blocking query's wait.
const maxWait = 5 * time.Minute

// maxBody bounds a JSON request body.
const maxBody = 4 << 20

// route registers h at pattern: counted, authenticated, and answered where p says.
func (s *Server) route(pattern string, p placement, h func(http.ResponseWriter, *http.Request)) {
	s.mux.Handle(pattern, s.metrics.instrument(pattern, s.tracked(s.authenticate(s.place(p, h)))))
}

// tracked counts h's requests in flight for Close, and refuses them once it began.
func (s *Server) tracked(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.reqMu.Lock()
		if s.stopping {
			s.reqMu.Unlock()
			writeError(w, &api.Error{Status: http.StatusServiceUnavailable, Message: "503: this member is shutting down"})
			return
		}
		s.requests.Add(1)
		s.reqMu.Unlock()
		defer s.requests.Done()
		h.ServeHTTP(w, r)
	})
}

// authenticate refuses a request without the cluster's bearer token, and one with the
// read-only token unless it reads the catalog or /metrics.
func (s *Server) authenticate(h http.Handler) http.Handler {
	full, read := []byte("Bearer "+s.token), []byte("Bearer "+s.cfg.Secret.ReadToken())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		switch {
		case subtle.ConstantTimeCompare(got, full) == 1:
		case subtle.ConstantTimeCompare(got, read) == 1:
			if !catalogRead(r) {
				writeError(w, &api.Error{Status: http.StatusForbidden, Message: "403 forbidden: the read-only token reads the catalog and /metrics; " +
					r.Method + " " + r.URL.Path + " takes the cluster secret's API token"})
				return
			}
		default:
			w.Header().Set("WWW-Authenticate", `Bearer realm="bertnode"`)
			writeError(w, &api.Error{Status: http.StatusUnauthorized, Message: "401 unauthorized: missing or wrong bearer token (the cluster secret's API token)"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// catalogRead says whether r only reads the catalog (jobs, nodes, members, logs) or
// /metrics: not the blobs and dataset blocks, which hold the data and the models.
func catalogRead(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		!strings.HasPrefix(r.URL.Path, "/v1/blobs/") && !strings.HasPrefix(r.URL.Path, "/v1/datasets/")
}

func (s *Server) place(p placement, h func(http.ResponseWriter, *http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.fsm.Halted(); err != nil && p != own {
			// Its state is behind the others', and its raft stopped (Server.halt).
			writeError(w, &api.Error{Status: http.StatusServiceUnavailable, Message: err.Error()})
			return
		}
		if p == onLeader || p == readable {
			if err := s.awaitConsistent(r); err != nil {
				writeError(w, err)
				return
			}
		}
		leader := s.leaderAPI()
		if leader != "" {
			w.Header().Set(api.HeaderLeader, leader)
		}
		switch {
		case p == local || p == own || s.IsLeader():
			w.Header().Set(api.HeaderStale, "false")
			h(w, r)
		case p == readable && r.URL.Query().Get("stale") != "":
			w.Header().Set(api.HeaderStale, "true")
			h(w, r)
		default:
			s.forward(w, r, leader)
		}
	})
}

// awaitConsistent holds a request that a new leader would answer from its state until
// that state holds its predecessors' committed entries (up to the Apply timeout):
// otherwise a read just after a failover could show a job back in an earlier state.
func (s *Server) awaitConsistent(r *http.Request) error {
	timer := time.NewTimer(s.cfg.Apply)
	defer timer.Stop()
	for {
		changed := s.changes.wait()
		if !s.IsLeader() || s.consistent.Load() {
			return nil
		}
		select {
		case <-changed:
		case <-time.After(s.cfg.Tick): // a lost leadership may not notify
		case <-timer.C:
			return &api.Error{Status: http.StatusServiceUnavailable, Message: "the new leader is still applying its predecessors' log"}
		case <-r.Context().Done():
			return r.Context().Err()
		}
	}
}

// forward passes a request to the leader and its answer back.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, leader string) {
	if r.Header.Get(headerForwarded) != "" || leader == "" {
		msg := "no leader: an election is under way"
		if leader != "" {
			msg = "not the leader"
		} else if since := s.leaderless.Load(); since != 0 && time.Since(time.Unix(0, since)) > 5*s.cfg.Election {
			// Far longer than elections take: this member cannot win one nor hear a winner.
			msg = fmt.Sprintf("no leader for %v: this member reaches no majority of the %d coordinators (most of them down, or cut off from it?)",
				time.Since(time.Unix(0, since)).Round(time.Second), s.voters())
		}
		writeError(w, &api.Error{Status: http.StatusServiceUnavailable, Message: msg, Leader: leader})
		return
	}
	target := &url.URL{Scheme: "http", Host: leader}
	if s.cfg.TLS != nil {
		target.Scheme = "https"
	}
	p := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header.Set(headerForwarded, s.id)
		},
		Transport:     s.peer.Transport,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			writeError(w, &api.Error{Status: http.StatusBadGateway, Message: "forwarding to the leader: " + err.Error(), Leader: leader})
		},
	}
	s.metrics.forwarded.Inc()
	p.ServeHTTP(w, r)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// writeError answers err: an *api.Error with its status, anything else as a 500.
func writeError(w http.ResponseWriter, err error) {
	var e *api.Error
	if !errors.As(err, &e) {
		e = &api.Error{Status: http.StatusInternalServerError, Message: err.Error()}
	}
	if e.Status == 0 {
		e.Status = http.StatusInternalServerError
	}
	writeJSON(w, e.Status, e)
}

// decodeBody reads a JSON request body into v; a bad one is a 400 naming the problem.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		var me *http.MaxBytesError
		switch {
		case errors.As(err, &te):
			return badField(te.Field, "want a JSON %s, got %s", te.Type, te.Value)
		case errors.As(err, &se):
			return &api.Error{Status: http.StatusBadRequest, Message: fmt.Sprintf("request body: bad JSON at byte %d: %v", se.Offset, err)}
		case errors.As(err, &me):
			return &api.Error{Status: http.StatusRequestEntityTooLarge, Message: fmt.Sprintf("request body: over %d bytes", me.Limit)}
		case errors.Is(err, io.ErrUnexpectedEOF):
			return &api.Error{Status: http.StatusBadRequest, Message: "request body: truncated JSON"}
		case errors.Is(err, io.EOF):
			return &api.Error{Status: http.StatusBadRequest, Message: "request body: empty, want JSON"}
		default:
			return &api.Error{Status: http.StatusBadRequest, Message: "request body: " + err.Error()}
		}
	}
	return nil
}

// blockingQuery reads ?index=N&wait=D: wait for a change after N, up to D (default
// and at most 5 minutes). index 0 answers at once.
func blockingQuery(r *http.Request) (uint64, time.Duration, error) {
	q := r.URL.Query()
	var idx uint64
	if v := q.Get("index"); v != "" {
		var err error
		if idx, err = strconv.ParseUint(v, 10, 64); err != nil {
			return 0, 0, badField("index", "%q is not a raft index", v)
		}
	}
	wait := maxWait
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return 0, 0, badField("wait", "%q is not a duration such as 30s", v)
		}
		wait = min(d, maxWait)
	}
	return idx, wait, nil
}

// view answers a read: topics names what it watches, build makes the answer, both
// from the same state. With ?index=N it waits until one of the topics changed after
// N, or the wait ends, as Consul's blocking queries do; the answer carries the topics'
// index in X-Bertnode-Index.
func (s *Server) view(w http.ResponseWriter, r *http.Request, topics func(*State) []string, build func(*State) (any, error)) {
	minIdx, wait, err := blockingQuery(r)
	if err != nil {
		writeError(w, err)
		return
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	expired := minIdx == 0
	for {
		changed := s.changes.wait()
		var idx uint64
		var body []byte
		var berr error
		s.fsm.Read(func(st *State) {
			idx = st.TopicIndex(topics(st)...)
			if idx > minIdx || expired {
				// Encoded under the lock: the answer may point into the state.
				var out any
				if out, berr = build(st); berr == nil {
					body, berr = json.Marshal(out)
				}
			}
		})
		if berr != nil {
			writeError(w, berr)
			return
		}
		if body != nil {
			w.Header().Set(api.HeaderIndex, strconv.FormatUint(idx, 10))
			w.Header().Set("Content-Type", "application/json")
			w.Write(append(body, '\n'))
			return
		}
		select {
		case <-changed:
		case <-timer.C:
			expired = true
		case <-r.Context().Done():
			return
		case <-s.ctx.Done():
			writeError(w, &api.Error{Status: http.StatusServiceUnavailable, Message: "coordinator shutting down"})
			return
		}
	}
}

// written answers a write that raft applied at idx.
func written(w http.ResponseWriter, idx uint64, v any) {
	w.Header().Set(api.HeaderIndex, strconv.FormatUint(idx, 10))
	if v == nil {
		v = struct{}{}
	}
	writeJSON(w, http.StatusOK, v)
}
