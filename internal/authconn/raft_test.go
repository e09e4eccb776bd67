package authconn

import (
	"io"
	"log"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bertnode/bertnode/internal/syncbuf"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// logFSM records the entries it applies.
type logFSM struct {
	mu      sync.Mutex
	entries []string
}

func (f *logFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = append(f.entries, string(l.Data))
	return nil
}

func (f *logFSM) list() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.entries)
}

func (f *logFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, io.ErrUnexpectedEOF }
func (f *logFSM) Restore(io.ReadCloser) error         { return io.ErrUnexpectedEOF }

type raftServer struct {
	id       raft.ServerID
	addr     raft.ServerAddress
	r        *raft.Raft
	fsm      *logFSM
	raftLog  *syncbuf.Buffer // raft's own log
	listened *syncbuf.Buffer // the Listener's log of dropped handshakes
}

func startRaft(t *testing.T, id string, key []byte) *raftServer {
	t.Helper()
	s := &raftServer{id: raft.ServerID(id), fsm: &logFSM{}, raftLog: &syncbuf.Buffer{}, listened: &syncbuf.Buffer{}}
	l, err := Config{Key: key, Logger: log.New(s.listened, "", 0)}.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = raft.ServerAddress(l.Addr().String())
	logger := hclog.New(&hclog.LoggerOptions{Name: id, Output: s.raftLog, Level: hclog.Info})
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: NewStreamLayer(l, nil), MaxPool: 3, Timeout: 10 * time.Second, Logger: logger})
	conf := raft.DefaultConfig()
	conf.LocalID = s.id
	conf.Logger = logger
	conf.HeartbeatTimeout = 500 * time.Millisecond
	conf.ElectionTimeout = 500 * time.Millisecond
	conf.LeaderLeaseTimeout = 250 * time.Millisecond
	conf.CommitTimeout = 20 * time.Millisecond
	store := raft.NewInmemStore()
	if s.r, err = raft.NewRaft(conf, s.fsm, store, store, raft.NewDiscardSnapshotStore(), trans); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.r.Shutdown().Error()
		trans.Close()
		if t.Failed() {
			t.Logf("raft log of %s:\n%s\nlistener log of %s:\n%s", id, s.raftLog, id, s.listened)
		}
	})
	return s
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func apply(t *testing.T, r *raft.Raft, entries ...string) {
	t.Helper()
	for _, e := range entries {
		if err := r.Apply([]byte(e), 10*time.Second).Error(); err != nil {
			t.Fatalf("apply %q: %v", e, err)
		}
	}
}

func TestRaftReplicatesOverAuthConn(t *testing.T) {
	key := newKey(t)
	s1 := startRaft(t, "s1", key)
	s2 := startRaft(t, "s2", key)
	boot := raft.Configuration{Servers: []raft.Server{{ID: s1.id, Address: s1.addr}}}
	if err := s1.r.BootstrapCluster(boot).Error(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "s1 to lead", func() bool { return s1.r.State() == raft.Leader })
	if err := s1.r.AddVoter(s2.id, s2.addr, 0, 10*time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	apply(t, s1.r, "a", "b")
	waitUntil(t, "s2 to apply a, b", func() bool { return slices.Equal(s2.fsm.list(), []string{"a", "b"}) })

	// A third server with another key is added to the configuration (s1 and s2 are a
	// majority of three), but nothing reaches it, and the two go on without it.
	s3 := startRaft(t, "s3", newKey(t))
	if err := s1.r.AddVoter(s3.id, s3.addr, 0, 10*time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	apply(t, s1.r, "c")
	waitUntil(t, "s2 to apply c", func() bool { return slices.Equal(s2.fsm.list(), []string{"a", "b", "c"}) })
	waitLog(t, s3.listened, "the dialer's proof of the key is wrong")
	waitLog(t, s1.raftLog, "the acceptor's proof of the key is wrong")
	if got := s3.fsm.list(); len(got) != 0 || s3.r.LastIndex() != 0 {
		t.Fatalf("s3, with another key, got entries %q (last index %d)", got, s3.r.LastIndex())
	}
	if s3.r.State() == raft.Leader {
		t.Fatal("s3 leads")
	}
}
