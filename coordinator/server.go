// Package coordinator is bertnode's replicated catalog: a hashicorp/raft cluster of 1,
// 3 or 5 members holding the nodes, the jobs and the blobs, its HTTP API, and the loop
// the leader runs to schedule jobs and to reconfigure their rings when nodes fail or
// join. docs/cluster.md is the design; one concept per file:
//
//	commands.go  the raft log entries          state.go   the state and how commands change it
//	fsm.go       raft.FSM over State            raft.go    raft wiring (internal/authconn), join, members
//	leader.go    the leader's loop              decide.go  its decisions, a pure function of the state
//	blobs.go     content-addressed store and its replication
//	http.go      the API's routes               query.go   auth, forwarding, blocking reads
//	jobspec.go   reading a submitted spec       planner.go the Planner border
//	metrics.go   Prometheus                     server.go  Config, New, Close
//	protocol.go  protocol versions: what the leader may propose in a rolling upgrade
//
// coordtest runs real clusters on loopback for other packages' tests.
package coordinator

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bertnode/bertnode/gossip"
	"github.com/bertnode/bertnode/internal/clusterkey"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// Config configures one coordinator member.
type Config struct {
	// DataDir holds raft.db (log and stable store), snapshots/, blobs/ and member-id.
	DataDir string
	// RaftAddr is where raft listens (port 0 picks one); RaftAdvertise is what peers
	// dial, by default the address bound.
	RaftAddr, RaftAdvertise string
	// APIAddr is where the HTTP API listens; APIAdvertise is what clients and other
	// members use, by default the address bound.
	APIAddr, APIAdvertise string
	// GossipAddr is this member's gossip address, given to `bertnode join`, and
	// GossipProfile its gossip timing, which nodes check theirs against.
	GossipAddr, GossipProfile string
	// Bootstrap makes a new cluster of this one member; Join lists API addresses of
	// members of an existing one. A member with raft state in DataDir needs neither.
	// BootstrapExpect > 0 (Consul's bootstrap_expect): once this member finds that
	// many members at the Join addresses (itself included) and none of them in a
	// cluster, it bootstraps one of them all; finding one in a cluster, it joins that.
	Bootstrap       bool
	BootstrapExpect int
	Join            []string
	// Recover makes this member's raft configuration this member alone before it
	// starts, keeping all the state it holds: the way out when a majority of the
	// members is lost for good and the rest cannot elect a leader (hashicorp/raft's
	// RecoverCluster, Consul's peers.json). New members then --join it.
	Recover bool
	Secret  clusterkey.Secret
	// TLS, when set, wraps raft and the API in mutual TLS: it holds this member's
	// certificate and the CA that signs every member's, node's and client's.
	TLS *tls.Config
	// Membership is gossip's view of who is alive; nil: nobody is known.
	Membership gossip.Membership
	// Planner plans the datasets of submitted jobs.
	Planner Planner
	// Clock is the time commands carry; nil: the system clock.
	Clock Clock
	// Protocol is the coordinator protocol this member speaks and records: what its FSM
	// applies; 0: this build's (Protocol). Tests set an older one to play a member of an
	// earlier build in a rolling upgrade.
	Protocol int
	// unversioned plays a build before protocol versions (tests, PlayUnversioned): it
	// records no protocol, its own or a joining member's.
	unversioned bool
	Timing
	// MaxBlobSize bounds an upload (default 64 GiB).
	MaxBlobSize int64
	Logger      *slog.Logger
	// RaftLog receives raft's own log lines (warnings and errors); nil: stderr.
	RaftLog io.Writer
}

// Timing holds the coordinator's periods and timeouts; zero fields take defaults.
type Timing struct {
	// Raft's: the defaults are raft's (1s, 1s, 500ms, 50ms), for a LAN; loopback tests
	// use a fraction.
	Heartbeat, Election, LeaderLease, Commit time.Duration
	// Apply bounds how long a write waits for raft (default 10s).
	Apply time.Duration
	// Tick is the leader loop's period (default 100ms).
	Tick time.Duration
	// AbsentGrace: a registered node, or another member, that gossip has not listed
	// for this long, counted from when the leader took over, is dead (default 30s).
	AbsentGrace time.Duration
	// DeadConfirm: gossip must call a node dead this long before the state does
	// (default 2s; on this member's clock).
	DeadConfirm time.Duration
	// SnapshotThreshold and SnapshotInterval are raft's (defaults 8192 and 2m).
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	// BlobGrace: a blob no job references stays listed this long after its upload, in
	// the commands' time, for the submission or report that will reference it
	// (default 1h).
	BlobGrace time.Duration
	// BlobFileGrace: a file in the blob store that the state does not list is removed
	// once its mtime is this old; a blob is written before it is listed (default 10m).
	BlobFileGrace time.Duration
	// DeletedRetention: the list of deleted jobs, which nodes read to remove their
	// files of them, forgets a job this long after its deletion, in the commands' time
	// (default 30 days).
	DeletedRetention time.Duration
	// NodeGC: a node dead or left in gossip this long, in the commands' time, and on no
	// job a running job still needs, is removed from the state, as Nomad's
	// node_gc_threshold does (default 24h; negative: never).
	NodeGC time.Duration
}

func (t Timing) withDefaults() Timing {
	d := raft.DefaultConfig()
	def := func(v *time.Duration, x time.Duration) {
		if *v == 0 {
			*v = x
		}
	}
	def(&t.Heartbeat, d.HeartbeatTimeout)
	def(&t.Election, d.ElectionTimeout)
	def(&t.LeaderLease, d.LeaderLeaseTimeout)
	def(&t.Commit, d.CommitTimeout)
	def(&t.Apply, 10*time.Second)
	def(&t.Tick, 100*time.Millisecond)
	def(&t.AbsentGrace, 30*time.Second)
	def(&t.DeadConfirm, 2*time.Second)
	def(&t.SnapshotInterval, 2*time.Minute)
	def(&t.BlobGrace, time.Hour)
	def(&t.BlobFileGrace, 10*time.Minute)
	def(&t.DeletedRetention, 30*24*time.Hour)
	def(&t.NodeGC, 24*time.Hour)
	if t.SnapshotThreshold == 0 {
		t.SnapshotThreshold = 8192
	}
	t.LeaderLease = min(t.LeaderLease, t.Heartbeat)
	return t
}

// Clock is where commands get their time.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Server is one coordinator member.
type Server struct {
	cfg       Config
	expecting bool // no state, and BootstrapExpect: see expect
	id        string
	log       *slog.Logger
	clock     Clock
	token     string

	fsm     *FSM
	changes broadcast
	raft    *raft.Raft
	trans   *raft.NetworkTransport
	store   *raftboltdb.BoltStore
	blobs   *blobStore
	// bootIndex is the last index of the log this member started with.
	bootIndex uint64

	apiLn   net.Listener
	apiAddr string
	http    *http.Server
	mux     *http.ServeMux
	peer    *http.Client // to other members: forwarding, blob fetches
	metrics *metrics
	// consistent: this member leads and its state holds every entry committed before
	// its term (lead's barrier). A new leader may not have applied its predecessor's
	// last entries yet; until then it answers nothing from its state (as Consul's
	// readyForConsistentReads).
	consistent atomic.Bool
	// leaderless: since when (Unix nanoseconds) this member has known no leader; 0
	// while it knows one. A refused request says for how long (forward).
	leaderless atomic.Int64

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	// Requests in flight: Close waits for them (a handler may be writing a blob into
	// the data directory), and refuses new ones once it has begun.
	reqMu    sync.Mutex
	stopping bool
	requests sync.WaitGroup
	closeErr error
}

// New opens (or creates) the member's state in cfg.DataDir, starts raft and serves
// the API. With Join it keeps asking the cluster to add it until it is a member.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.DataDir == "":
		return nil, errors.New("coordinator: no data directory")
	case len(cfg.Secret) == 0:
		return nil, errors.New("coordinator: no cluster secret")
	case cfg.Planner == nil:
		return nil, errors.New("coordinator: no planner")
	}
	if cfg.Clock == nil {
		cfg.Clock = systemClock{}
	}
	if cfg.Membership == nil {
		cfg.Membership = gossip.NewStatic()
	}
	if cfg.Protocol == 0 {
		cfg.Protocol = Protocol
	}
	if cfg.Protocol < ProtocolOldest || cfg.Protocol > Protocol {
		return nil, fmt.Errorf("coordinator: protocol %d: this build speaks %d to %d", cfg.Protocol, ProtocolOldest, Protocol)
	}
	if cfg.MaxBlobSize == 0 {
		cfg.MaxBlobSize = 64 << 30
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if cfg.RaftLog == nil {
		cfg.RaftLog = os.Stderr
	}
	cfg.Timing = cfg.Timing.withDefaults()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("coordinator: %w", err)
	}
	id, err := MemberID(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, id: id, log: cfg.Logger.With("member", id), clock: cfg.Clock, token: cfg.Secret.Token(), fsm: newFSM(cfg.Protocol)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if s.blobs, err = openBlobStore(filepath.Join(cfg.DataDir, "blobs"), cfg.MaxBlobSize, cfg.BlobFileGrace); err != nil {
		return nil, err
	}
	s.fsm.OnApply(func(uint64) { s.changes.notify() })
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg.TLS.Clone() // net/http sets its NextProtos; raft uses cfg.TLS too
	s.peer = &http.Client{Transport: tr}
	s.metrics = newMetrics(s)

	if s.apiLn, err = listen(cfg.APIAddr, cfg.TLS); err != nil {
		return nil, fmt.Errorf("coordinator: API: %w", err)
	}
	if s.apiAddr, err = advertised(s.apiLn.Addr(), cfg.APIAdvertise); err != nil {
		s.apiLn.Close()
		return nil, fmt.Errorf("coordinator: API: %w", err)
	}
	if err := s.startRaft(); err != nil {
		s.apiLn.Close()
		return nil, err
	}
	s.mux = http.NewServeMux()
	s.routes()
	s.http = &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	s.goroutine(func() {
		if err := s.http.Serve(s.apiLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("API server", "err", err)
		}
	})
	if s.expecting {
		s.goroutine(s.expect)
	}
	s.goroutine(s.watchLeadership)
	s.goroutine(s.announce)
	s.goroutine(s.halt)
	s.goroutine(s.syncBlobs)
	s.goroutine(s.sweepBlobs)
	s.log.Info("coordinator started", "raft", s.trans.LocalAddr(), "api", s.apiAddr)
	return s, nil
}

func listen(addr string, tlsConf *tls.Config) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if tlsConf != nil {
		c := tlsConf.Clone()
		c.ClientAuth = tls.RequireAndVerifyClientCert
		ln = tls.NewListener(ln, c)
	}
	return ln, nil
}

// advertised is the address others reach a listener bound at bound by.
func advertised(bound net.Addr, advertise string) (string, error) {
	if advertise != "" {
		return advertise, nil
	}
	if a, ok := bound.(*net.TCPAddr); ok && a.IP.IsUnspecified() {
		return "", fmt.Errorf("%s is not an address others can reach: set the advertise address", bound)
	}
	return bound.String(), nil
}

func (s *Server) goroutine(fn func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn()
	}()
}

// ID is the member's ID, kept in its data directory.
func (s *Server) ID() string { return s.id }

// APIAddr is the API's advertised address.
func (s *Server) APIAddr() string { return s.apiAddr }

// RaftAddr is raft's advertised address.
func (s *Server) RaftAddr() string { return string(s.trans.LocalAddr()) }

// IsLeader says whether this member is the raft leader now.
func (s *Server) IsLeader() bool { return s.raft.State() == raft.Leader }

// Alone says whether the raft configuration holds no other server: a single member,
// or the first one before any other joins.
func (s *Server) Alone() bool {
	f := s.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, srv := range f.Configuration().Servers {
		if string(srv.ID) != s.id {
			return false
		}
	}
	return true
}

// Read calls fn with the member's copy of the replicated state (see FSM.Read).
func (s *Server) Read(fn func(*State)) { s.fsm.Read(fn) }

// Handle serves an extra route of the API (the dataset blocks of the stream
// package): authenticated and counted like the others, answered by whichever member
// receives it.
func (s *Server) Handle(pattern string, h http.Handler) { s.route(pattern, local, h.ServeHTTP) }

// Close stops the member gracefully: a leader first hands its leadership to another
// voter, so that the cluster does not wait out an election timeout.
func (s *Server) Close() error { return s.close(true) }

func (s *Server) close(transfer bool) error {
	s.closeOnce.Do(func() {
		if transfer && s.IsLeader() && s.voters() > 1 {
			if err := s.raft.LeadershipTransfer().Error(); err != nil {
				s.log.Warn("leadership transfer", "err", err)
			}
		}
		s.reqMu.Lock()
		s.stopping = true
		s.reqMu.Unlock()
		s.cancel()
		s.http.Close()
		s.requests.Wait()
		s.wg.Wait()
		err := s.raft.Shutdown().Error()
		s.trans.Close()
		if cerr := s.store.Close(); err == nil {
			err = cerr
		}
		s.closeErr = err
	})
	return s.closeErr
}

// broadcast wakes everyone waiting for the next change.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

// wait is closed at the next notify.
func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch == nil {
		b.ch = make(chan struct{})
	}
	return b.ch
}

func (b *broadcast) notify() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
	}
}

// LoopbackTiming suits a cluster on one machine (tests, demos): elections in about a
// second even on a loaded machine, a leader loop that reacts within tens of ms.
var LoopbackTiming = Timing{Heartbeat: 300 * time.Millisecond, Election: 300 * time.Millisecond, LeaderLease: 150 * time.Millisecond,
	Commit: 20 * time.Millisecond, Tick: 20 * time.Millisecond, Apply: 5 * time.Second, DeadConfirm: time.Second}

// ManualClock is a Clock that moves only when told: tests step through rejoin
// windows and absence graces without waiting for them.
type ManualClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewManualClock is a ManualClock showing t.
func NewManualClock(t time.Time) *ManualClock { return &ManualClock{now: t} }

func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *ManualClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
