package coordinator

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/gossip"
	"github.com/bertnode/bertnode/shard"
)

// leaderLoop is the leader's work outside the FSM (docs/cluster.md, "The leader's
// loop"): it reconciles gossip into node health, plans datasets, and proposes what
// decide decides. It runs only while this member leads.
type leaderLoop struct {
	s *Server
	// absent: when each registered node, and each other member (absentMembers), was
	// first seen missing from gossip.
	absent, absentMembers map[string]time.Time
	// dead: when this leader's gossip first called each node dead, on this machine's
	// clock; the state says so only after Timing.DeadConfirm (see health).
	dead map[string]time.Time
	// unjoined: this leader's gossip lists none of the other coordinators (see health).
	unjoined bool
	// planning: the datasets being planned ("job/which"); planned receives them back.
	// plans: their goroutines, which store blobs: the loop ends only after them, so
	// that nothing writes to the data directory once Close has returned.
	planning map[string]bool
	planned  chan string
	plans    sync.WaitGroup
	// collectAt: when to look next for blobs to collect; trimAt, for deleted jobs to
	// forget; reapAt, for nodes to remove (node GC).
	collectAt, trimAt, reapAt time.Time
}

func (s *Server) lead(ctx context.Context) {
	s.log.Info("leading")
	defer s.log.Info("no longer leading")
	// The state must hold everything committed before this member's term.
	for s.raft.Barrier(s.cfg.Apply).Error() != nil {
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.cfg.Tick):
		}
	}
	s.consistent.Store(true)
	s.changes.notify()
	defer s.consistent.Store(false)
	l := &leaderLoop{s: s, absent: map[string]time.Time{}, absentMembers: map[string]time.Time{}, dead: map[string]time.Time{}, planning: map[string]bool{}, planned: make(chan string, 16)}
	defer l.plans.Wait()
	tick := time.NewTicker(s.cfg.Tick)
	defer tick.Stop()
	for {
		changed := s.changes.wait()
		l.pass(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-changed:
		case <-s.cfg.Membership.Changes():
		case key := <-l.planned:
			delete(l.planning, key)
		}
	}
}

func (l *leaderLoop) pass(ctx context.Context) {
	s := l.s
	if !s.recorded() {
		if _, err := s.join(ctx, s.self()); err != nil {
			s.log.Warn("recording this member", "err", err)
		}
	}
	now := s.clock.Now()
	var health []HealthUpdate
	var decisions []decision
	var toPlan []planWork
	ms := s.cfg.Membership.Members()
	s.fsm.Read(func(st *State) {
		health = l.health(st, ms, now)
		toPlan = l.unplanned(st)
	})
	if len(health) > 0 {
		if _, _, err := s.commit(ctx, CmdHealth, HealthUpdates{Updates: health}); err != nil {
			s.log.Warn("health", "err", err)
			return
		}
	}
	for _, w := range toPlan {
		l.planning[w.key] = true
		l.plans.Go(func() { l.plan(ctx, w) })
	}
	l.expire(ctx, now, &l.collectAt, s.cfg.BlobGrace, (*State).collectable, CmdBlobsCollect,
		func(before time.Time) any { return BlobsCollect{Before: before} })
	l.expire(ctx, now, &l.trimAt, s.cfg.DeletedRetention, (*State).trimmable, CmdDeletedTrim,
		func(before time.Time) any { return DeletedTrim{Before: before} })
	l.reap(ctx, now)
	s.fsm.Read(func(st *State) { decisions = decide(st, now) })
	for _, d := range decisions {
		if b, ok := d.body.(BeginReconfig); ok && b.Growth && s.supports("a growth", protocolGrowth) != nil {
			// An FSM before Growth would open a plain reconfiguration: every member opens that.
			b.Growth = false
			d.body = b
		}
		if _, _, err := s.commit(ctx, d.typ, d.body); err != nil {
			// The state moved under us (a report came in): decide again next pass.
			s.log.Warn("leader decision", "command", d.typ, "err", err)
			return
		}
	}
}

// expire commits the command typ, made by body(before) with before = now less keep,
// when find says the state holds something older: blobs past their grace that no job
// references (BlobsCollect), deleted jobs past the retention (DeletedTrim). It looks
// every minute, or four times per keep if that is shorter (*next), not every pass.
func (l *leaderLoop) expire(ctx context.Context, now time.Time, next *time.Time, keep time.Duration,
	find func(st *State, before time.Time) []string, typ string, body func(before time.Time) any) {
	s := l.s
	if now.Before(*next) {
		return
	}
	*next = now.Add(min(keep/4, time.Minute))
	before := now.Add(-keep)
	var found []string
	s.fsm.Read(func(st *State) { found = find(st, before) })
	if len(found) == 0 {
		return
	}
	v, _, err := s.commit(ctx, typ, body(before))
	if err != nil {
		s.log.Warn("leader decision", "command", typ, "err", err)
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Status >= 500 {
			*next = now // raft failed: try again next pass
		}
		return
	}
	s.log.Info("expired", "command", typ, "gone", v)
}

// reap is the node GC (docs/cluster.md, "Node GC"): it removes, one NodeRemove each,
// the nodes dead or left for longer than Timing.NodeGC that no running job needs. It
// looks as often as expire does. A refusal (the node came back meanwhile) is logged
// and the rest go on.
func (l *leaderLoop) reap(ctx context.Context, now time.Time) {
	s := l.s
	if s.cfg.NodeGC < 0 || now.Before(l.reapAt) {
		return
	}
	l.reapAt = now.Add(min(s.cfg.NodeGC/4, time.Minute))
	before := now.Add(-s.cfg.NodeGC)
	var found []*api.Node
	s.fsm.Read(func(st *State) {
		for _, id := range st.reapable(before) {
			n := *st.Nodes[id]
			found = append(found, &n)
		}
	})
	for _, n := range found {
		if _, _, err := s.commit(ctx, CmdNodeRemove, NodeRemove{Node: n.ID, Before: before}); err != nil {
			s.log.Warn("node GC", "node", n.ID, "err", err)
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Status >= 500 {
				l.reapAt = now // raft failed: try again next pass
				return
			}
			continue // refused: the node came back, or a job took it
		}
		s.metrics.nodesReaped.Inc()
		s.log.Info("node GC: removed", "node", n.ID, "name", n.Name, "health", n.Health,
			"since", n.HealthSince.UTC().Format(time.RFC3339), "threshold", s.cfg.NodeGC)
	}
}

// health compares gossip's view with the state's: the changes to commit. A node or
// another member that gossip does not list at all is dead once this leader has missed
// it for AbsentGrace (counted from its first pass: its own gossip view may be young).
// A node gossip calls
// dead is dead once it has stayed so for DeadConfirm: a member cut off from the others
// declares everyone dead, and when the cut heals its word reaches the leader before the
// node's refutation does (the fault suite: a live donor left out of its generation).
// A leader whose gossip lists none of the other coordinators, though raft shows it
// some, has not joined gossip (a restarted member still finding the others) or lost
// its view: it sees no node either, and counts no node's absence until it sees one.
func (l *leaderLoop) health(st *State, ms []gossip.Member, now time.Time) []HealthUpdate {
	seen := make(map[string]gossip.Member, len(ms))
	for _, m := range ms {
		seen[m.Name] = m
	}
	unjoined, others := true, false
	for id := range st.Members {
		if id != l.s.id {
			_, ok := seen[id]
			unjoined, others = unjoined && !ok, true
		}
	}
	unjoined = unjoined && others
	if unjoined != l.unjoined {
		if unjoined {
			l.s.log.Warn("gossip lists no other coordinator: not counting nodes missing from it as dead until it does")
		} else {
			l.s.log.Info("gossip lists the other coordinators again")
		}
		l.unjoined = unjoined
	}
	var out []HealthUpdate
	for _, id := range sortedKeys(st.Nodes) {
		n := st.Nodes[id]
		m, ok := seen[id]
		if ok {
			delete(l.absent, id)
			if m.Health != api.Dead {
				delete(l.dead, id)
			} else if n.Health != api.Dead {
				if _, seen := l.dead[id]; !seen {
					l.dead[id] = time.Now()
				}
				if time.Since(l.dead[id]) < l.s.cfg.DeadConfirm {
					continue
				}
			}
			if m.Health != "" && m.Health != n.Health {
				out = append(out, HealthUpdate{ID: id, Health: m.Health, Why: "gossip"})
			}
			continue
		}
		if n.Health == api.Dead || n.Health == api.Left {
			continue
		}
		if l.missing(l.absent, id, unjoined, now) {
			out = append(out, HealthUpdate{ID: id, Health: api.Dead, Why: "not in gossip"})
		}
	}
	// Forget the nodes the state no longer holds (node GC, bertnode nodes remove): one
	// that registers again is new, and its absence counts from then.
	for _, m := range []map[string]time.Time{l.absent, l.dead} {
		for id := range m {
			if st.Nodes[id] == nil {
				delete(m, id)
			}
		}
	}
	// A member is dead once missing as long: one stopped before the others' gossip
	// knew it (just after it bootstrapped, or its gossip port unreachable) would
	// otherwise stay alive as it joined, for good.
	for id := range l.absentMembers {
		if st.Members[id] == nil {
			delete(l.absentMembers, id)
		}
	}
	for _, id := range sortedKeys(st.Members) {
		m, ok := seen[id]
		h := st.Members[id].Health
		switch {
		case ok:
			delete(l.absentMembers, id)
			if m.Health != "" && m.Health != h {
				out = append(out, HealthUpdate{ID: id, Member: true, Health: m.Health, Why: "gossip"})
			}
		case id != l.s.id && h != api.Dead && h != api.Left && l.missing(l.absentMembers, id, unjoined, now):
			out = append(out, HealthUpdate{ID: id, Member: true, Health: api.Dead, Why: "not in gossip"})
		}
	}
	return out
}

// missing says whether id, which gossip does not list, has been missing from it for
// AbsentGrace, counted in absent from the first pass that missed it. While this
// leader's gossip is unjoined, an absence says nothing: it counts from when it is.
func (l *leaderLoop) missing(absent map[string]time.Time, id string, unjoined bool, now time.Time) bool {
	if unjoined {
		delete(absent, id)
		return false
	}
	since, ok := absent[id]
	if !ok {
		since = now
		absent[id] = since
	}
	return now.Sub(since) >= l.s.cfg.AbsentGrace
}

// planWork is one dataset to plan.
type planWork struct {
	key, job, which, path string
	data                  shard.Spec
	specErr               error // checked at submission, but read again here
	opts                  PlanOptions
}

// unplanned lists the datasets of pending jobs that need a plan and can have one now
// (an uploaded file this member does not hold yet waits for the blob syncer).
func (l *leaderLoop) unplanned(st *State) []planWork {
	var out []planWork
	for _, j := range sortedJobs(st) {
		if j.State != api.Pending {
			continue
		}
		for _, ds := range []struct {
			which string
			d     *api.Dataset
		}{{"train", j.Train}, {"eval", j.Eval}} {
			key := j.ID + "/" + ds.which
			if ds.d == nil || ds.d.Plan != "" || ds.d.Error != "" || l.planning[key] {
				continue
			}
			w := planWork{key: key, job: j.ID, which: ds.which, path: ds.d.Path}
			if ds.d.Blob != "" {
				if _, ok := l.s.blobs.size(ds.d.Blob); !ok {
					continue
				}
				w.path = l.s.blobs.path(ds.d.Blob)
			}
			w.opts = PlanOptions{BlockRecords: j.Cluster.BlockRecords, Name: ds.d.Path}
			if j.Kind == api.KindPredict {
				spec, err := api.ParsePredictSpec(j.Spec)
				w.data, w.opts.Task, w.specErr = spec.Data, spec.Task, err
			} else {
				spec, err := parseJobSpec(j.Spec)
				w.data, w.opts.Task, w.specErr = spec.Data, spec.Task, err
				if ds.which == "train" && spec.Eval == "" {
					w.opts.EvalSplit = spec.EvalSplit
				}
			}
			out = append(out, w)
		}
	}
	return out
}

// plan runs the planner, stores the plan as a blob and commits it, or the error.
func (l *leaderLoop) plan(ctx context.Context, w planWork) {
	s := l.s
	defer func() {
		select {
		case l.planned <- w.key:
		case <-ctx.Done():
		}
	}()
	res := DatasetPlanned{Job: w.job, Which: w.which}
	p, err := Planned{}, w.specErr
	if err == nil {
		p, err = s.cfg.Planner.Plan(ctx, w.path, w.data, w.opts)
	}
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		res.Error = err.Error()
	} else {
		if res.Plan, err = s.storeBlob(ctx, p.Plan); err != nil {
			s.log.Warn("storing a plan", "job", w.job, "err", err) // planned again next pass
			return
		}
		res.Records, res.Labels = p.Records, p.Labels
	}
	if _, _, err := s.commit(ctx, CmdDatasetPlanned, res); err != nil {
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Status >= 500 {
			s.log.Warn("committing a plan", "job", w.job, "err", err)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
