package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"time"

	"github.com/bertnode/bertnode/allreduce"
	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/internal/failpoint"
	"github.com/bertnode/bertnode/internal/lossscale"
	"github.com/bertnode/bertnode/internal/rate"
	"github.com/bertnode/bertnode/metrics"
	"github.com/bertnode/bertnode/report"
	"github.com/bertnode/bertnode/stream"
)

var (
	// errFinished: the job's last step is done and this node has done its part of
	// the ending.
	errFinished = errors.New("finished")
	// errDiverged: ranks hold different states; the job cannot go on.
	errDiverged = errors.New("replicas diverged")
	// errRetry: this generation cannot start here, but the next may.
	errRetry = errors.New("not ready")
)

// session trains one job on this node, across as many generations as it takes.
type session struct {
	a     *Agent
	job   *api.Job
	env   *Env
	dir   string
	pos   Position
	has   bool // pos and the replica's buffers are a state of the job's lineage
	total int64

	order      []int32
	orderEpoch int

	// speeds are the ranks' samples per millisecond of compute, averaged over the
	// steps of the current generation: cluster.balance cuts batches by them. Every
	// rank computes them from the same commit rounds, so they agree.
	speeds []float64

	audit   *auditLog
	metrics *os.File
	tb      *report.TensorBoard // with report_to: [tensorboard]
	rep     *reporter
	ckpts   *checkpointReports
	uploads *uploader
	rate    rate.Meter

	// overlapTried steps overlapped the all-reduce with backward and sent sentEarly
	// bytes before backward returned. When the first few send nothing early (the
	// first bucket holds a gradient that backward finishes last, as the embeddings of a
	// small model), overlap only costs: noOverlap turns it off for the session.
	overlapTried int
	sentEarly    int64
	noOverlap    bool
}

// overlapProbeSteps is how many overlapped steps decide whether overlap pays.
const overlapProbeSteps = 3

func newSession(a *Agent, job *api.Job) *session {
	return &session{a: a, job: job, dir: filepath.Join(a.cfg.Dir, "jobs", job.ID), orderEpoch: -1}
}

func (s *session) logf(format string, args ...any) {
	s.a.cfg.Log.Printf("job %s: "+format, append([]any{s.job.ID}, args...)...)
}

// run trains until the job ends for this node. The goroutine stays on one OS thread
// (libtorch's rule) from the replica's creation to its last use.
func (s *session) run(ctx context.Context) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	moved, err := claimJobDir(s.dir, s.job)
	if err != nil {
		return s.fail(ctx, err)
	}
	if moved != "" {
		s.logf("%s held another job of this ID (the coordinators' state was started over): moved to %s", s.dir, moved)
	}
	env, err := s.a.cfg.Setup(ctx, s.job)
	if err != nil {
		return s.fail(ctx, fmt.Errorf("setup: %w", err))
	}
	s.env = env
	s.total = env.Spec.TotalSteps(env.Data.Records())
	if err := s.resume(ctx); err != nil {
		return s.fail(ctx, err)
	}
	if s.audit, err = openAudit(filepath.Join(s.dir, "audit.jsonl")); err != nil {
		return s.fail(ctx, err)
	}
	if s.metrics, err = os.OpenFile(filepath.Join(s.dir, "metrics.jsonl"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
		return s.fail(ctx, err)
	}
	if slices.Contains(env.Spec.ReportTo, "tensorboard") {
		if s.tb, err = report.NewTensorBoard(s.dir); err != nil {
			return s.fail(ctx, err)
		}
		if s.has {
			s.tb.Restart(s.pos.Step) // TensorBoard drops what a crashed run logged past the checkpoint
		}
	}
	s.rep = startReporter(ctx, s.a.cfg.Coordinator, s.job.ID, s.a.cfg.Log)
	s.ckpts = startCheckpointReports(ctx, s.a.cfg.Coordinator, s.job.ID, s.a.cfg.Log)
	s.uploads = newUploader(s.a.cfg.Coordinator, s.job.ID, s.a.cfg.ID, s.a.cfg.Log)
	lastGen, err := joinedGen(s.dir)
	if err != nil {
		return s.fail(ctx, err)
	}
	if lastGen > 0 {
		s.restarted(ctx, lastGen)
	}
	for {
		as, err := s.a.board.await(ctx, func(x *api.Assignment) bool {
			return s.gone(x) || x.Rank >= 0 && x.Job.Gen != nil && x.Job.Gen.Gen > lastGen
		})
		if err != nil {
			return nil
		}
		if s.gone(as) {
			return nil
		}
		lastGen = as.Job.Gen.Gen
		err = s.generation(ctx, as)
		s.a.inGen.Store(0)
		switch {
		case errors.Is(err, errFinished):
			// wait for the job to end, or for a new generation that must finish it
			// (rank 0 died before reporting the end)
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, errDiverged), !recoverable(err):
			return s.fail(ctx, err)
		case s.superseded(lastGen):
			s.logf("generation %d ended: %v", lastGen, err)
		default:
			s.logf("generation %d failed: %v", lastGen, err)
			rep := api.FailureReport{Node: s.a.cfg.ID, Gen: lastGen, Applied: s.pos.Step, Error: err.Error(), Suspect: suspect(err, as.Job.Gen)}
			if err := s.a.failure(ctx, s.job.ID, rep); err != nil {
				s.logf("%v", err)
			}
		}
	}
}

// restarted reports generation gen broken when the job still has this node in it: an
// earlier process of this node joined it (genFile), and that process is gone. The
// coordinator then opens the next, which this session waits for.
func (s *session) restarted(ctx context.Context, gen uint32) {
	x, _ := s.a.board.get()
	if s.gone(x) || x.Rank < 0 || x.Job.Gen == nil || x.Job.Gen.Gen != gen {
		return
	}
	s.logf("this node restarted: its process in generation %d is gone; waiting for the next generation", gen)
	rep := api.FailureReport{Node: s.a.cfg.ID, Gen: gen, Applied: s.pos.Step, Error: fmt.Sprintf("%s restarted: its process in generation %d is gone", s.a.cfg.ID, gen)}
	if err := s.a.failure(ctx, s.job.ID, rep); err != nil {
		s.logf("%v", err)
	}
}

// gone says the node no longer works on the session's job.
func (s *session) gone(x *api.Assignment) bool {
	return x.Job == nil || x.Job.ID != s.job.ID || x.Job.State.Done()
}

// superseded says the coordinator has moved on from generation gen (or is about to).
func (s *session) superseded(gen uint32) bool {
	x, _ := s.a.board.get()
	return s.gone(x) || x.Job.Gen == nil || x.Job.Gen.Gen != gen || x.Rank < 0 ||
		x.Job.Reconfig != nil && x.Job.Reconfig.Gen == gen
}

// fail ends the job: the error is not one that another generation would cure; but
// for this node's disk failing, which ends only its part in the job (drainSelf).
func (s *session) fail(ctx context.Context, err error) error {
	rep := api.DoneReport{Node: s.a.cfg.ID, Step: s.pos.Step, Error: err.Error()}
	if x, _ := s.a.board.get(); x != nil && x.Job != nil && x.Job.Gen != nil {
		rep.Gen = x.Job.Gen.Gen
	}
	if diskFailed(err) && !errors.Is(err, errDiverged) {
		return s.drainSelf(ctx, rep.Gen, err)
	}
	if rerr := retry(ctx, s.a.cfg.Log, "done report", func() error { return s.a.cfg.Coordinator.Done(ctx, s.job.ID, rep) }); rerr != nil {
		s.logf("%v", rerr)
	}
	return err
}

func (s *session) close() {
	if s.rep != nil {
		s.rep.stop()
	}
	if s.ckpts != nil {
		s.ckpts.stop()
	}
	if s.uploads != nil {
		s.uploads.stop()
	}
	if s.audit != nil {
		s.audit.close()
	}
	if s.metrics != nil {
		s.metrics.Close()
	}
	if s.tb != nil {
		if err := s.tb.Close(); err != nil {
			s.logf("tensorboard: %v", err)
		}
	}
	if s.env != nil {
		s.env.Replica.Close()
		if s.env.Close != nil {
			s.env.Close()
		}
	}
}

// errDiskFailed ends a session whose node's disk failed; the node drained itself.
var errDiskFailed = errors.New("this node's disk failed")

// diskFailed says err is this node's own storage failing (full, over quota,
// read-only, an I/O error): another generation here would fail alike, while the job
// can go on without the node.
func diskFailed(err error) bool {
	for _, e := range []error{syscall.ENOSPC, syscall.EDQUOT, syscall.EROFS, syscall.EIO} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// drainSelf takes the node out of the job and of any other until an operator undrains
// it (bertnode nodes undrain), as it would a sick machine: it drains itself, then
// reports generation gen broken, naming the disk's error, so that the coordinator
// goes on without it (or, short of min_nodes without it, waits for nodes). The session
// ends; its node confirms no reconfiguration then, so the next generation leaves it
// out, and a drained node takes no place in a later one.
func (s *session) drainSelf(ctx context.Context, gen uint32, err error) error {
	id := s.a.cfg.ID
	s.logf("generation %d: this node's disk failed: %v; it drains itself (bertnode nodes undrain %s once fixed)", gen, err, id)
	if derr := retry(ctx, s.a.cfg.Log, "drain", func() error { return s.a.cfg.Coordinator.Drain(ctx, id, true) }); derr != nil {
		s.logf("%v", derr)
	}
	rep := api.FailureReport{Node: id, Gen: gen, Applied: s.pos.Step, Error: fmt.Sprintf("%s drained itself: its disk failed: %v", id, err)}
	if rerr := s.a.failure(ctx, s.job.ID, rep); rerr != nil {
		s.logf("%v", rerr)
	}
	return fmt.Errorf("%w: %v", errDiskFailed, err)
}

// recoverable says a next generation may cure err: the ring broke or was told to stop.
func recoverable(err error) bool {
	if ae := (*api.Error)(nil); errors.As(err, &ae) && ae.Superseded {
		return true // a report raced a generation change
	}
	for _, e := range []error{allreduce.ErrPeerLost, allreduce.ErrTimeout, allreduce.ErrBroken, allreduce.ErrClosed,
		allreduce.ErrStaleGeneration, allreduce.ErrProtocol, allreduce.ErrConfigMismatch, context.Canceled, context.DeadlineExceeded, errRetry} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// suspect names the node a ring error points at.
func suspect(err error, g *api.Generation) string {
	var pe *allreduce.PeerError
	if errors.As(err, &pe) && g != nil && pe.Rank >= 0 && pe.Rank < len(g.Members) {
		return g.Members[pe.Rank].Node
	}
	return ""
}

// genContext is ctx, cancelled as soon as the coordinator supersedes gen.
func (s *session) genContext(ctx context.Context, gen uint32) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		for {
			_, ch := s.a.board.get()
			if s.superseded(gen) {
				cancel()
				return
			}
			select {
			case <-ch:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ctx, cancel
}

// generation trains in the ring of as's generation until the job ends or the ring
// fails.
func (s *session) generation(ctx context.Context, as *api.Assignment) error {
	g := as.Job.Gen
	ctx, cancel := s.genContext(ctx, g.Gen)
	defer cancel()
	spec := s.env.Spec
	codec, err := allreduce.ParseCodec(spec.Cluster.Codec)
	if err != nil {
		return err
	}
	if err := markJoined(s.dir, g.Gen); err != nil {
		return err
	}
	start := time.Now()
	if !s.has && g.Restore != "" {
		if err := s.restore(ctx, g.Restore); err != nil {
			return err
		}
	}
	ring, err := allreduce.New(ctx, allreduce.Config{
		Peers: g.Peers(), Rank: as.Rank, Generation: g.Gen, Secret: s.a.cfg.RingSecret, TLS: s.a.cfg.RingTLS, Codec: codec,
		PowerSGD: allreduce.PowerSGDParams{Rank: spec.Cluster.PowerSGDRank, StartStep: int64(spec.Cluster.PowerSGDStartStep), Cols: widthOf(s.env.Replica)},
		Timeout:  time.Duration(spec.Cluster.RingTimeout), Listener: s.a.cfg.Listener, Dialer: s.a.cfg.Dialer,
	})
	if err != nil {
		return err
	}
	defer ring.Close()
	ringReady := time.Since(start)
	s.a.inGen.Store(g.Gen)
	ag, err := agree(ctx, ring, s.has, s.pos.Step)
	if err != nil {
		return err
	}
	bufs := s.env.Replica.State()
	if ag.needsTransfer() {
		if err := broadcast(ctx, ring, ag.donor, bufs, &s.pos); err != nil {
			return err
		}
		if err := s.env.Replica.Loaded(); err != nil {
			return err
		}
	}
	s.has = true
	s.speeds = make([]float64, g.Ranks())
	s.a.applied.Store(s.pos.Step)
	s.a.m.transfer.Observe(time.Since(start).Seconds())
	s.a.m.generations.Inc()
	s.a.m.gen.Set(float64(g.Gen))
	s.a.m.rank.Set(float64(as.Rank))
	defer s.a.m.gen.Set(0)
	defer s.a.m.rank.Set(-1)
	if err := verify(ctx, ring, checksum(bufs, s.pos)); err != nil {
		return err
	}
	from := "its own state"
	if ag.needsTransfer() {
		from = fmt.Sprintf("rank %d's state", ag.donor)
	}
	s.logf("generation %d: rank %d of %d at step %d of %d with %s (ready in %s: ring %s, agreement and state %s)", g.Gen, as.Rank, g.Ranks(),
		s.pos.Step, s.total, from, time.Since(start).Round(time.Millisecond), ringReady.Round(time.Millisecond), (time.Since(start) - ringReady).Round(time.Millisecond))
	for {
		if err := s.ckpts.refused(g.Gen); err != nil {
			return err
		}
		if err := s.owed(ctx, ring); err != nil {
			return err
		}
		if s.pos.Step >= s.total || s.pos.Stopped {
			return s.finish(ctx, ring)
		}
		if err := s.step(ctx, ring, g); err != nil {
			return err
		}
	}
}

// batch is the next global batch: from the epoch in pos, or the next one when pos is
// at its end. It returns the batch and the position that follows it.
func (s *session) batch(ranks int) (ids []int32, epoch, next int) {
	epoch, pos := s.pos.Epoch, s.pos.Pos
	if pos >= len(s.orderFor(epoch)) {
		epoch, pos = epoch+1, 0
	}
	b := stream.Batch(s.orderFor(epoch), pos, s.env.Spec.GlobalBatch(ranks))
	return b, epoch, pos + len(b)
}

// noteOverlap turns overlap off for the session once overlapProbeSteps overlapped steps
// sent nothing before backward returned. Either way the sums are the same bits.
func (s *session) noteOverlap(gs GradStats) {
	s.overlapTried++
	s.sentEarly += gs.SentEarly
	if s.overlapTried == overlapProbeSteps && s.sentEarly == 0 {
		s.noOverlap = true
		s.logf("overlap off: in %d steps backward finished no bucket of the gradient before it returned (the first prefix %v before)", overlapProbeSteps, gs.Lead.Round(time.Millisecond))
	}
}

func (s *session) orderFor(epoch int) []int32 {
	if s.orderEpoch != epoch {
		s.order, s.orderEpoch = s.env.Data.Order(epoch), epoch
	}
	return s.order
}

// step trains one global batch: this rank's piece, the gradient all-reduce (started
// before backward and fed prefix by prefix as backward finishes them, unless
// Config.NoOverlap), the commit round, the optimizer step. Nothing is applied unless the
// commit round completes.
func (s *session) step(ctx context.Context, ring *allreduce.Ring, g *api.Generation) error {
	n, rank := ring.Size(), ring.Rank()
	wall := time.Now()
	batch, epoch, next := s.batch(n)
	piece := s.piece(batch, rank)
	recs, err := s.env.Data.Read(ctx, piece)
	if err != nil {
		return err
	}
	if err := s.audit.contribute(g.Gen, s.pos.Step+1, epoch, rank, piece); err != nil {
		return err
	}
	r := s.env.Replica
	failpoint.Hit("node.backward")
	r.ZeroGrad()
	weight := float64(len(piece)) / float64(len(batch))
	scaler, fp16 := r.(LossScaler)
	fp16 = fp16 && scaler.LossScaling()
	lossScale := 1.0
	if fp16 { // the position changes only once the step is committed
		lossScale = cmp.Or(s.pos.LossScale, lossscale.Initial) // 0: the job's first step
	}
	failpoint.Hit("node.allreduce")
	overlap := !s.a.cfg.NoOverlap && !s.noOverlap
	ring.SetStep(s.pos.Step) // PowerSGD's warm-up counts training steps, across generations and resumes
	gs, err := BackwardAllReduce(ctx, ring, r, recs, weight*lossScale, api.StepSeed(s.env.Spec.Seed, s.pos.Step, rank), overlap, nil)
	if err != nil {
		if recoverable(err) {
			s.a.m.aborted.Inc()
		}
		return err
	}
	if gs.Overlapped {
		s.noteOverlap(gs)
	}
	loss, compute := gs.Loss, gs.Compute
	s.a.m.compute.Observe(compute.Seconds())
	t1 := time.Now()
	// The commit round: it completes only when every rank holds the summed gradient.
	// It also sums the loss (and its parts when distilling) and gathers the ranks' times.
	const times = 5
	c := make([]float32, times+n)
	c[0], c[1], c[2] = 1, float32(loss*weight), float32(len(piece))
	soft, hard, distilling := lossParts(r)
	c[3], c[4] = float32(soft*weight), float32(hard*weight)
	c[times+rank] = float32(compute.Seconds() * 1000)
	failpoint.Hit("node.commit")
	if err := ring.AllReduceExact(ctx, c, allreduce.OpSum); err != nil {
		s.a.m.aborted.Inc()
		return err
	}
	s.a.m.allreduce.Observe((gs.Comm + time.Since(t1)).Seconds())
	s.measure(batch, c[times:])
	taken := true
	if fp16 {
		taken = scaler.Unscale(lossScale)
		s.pos.LossScale, s.pos.LossScaleGood = lossscale.Next(lossScale, s.pos.LossScaleGood, !taken)
		s.a.m.lossScale.Set(s.pos.LossScale)
	}
	var norm float64
	if taken {
		if norm, err = r.Apply(s.pos.Step-s.pos.Skipped, s.env.Spec.LRScale(n)); err != nil {
			return err
		}
	} else {
		s.pos.Skipped++
		s.a.m.skipped.Inc()
		s.logf("step %d: gradient overflow in fp16, loss scale now %g", s.pos.Step+1, s.pos.LossScale)
	}
	s.pos.Step++
	s.pos.Epoch, s.pos.Pos = epoch, next
	s.pos.LastLoss = float64(c[1])
	s.a.applied.Store(s.pos.Step)
	if err := s.audit.applied(g.Gen, s.pos.Step); err != nil {
		return err
	}
	ringRate := math.Round(s.rate.Add(len(batch), time.Since(wall))*10) / 10
	s.a.m.steps.Inc()
	s.a.m.step.Set(float64(s.pos.Step))
	s.a.m.loss.Set(s.pos.LastLoss)
	s.a.m.rate.Set(ringRate)
	m := map[string]any{"step": s.pos.Step, "epoch": float64(epoch) + float64(next)/float64(len(s.order)),
		"loss": s.pos.LastLoss, "grad_norm": norm, "samples_per_s": ringRate}
	if distilling { // as bertnode train logs them
		m["distill_loss"], m["hard_loss"] = float64(c[3]), float64(c[4])
	}
	if taken { // bertnode train logs no step it skipped
		s.logMetrics(m)
	}
	s.rep.update(func(p *api.ProgressReport) {
		*p = api.ProgressReport{Node: s.a.cfg.ID, Gen: g.Gen, Rank: rank, Step: s.pos.Step, TotalSteps: s.total, Epoch: epoch,
			Loss: s.pos.LastLoss, SamplesPerSec: ringRate, NodeRate: float64(len(piece)) / max(compute.Seconds(), 1e-9),
			StepMillis: float64(compute.Milliseconds()), Eval: s.pos.LastEval, EvalStep: s.pos.EvaluatedAt,
			LossScale: s.pos.LossScale, Skipped: s.pos.Skipped}
	})
	return nil
}

// piece is rank's share of batch: even, or by speed with cluster.balance once every
// rank's speed is measured.
func (s *session) piece(batch []int32, rank int) []int32 {
	if s.env.Spec.Cluster.Balance {
		return stream.WeightedPiece(batch, s.speeds, rank)
	}
	return stream.Piece(batch, len(s.speeds), rank)
}

// measure folds a step's per-rank compute times (ms, from the commit round) into the
// ranks' speeds.
func (s *session) measure(batch []int32, ms []float32) {
	sizes := make([]int, len(s.speeds))
	for r := range sizes {
		sizes[r] = len(s.piece(batch, r)) // the cut this step used
	}
	for r := range s.speeds {
		if ms[r] <= 0 {
			continue
		}
		v := float64(sizes[r]) / float64(ms[r])
		if s.speeds[r] == 0 {
			s.speeds[r] = v
		} else {
			s.speeds[r] = 0.7*s.speeds[r] + 0.3*v
		}
	}
}

// owed does the evaluation and the checkpoint due at the current step, unless done.
func (s *session) owed(ctx context.Context, ring *allreduce.Ring) error {
	step, spec := s.pos.Step, s.env.Spec
	if step == 0 {
		return nil
	}
	per := spec.StepsPerEpoch(s.env.Data.Records())
	evalEvery := int64(spec.EvalEvery)
	if evalEvery <= 0 {
		evalEvery = per
	}
	if s.env.HasEval && s.pos.EvaluatedAt != step && (step%evalEvery == 0 || step == s.total) {
		if err := s.evaluate(ctx, ring); err != nil {
			return err
		}
	}
	saveEvery := int64(spec.SaveEvery)
	if saveEvery == 0 {
		saveEvery = per
	}
	if saveEvery > 0 && s.pos.SavedAt != step && step%saveEvery == 0 && step < s.total {
		return s.checkpoint(ring.Rank())
	}
	return nil
}

// evaluate scores the eval set with the ring's help and keeps the best model.
func (s *session) evaluate(ctx context.Context, ring *allreduce.Ring) error {
	m, err := s.env.Replica.Evaluate(ctx, ring.Rank(), ring.Size(), func(b []float32) error {
		return ring.AllReduceExact(ctx, b, allreduce.OpSum)
	})
	if err != nil {
		return err
	}
	metric := s.env.Spec.Metric
	v, ok := m[metric]
	if !ok {
		return fmt.Errorf("job spec: metric: %q is not one of the evaluation's metrics %v", metric, names(m))
	}
	p := &s.pos
	p.EvaluatedAt, p.LastEval = p.Step, m
	line := map[string]any{"step": p.Step}
	for k, x := range m {
		line["eval_"+k] = x
	}
	s.logMetrics(line)
	s.rep.update(func(r *api.ProgressReport) { r.Eval, r.EvalStep = m, p.Step })
	if p.BestStep == 0 || metrics.Improves(metric, v, p.BestValue) {
		p.BestStep, p.BestValue, p.Bad = p.Step, v, 0
		dir := filepath.Join(s.dir, "best")
		if err := s.saveModel(dir); err != nil {
			return err
		}
		if ring.Rank() == 0 {
			s.uploads.model("best", dir, p.Step, m)
		}
	} else if p.Bad++; s.env.Spec.Patience > 0 && p.Bad >= s.env.Spec.Patience {
		s.logf("early stop at step %d: %s has not improved for %d evaluations", p.Step, metric, p.Bad)
		p.Stopped = true
	}
	s.logf("step %d: %s %.4f (best %.4f at step %d)", p.Step, metric, v, p.BestValue, p.BestStep)
	return nil
}

// saveModel writes the replica's model to dir, replacing what was there.
func (s *session) saveModel(dir string) error {
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := s.env.Replica.Save(tmp); err != nil {
		return err
	}
	os.RemoveAll(dir)
	return os.Rename(tmp, dir)
}

// finish ends the job: every rank saves the final model and waits for its last
// checkpoint report's answer; then rank 0 adds the reports, uploads the results and
// tells the coordinator the job succeeded.
func (s *session) finish(ctx context.Context, ring *allreduce.Ring) error {
	dir := filepath.Join(s.dir, "final")
	if err := s.saveModel(dir); err != nil {
		return err
	}
	s.rep.flush(ctx)
	// The last checkpoint's report may still be on its way (the coordinator slow to
	// answer): the job ends only once every rank's is answered, so the replicas'
	// comparison at that step is not lost, and a refusal still fails the job. The wait is
	// bounded to stay within the ring's timeout at the barrier.
	if !s.ckpts.flush(ctx, time.Duration(s.env.Spec.Cluster.RingTimeout)/2) {
		s.logf("the checkpoint report of step %d was not answered before the end: the replicas' comparison at that step may be missing", s.pos.SavedAt)
	}
	if err := s.ckpts.refused(ring.Generation()); err != nil {
		return err
	}
	if err := ring.AllReduceExact(ctx, make([]float32, 1), allreduce.OpSum); err != nil {
		return err
	}
	if ring.Rank() != 0 {
		return errFinished
	}
	if err := s.writeReports(dir); err != nil {
		return err
	}
	s.uploads.model("final", dir, s.pos.Step, s.pos.LastEval)
	if err := s.uploads.wait(); err != nil {
		return err
	}
	rep := api.DoneReport{Node: s.a.cfg.ID, Gen: ring.Generation(), Step: s.pos.Step, Eval: s.pos.LastEval, EvalStep: s.pos.EvaluatedAt}
	if err := retry(ctx, s.a.cfg.Log, "done report", func() error { return s.a.cfg.Coordinator.Done(ctx, s.job.ID, rep) }); err != nil {
		return err
	}
	s.logf("done: %d steps; best %s %.4f at step %d", s.pos.Step, s.env.Spec.Metric, s.pos.BestValue, s.pos.BestStep)
	return errFinished
}

func names(m map[string]float64) []string {
	var n []string
	for k := range m {
		n = append(n, k)
	}
	return n
}
