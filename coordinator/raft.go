package coordinator

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/internal/atomicfile"
	"github.com/bertnode/bertnode/internal/authconn"
	"github.com/bertnode/bertnode/internal/clusterkey"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// MemberID reads the ID of the member whose data directory is dir, making one the
// first time: a process needs it before New to name itself in gossip.
func MemberID(dir string) (string, error) {
	path := filepath.Join(dir, "member-id")
	b, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if id == "" {
			return "", fmt.Errorf("coordinator: %s is empty", path)
		}
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("coordinator: %w", err)
	}
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	id := "c-" + hex.EncodeToString(r[:])
	if err := atomicfile.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("coordinator: %w", err)
	}
	return id, nil
}

func (s *Server) startRaft() error {
	cfg := s.cfg
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(s.id)
	rc.HeartbeatTimeout, rc.ElectionTimeout = cfg.Heartbeat, cfg.Election
	rc.LeaderLeaseTimeout, rc.CommitTimeout = cfg.LeaderLease, cfg.Commit
	rc.SnapshotThreshold, rc.SnapshotInterval = cfg.SnapshotThreshold, cfg.SnapshotInterval
	rc.Logger = hclog.New(&hclog.LoggerOptions{Name: "raft " + s.id, Level: hclog.Warn, Output: cfg.RaftLog})
	notify := make(chan bool, 16)
	rc.NotifyCh = notify

	var err error
	if s.store, err = raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.DataDir, "raft.db")}); err != nil {
		return fmt.Errorf("coordinator: raft store: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 2, rc.Logger)
	if err != nil {
		s.store.Close()
		return fmt.Errorf("coordinator: raft snapshots: %w", err)
	}
	stream, err := s.raftStream()
	if err != nil {
		s.store.Close()
		return err
	}
	s.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: stream, MaxPool: 3, Timeout: 10 * time.Second, Logger: rc.Logger,
	})
	if err := s.openRaft(rc, snaps); err != nil {
		s.trans.Close()
		s.store.Close()
		return err
	}
	s.goroutine(func() { s.leadership(notify) })
	return nil
}

// openRaft starts raft on the store and transport startRaft opened: from the state in
// the data directory, or a new cluster of this member, or its state recovered into one.
// A snapshot there that this build cannot hold is its error: the FSM halts on it
// (FSM.Restore) before raft starts anything; so is a command that a recovery replays
// (FSM.Apply), whose halted FSM then refuses the snapshot the recovery would write
// before it compacts the log (FSM.Snapshot).
func (s *Server) openRaft(rc *raft.Config, snaps raft.SnapshotStore) error {
	cfg := s.cfg
	existing, err := raft.HasExistingState(s.store, s.store, snaps)
	if err != nil {
		return fmt.Errorf("coordinator: raft state: %w", err)
	}
	alone := raft.Configuration{Servers: []raft.Server{{ID: rc.LocalID, Address: s.trans.LocalAddr()}}}
	switch {
	case cfg.Recover && !existing:
		return fmt.Errorf("coordinator: recover: %s holds no cluster state to recover", cfg.DataDir)
	case cfg.Recover:
		// The log and snapshots are replayed into a scratch FSM to find the last
		// configuration; raft then writes a snapshot with this member alone.
		scratch := newFSM(cfg.Protocol)
		if err := raft.RecoverCluster(rc, scratch, s.store, s.store, snaps, s.trans, alone); err != nil {
			return cmp.Or(scratch.Halted(), fmt.Errorf("coordinator: recover: %w", err))
		}
		s.log.Warn("raft configuration recovered: this member alone", "addr", s.trans.LocalAddr())
	case existing:
		// A member restarting: its peers are in its log.
	case cfg.Bootstrap:
		if err := raft.BootstrapCluster(rc, s.store, s.store, snaps, s.trans, alone); err != nil {
			return fmt.Errorf("coordinator: bootstrap: %w", err)
		}
	case cfg.BootstrapExpect > 0:
		if cfg.BootstrapExpect > 1 && len(cfg.Join) == 0 {
			return errors.New("coordinator: bootstrap-expect: no addresses to find the other members at (--join)")
		}
		s.expecting = true // see expect
	case len(cfg.Join) == 0:
		return fmt.Errorf("coordinator: %s holds no cluster state: start the first member with --bootstrap, the others with --join", cfg.DataDir)
	}
	// Until the FSM has applied the log it starts with, it lacks recent blobs.
	if s.bootIndex, err = s.store.LastIndex(); err != nil {
		return fmt.Errorf("coordinator: raft log: %w", err)
	}
	if s.raft, err = raft.NewRaft(rc, s.fsm, s.store, s.store, snaps, s.trans); err != nil {
		return cmp.Or(s.fsm.Halted(), fmt.Errorf("coordinator: raft: %w", err))
	}
	return nil
}

// halt stops this member once its FSM halted on a command its protocol lacks
// (FSM.Apply) or a snapshot the leader sent (FSM.Restore): one error in its log, and
// raft and its transport stopped, as if the member were down (the leader would
// otherwise send the snapshot again and again; past the command, the FSM would answer
// every later entry with the halt), and its loops. raft's FSM goroutine, which Apply
// and Restore returned to, ends at the shutdown. Its API answers what halted it
// (place, /v1/self) until it is stopped and started on a build that holds the
// command, which its log keeps, or the snapshot, which raft stored before the restore.
func (s *Server) halt() {
	select {
	case <-s.fsm.stopped:
	case <-s.ctx.Done():
		return
	}
	s.log.Error(s.fsm.Halted().Error() + ". This member stopped: its raft is shut down, and its API answers 503 to all but /v1/self and /metrics")
	if err := s.raft.Shutdown().Error(); err != nil {
		s.log.Warn("raft shutdown", "err", err)
	}
	s.trans.Close()
	s.cancel()
}

// raftStream is raft's network: TCP (optionally mutual TLS) on which both ends prove
// they hold the cluster's raft key before raft reads a byte (internal/authconn).
func (s *Server) raftStream() (raft.StreamLayer, error) {
	cfg := s.cfg
	l, err := authconn.Config{Key: cfg.Secret.Derive(clusterkey.Raft), TLS: cfg.TLS,
		Logger: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}.Listen(cfg.RaftAddr)
	if err != nil {
		return nil, fmt.Errorf("coordinator: raft: %w", err)
	}
	var adv net.Addr
	if cfg.RaftAdvertise != "" {
		if adv, err = net.ResolveTCPAddr("tcp", cfg.RaftAdvertise); err != nil {
			l.Close()
			return nil, fmt.Errorf("coordinator: raft advertise address: %w", err)
		}
	} else if a, ok := l.Addr().(*net.TCPAddr); ok && a.IP.IsUnspecified() {
		l.Close()
		return nil, fmt.Errorf("coordinator: raft: %s is not an address peers can reach: set the advertise address", a)
	}
	return authconn.NewStreamLayer(l, adv), nil
}

// leadership runs the leader's loop while this member leads.
func (s *Server) leadership(notify <-chan bool) {
	var run *leaderRun // nil while not leading
	stop := func() {
		if run != nil {
			run.cancel()
			<-run.done
			run = nil
		}
	}
	defer stop()
	for {
		select {
		case lead := <-notify:
			s.metrics.leaderChanges.Inc()
			if lead && run == nil {
				run = s.startLeading()
			} else if !lead {
				stop()
			}
		case <-s.ctx.Done():
			return
		}
	}
}

type leaderRun struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (s *Server) startLeading() *leaderRun {
	ctx, cancel := context.WithCancel(s.ctx)
	r := &leaderRun{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		s.lead(ctx)
	}()
	return r
}

// watchLeadership wakes blocking queries and forwarding when the leader changes, so
// that they notice it without waiting for the next command, and keeps leaderless.
func (s *Server) watchLeadership() {
	ch := make(chan raft.Observation, 16)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	s.raft.RegisterObserver(obs)
	defer s.raft.DeregisterObserver(obs)
	known := func(leader bool) {
		if leader {
			s.leaderless.Store(0)
		} else {
			s.leaderless.CompareAndSwap(0, time.Now().UnixNano())
		}
	}
	_, id := s.raft.LeaderWithID()
	known(id != "")
	for {
		select {
		case o := <-ch:
			known(o.Data.(raft.LeaderObservation).LeaderID != "")
			s.changes.notify()
		case <-s.ctx.Done():
			return
		}
	}
}

func (s *Server) voters() int {
	f := s.raft.GetConfiguration()
	if f.Error() != nil {
		return 0
	}
	n := 0
	for _, srv := range f.Configuration().Servers {
		if srv.Suffrage == raft.Voter {
			n++
		}
	}
	return n
}

// self is this member's record as it should be in the replicated state.
func (s *Server) self() api.JoinMember {
	j := api.JoinMember{ID: s.id, RaftAddr: s.RaftAddr(), APIAddr: s.apiAddr, GossipAddr: s.cfg.GossipAddr, Protocol: s.cfg.Protocol}
	if s.cfg.unversioned {
		j.Protocol = 0
	}
	return j
}

func (s *Server) recorded() bool {
	want := s.self()
	ok := false
	s.fsm.Read(func(st *State) {
		m := st.Members[s.id]
		ok = sameAddrs(m, want) && m.Protocol == want.Protocol
	})
	return ok
}

func sameAddrs(m *api.Member, j api.JoinMember) bool {
	return m != nil && m.RaftAddr == j.RaftAddr && m.APIAddr == j.APIAddr && m.GossipAddr == j.GossipAddr
}

// protocolDropped says whether this member's record lacks only its protocol while the
// leader's own record has none: a leader of a build before protocol versions, which
// drops the field (a leader of a later build records its own first thing), so asking
// it again would only add an entry to the log.
func (s *Server) protocolDropped() bool {
	_, leader := s.raft.LeaderWithID()
	want := s.self()
	ok := false
	s.fsm.Read(func(st *State) {
		l := st.Members[string(leader)]
		ok = sameAddrs(st.Members[s.id], want) && l != nil && l.Protocol == 0
	})
	return ok
}

// announce asks the cluster to add this member, or to update its record after a
// restart with other addresses or another build's protocol, until the replicated
// state has it right; and again whenever the state's record of it changes, until the
// member is removed. A member's state at its start may be behind the others': its
// snapshot, sent by the leader, held its record from before it last ran (on an older
// build, say), which the log then changes. While a leader older than protocol
// versions leads, which drops the protocol, the member whose record lacks only that
// waits for an upgraded leader rather than ask again.
func (s *Server) announce() {
	backoff, known := 100*time.Millisecond, false
	for {
		changed := s.changes.wait()
		if s.recorded() {
			known, backoff = true, 100*time.Millisecond
			select {
			case <-changed:
				continue
			case <-s.ctx.Done():
				return
			}
		}
		present := false
		s.fsm.Read(func(st *State) { present = st.Members[s.id] != nil })
		if known && !present {
			return // removed (bertnode members remove)
		}
		if s.IsLeader() || s.protocolDropped() {
			// The leader's loop records itself; an older leader would drop the protocol.
		} else if addrs := s.peerAPIs(); len(addrs) > 0 {
			ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
			err := s.client(addrs).JoinMember(ctx, s.self())
			cancel()
			if err != nil {
				s.log.Debug("join", "via", addrs, "err", err)
			}
		}
		select {
		case <-time.After(backoff):
		case <-s.ctx.Done():
			return
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// peerAPIs are the other members' API addresses: --join's, then the state's.
func (s *Server) peerAPIs() []string {
	addrs := slices.Clone(s.cfg.Join)
	s.fsm.Read(func(st *State) {
		for _, m := range st.Members {
			if m.ID != s.id && !slices.Contains(addrs, m.APIAddr) {
				addrs = append(addrs, m.APIAddr)
			}
		}
	})
	return addrs
}

// client is an API client for the other members, with this member's credentials.
func (s *Server) client(addrs []string) *api.Client {
	return &api.Client{Addrs: addrs, Token: s.token, TLS: s.cfg.TLS, HTTP: s.peer, MaxBackoff: time.Second}
}

// leaderAPI is the leader's API address, "" when there is none or it is not known.
func (s *Server) leaderAPI() string {
	_, id := s.raft.LeaderWithID()
	if id == "" {
		return ""
	}
	if string(id) == s.id {
		return s.apiAddr
	}
	addr := ""
	s.fsm.Read(func(st *State) {
		if m := st.Members[string(id)]; m != nil {
			addr = m.APIAddr
		}
	})
	return addr
}

// join adds a member as a voter (on the leader) and records it.
func (s *Server) join(ctx context.Context, j api.JoinMember) (uint64, error) {
	if j.ID == "" || j.RaftAddr == "" || j.APIAddr == "" {
		return 0, badField("id", "id, raft_addr and api_addr are required")
	}
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return 0, unavailable(err)
	}
	present := false
	for _, srv := range f.Configuration().Servers {
		switch {
		case srv.ID == raft.ServerID(j.ID):
			present = srv.Address == raft.ServerAddress(j.RaftAddr) && srv.Suffrage == raft.Voter
		case srv.Address == raft.ServerAddress(j.RaftAddr):
			// A member made anew at an old address (its data directory lost): the old
			// one is gone.
			if err := s.raft.RemoveServer(srv.ID, 0, s.cfg.Apply).Error(); err != nil {
				return 0, unavailable(err)
			}
			if _, _, err := s.commit(ctx, CmdMemberRemove, MemberRemove{ID: string(srv.ID)}); err != nil {
				var ae *api.Error
				if !errors.As(err, &ae) || ae.Status != http.StatusNotFound {
					return 0, err
				}
			}
		}
	}
	if !present {
		if err := s.raft.AddVoter(raft.ServerID(j.ID), raft.ServerAddress(j.RaftAddr), 0, s.cfg.Apply).Error(); err != nil {
			return 0, unavailable(err)
		}
	}
	if s.cfg.unversioned {
		j.Protocol = 0
	}
	_, idx, err := s.commit(ctx, CmdMemberJoin, j)
	return idx, err
}

// removeMember takes a member out of raft and of the state.
func (s *Server) removeMember(ctx context.Context, id string) (uint64, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return 0, unavailable(err)
	}
	inRaft := slices.ContainsFunc(f.Configuration().Servers, func(srv raft.Server) bool { return srv.ID == raft.ServerID(id) })
	known := false
	s.fsm.Read(func(st *State) { known = st.Members[id] != nil })
	if !inRaft && !known {
		return 0, errorf(http.StatusNotFound, "no member %q", id)
	}
	var idx uint64
	if known {
		var err error
		if _, idx, err = s.commit(ctx, CmdMemberRemove, MemberRemove{ID: id}); err != nil {
			return 0, err
		}
	}
	if inRaft {
		if err := s.raft.RemoveServer(raft.ServerID(id), 0, s.cfg.Apply).Error(); err != nil {
			return 0, unavailable(err)
		}
	}
	return idx, nil
}

// members lists the coordinators: the state's records with raft's view of them.
func (s *Server) members(st *State) []api.Member {
	_, leader := s.raft.LeaderWithID()
	var servers []raft.Server
	if f := s.raft.GetConfiguration(); f.Error() == nil {
		servers = f.Configuration().Servers
	}
	var out []api.Member
	for _, m := range st.Members {
		mm := *m
		mm.Voter = slices.ContainsFunc(servers, func(srv raft.Server) bool {
			return srv.ID == raft.ServerID(m.ID) && srv.Suffrage == raft.Voter
		})
		mm.Leader = raft.ServerID(m.ID) == leader
		out = append(out, mm)
	}
	for _, srv := range servers {
		if st.Members[string(srv.ID)] == nil {
			out = append(out, api.Member{ID: string(srv.ID), RaftAddr: string(srv.Address), Voter: srv.Suffrage == raft.Voter, Leader: srv.ID == leader})
		}
	}
	slices.SortFunc(out, func(a, b api.Member) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// commit proposes a command (on the leader) and waits until it is applied: its
// answer, the raft index, and the command's error (*api.Error) or raft's (503). A
// command some member's protocol lacks is refused (409) before it reaches the log.
func (s *Server) commit(ctx context.Context, typ string, body any) (any, uint64, error) {
	if err := s.supports("command "+typ, appliers[typ].since); err != nil {
		return nil, 0, err
	}
	b, err := NewCommand(typ, s.clock.Now(), body)
	if err != nil {
		return nil, 0, err
	}
	f := s.raft.Apply(b, s.cfg.Apply)
	if err := f.Error(); err != nil {
		return nil, 0, unavailable(err)
	}
	res := f.Response().(ApplyResult)
	return res.Value, f.Index(), res.Err
}

// unavailable is a raft error as the API answers it: try again (elsewhere).
func unavailable(err error) error {
	return &api.Error{Status: http.StatusServiceUnavailable, Message: "raft: " + err.Error()}
}
