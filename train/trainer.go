package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/data"
	"github.com/bertnode/bertnode/dataset"
	"github.com/bertnode/bertnode/hf"
	"github.com/bertnode/bertnode/internal/atomicfile"
	"github.com/bertnode/bertnode/internal/lossscale"
	"github.com/bertnode/bertnode/internal/nativeenv"
	"github.com/bertnode/bertnode/internal/rate"
	"github.com/bertnode/bertnode/metrics"
	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/report"
	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/stream"
	"github.com/bertnode/bertnode/tokenize"
	"github.com/schollz/progressbar/v3"
)

// GradSync averages the flat gradient across replicas in place; nil trains alone. The
// distributed node plugs the ring all-reduce in here.
type GradSync interface {
	AllReduce(ctx context.Context, grad []float32) error
}

// Trainer runs one job. Every method must be called from one goroutine locked to its
// OS thread (see package model), except the prediction methods of WithInfer's copies.
type Trainer struct {
	Spec   Spec
	Model  *model.Model
	Tok    *tokenize.Tokenizer
	Labels *shard.LabelSet
	// Plan numbers the training file's records and orders them, exactly as a cluster
	// job over the same file does; Records holds them by ID (held-out ones included).
	Plan    *stream.Plan
	Records []shard.Record
	Eval    []Example
	Sync    GradSync
	Out     io.Writer // progress and summaries
	// OnStep, when set, is called after each optimizer step (and its evaluation and
	// checkpoint) with the number of steps done.
	OnStep func(step int)
	// Normalize: an embedding checkpoint's vectors are scaled to unit length (it ends
	// with sentence-transformers' Normalize module).
	Normalize bool

	task    task
	teacher *model.Model // distillation's (Spec.Distill); nil without
	run     Infer        // WithInfer's; nil: InferBatch
	opt     model.Optimizer
	coll    *tokenize.Collator
	mlog    *os.File
	tb      *report.TensorBoard // with report_to tensorboard
	// micro is the micro-batch size when auto_micro_batch made it smaller than
	// batch_size; 0 before.
	micro int
}

// Result is what a finished run reports.
type Result struct {
	Steps   int
	Final   EvalResult
	Best    EvalResult
	Elapsed time.Duration
}

// Prepare loads data, tokenizer and model for a spec.
func Prepare(spec Spec, out io.Writer) (*Trainer, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	tk, err := newTask(spec)
	if err != nil {
		return nil, fmt.Errorf("job spec: task: %w", err)
	}
	c := spec.Cluster.WithDefaults()
	trainFile, err := dataset.Resolve(spec.Train, spec.Data)
	if err != nil {
		return nil, err
	}
	opts := stream.Options{BlockRecords: c.BlockRecords, EvalSplit: spec.EvalSplit, Task: spec.Task, Name: trainFile.Name}
	if spec.Eval != "" {
		opts.EvalSplit = 0
	}
	plan, err := stream.Build(trainFile.Path, trainFile.Spec, opts)
	if err != nil {
		return nil, err
	}
	if plan.Bad.Count > 0 {
		fmt.Fprintf(out, "%s: skipped %s\n", spec.Train, plan.Bad)
	}
	recs, _, err := trainFile.ReadAll() // the plan reported the bad records
	if err != nil {
		return nil, err
	}
	if len(recs) != plan.Records {
		return nil, fmt.Errorf("%s: %d records, the plan counted %d: has the file changed?", spec.Train, len(recs), plan.Records)
	}
	var evalRecs []shard.Record
	if spec.Eval != "" {
		if evalRecs, err = readRecords(spec.Data, spec.Eval, out); err != nil {
			return nil, err
		}
	} else {
		for _, id := range plan.EvalIDs() {
			evalRecs = append(evalRecs, recs[id])
		}
	}
	labels, err := shard.NewLabelSet(plan.Labels)
	if err != nil {
		return nil, err
	}
	t, err := newTrainer(spec, tk, labels, out)
	if err != nil {
		return nil, err
	}
	t.Plan, t.Records = plan, recs
	if t.Eval, err = tk.encode(t.Tok, evalRecs, labels, spec.MaxLength); err != nil {
		return nil, err
	}
	return t, nil
}

// newTrainer loads the tokenizer and the model for a spec whose labels are known, and
// makes the optimizer.
func newTrainer(spec Spec, tk task, labels *shard.LabelSet, out io.Writer) (*Trainer, error) {
	dir, _, err := model.Resolve(spec.Model, hf.Options{})
	if err != nil {
		return nil, err
	}
	tok, err := openTokenizer(spec, dir)
	if err != nil {
		return nil, err
	}
	t := &Trainer{Spec: spec, Tok: tok, Labels: labels, Out: out, task: tk}
	dev, err := model.ParseDevice(spec.Device)
	if err != nil {
		return nil, err
	}
	if spec.Distill.Teacher != "" { // before the seed, so that the student starts as without
		if t.teacher, err = loadTeacher(spec, tok, labels); err != nil {
			return nil, err
		}
		fmt.Fprintf(out, "distilling from %s (%s)\n", spec.Distill.Teacher, t.teacher.Params)
	}
	model.SetThreads(spec.Threads)
	model.SetTF32(spec.TF32 && dev.IsCuda())
	model.ManualSeed(spec.Seed)
	headDrop := -1.0
	if spec.Dropout != nil {
		headDrop = *spec.Dropout
	}
	opts := model.Options{
		Task: model.Task(spec.Task), NumLabels: labels.Len(), HeadHidden: spec.HeadHidden, HeadDropout: headDrop,
		Freeze: spec.Freeze, Device: dev, ClassWeights: spec.ClassWeights, Autocast: spec.Autocast, Pooling: spec.Pooling,
		LoRA: spec.LoRA, LabelSmoothing: spec.LabelSmoothing, GradientCheckpointing: spec.GradientCheckpointing,
		Matryoshka: spec.Matryoshka(),
	}
	if t.teacher != nil {
		opts.Distill = model.Distill{Temperature: spec.Distill.Temperature, Alpha: spec.Distill.Alpha}
	}
	// An embedding model trained on cosine similarities is saved to give unit vectors.
	t.Normalize = spec.Task == string(model.Embed)
	if dir == "" {
		dir = spec.Model // a preset
	}
	m, rep, err := model.Pretrained(dir, hf.Options{}, opts)
	if err != nil {
		return nil, err
	}
	if rep != nil && len(rep.Initialized) > 0 {
		fmt.Fprintf(out, "newly initialised: %v\n", rep.Initialized)
	}
	t.Model = m
	if mt := m.Opts.Matryoshka; mt.On() && !slices.Contains(mt.Dims, m.Config.HiddenSize) {
		fmt.Fprintf(out, "warning: matryoshka_dims %v leave out the model's width %d: the whole vectors are not trained as such\n", mt.Dims, m.Config.HiddenSize)
	}
	if t.teacher != nil && t.teacher.Opts.NumLabels != m.Opts.NumLabels {
		return nil, fmt.Errorf("job spec: distill.teacher: %s has %d outputs, the student %d", spec.Distill.Teacher, t.teacher.Opts.NumLabels, m.Opts.NumLabels)
	}
	if t.opt, err = model.NewOptimizer(m.Params, model.OptimizerOptions{Name: spec.Optimizer, WeightDecay: spec.WeightDecay,
		Momentum: spec.Momentum, Nesterov: spec.Nesterov, Beta1: spec.AdamBeta1, Beta2: spec.AdamBeta2, Eps: spec.AdamEpsilon}); err != nil {
		return nil, err
	}
	if spec.LayerLRDecay > 0 {
		a, ok := t.opt.(*model.AdamW)
		if !ok {
			return nil, fmt.Errorf("layer_lr_decay: only with optimizer adamw, not %s", spec.Optimizer)
		}
		scales, err := m.LayerLRScales(spec.LayerLRDecay)
		if err != nil {
			return nil, err
		}
		if err := a.SetLRScales(scales); err != nil {
			return nil, err
		}
	}
	if err := t.attachTokenizer(); err != nil {
		return nil, err
	}
	return t, nil
}

// openTokenizer loads spec.Tokenizer; else the model directory's; else, for a preset
// model, BERT's uncased vocabulary, which is built into the binary.
func openTokenizer(spec Spec, dir string) (*tokenize.Tokenizer, error) {
	lower := spec.Lowercase == nil || *spec.Lowercase
	switch {
	case spec.Tokenizer != "":
		return loadTokenizer(spec.Tokenizer, lower)
	case dir != "":
		return loadTokenizer(dir, lower)
	}
	v, err := tokenize.NewVocab(data.UncasedVocab())
	if err != nil {
		return nil, err
	}
	return tokenize.New(v, tokenize.BertConfig(lower))
}

// attachTokenizer checks the tokenizer fits the model and makes the batch collator.
func (t *Trainer) attachTokenizer() error {
	if n, max := t.Tok.Vocab().Len(), t.Model.Config.VocabSize; n > max {
		return fmt.Errorf("tokenizer has %d tokens, the model's vocabulary %d", n, max)
	}
	if tr, ok := t.Spec.truncation(); ok {
		if err := t.Tok.SetTruncation(tr); err != nil {
			return fmt.Errorf("job spec: truncation: %w", err)
		}
	}
	pad, err := tokenize.ParsePadding(t.Spec.Padding)
	if err != nil {
		return fmt.Errorf("job spec: padding: %w", err)
	}
	t.coll, err = tokenize.NewCollator(pad, t.Spec.MaxLength, t.Tok.PadID())
	return err
}

// totalSteps is the number of optimizer steps the run takes.
func (t *Trainer) totalSteps() int {
	if t.Spec.MaxSteps > 0 {
		return t.Spec.MaxSteps
	}
	per := t.stepsPerEpoch()
	return int(math.Ceil(t.Spec.Epochs * float64(per)))
}

func (t *Trainer) stepsPerEpoch() int {
	b := t.Spec.BatchSize * t.Spec.GradAccum
	return max(1, (t.Plan.Train+b-1)/b)
}

// order is an epoch's order of training record IDs: the plan's, as a cluster job's.
func (t *Trainer) order(epoch int) []int32 {
	return t.Plan.Order(t.Spec.Seed, epoch, t.Spec.Cluster.WithDefaults().WindowBlocks)
}

// backward encodes recs and runs them in micro-batches of at most batch_size examples
// (fewer once auto_micro_batch took a step out of memory again in smaller ones),
// each weighted by its share of the examples, so the gradient is weight × that of
// their mean loss. It returns the mean loss (and its parts when distilling). The
// cluster's Replica trains the same way.
func (t *Trainer) backward(recs []shard.Record, weight float64, seed int64, ready func(n int)) (model.Losses, error) {
	exs, err := t.task.encode(t.Tok, recs, t.Labels, t.Spec.MaxLength)
	if err != nil {
		return model.Losses{}, err
	}
	for {
		loss, err := t.microBatches(exs, weight, seed, ready)
		if err == nil || !t.smaller(err, len(exs), ready) {
			return loss, err
		}
	}
}

// smaller answers a step of n examples that failed with err: with auto_micro_batch,
// out of memory halves the micro-batch (at most n), clears what the step added to the
// gradient, and frees what it left (the tensors of the op that failed, and of the ops
// before it in the same micro-batch, which only their finalizers free); true: take the
// step again. Not while backward hands the gradient out as it goes (ready: the
// all-reduce has sent some of it).
func (t *Trainer) smaller(err error, n int, ready func(n int)) bool {
	size := min(t.microSize(), n)
	if !t.Spec.AutoMicroBatch || ready != nil || size == 1 || !model.OutOfMemory(err) {
		return false
	}
	t.micro = (size + 1) / 2
	t.Model.Params.ZeroGrad()
	nativeenv.ReleaseMemory()
	fmt.Fprintf(t.Out, "\nout of memory in micro-batches of %d on %s: micro-batches of %d from now on (auto_micro_batch)\n",
		size, model.DeviceName(t.Model.Opts.Device), t.micro)
	return true
}

// microSize is the examples per micro-batch: batch_size, or less (smaller).
func (t *Trainer) microSize() int {
	if t.micro > 0 {
		return t.micro
	}
	return t.Spec.BatchSize
}

// microBatches adds the gradient of the mean loss over exs, times weight, a
// micro-batch at a time, with the step's seed. A libtorch error is its error.
func (t *Trainer) microBatches(exs []Example, weight float64, seed int64, ready func(n int)) (loss model.Losses, err error) {
	defer model.CatchOn(t.Model.Opts.Device, &err)
	model.ManualSeed(seed)
	size := t.microSize()
	ptrs := make([]*Example, 0, size)
	for lo := 0; lo < len(exs); lo += size {
		ptrs = ptrs[:0]
		for i := lo; i < min(lo+size, len(exs)); i++ {
			ptrs = append(ptrs, &exs[i])
		}
		b, err := t.batch(ptrs, seed)
		if err != nil {
			return loss, err
		}
		if t.teacher != nil { // the same tokens, in evaluation mode: deterministic
			if b.Teacher, _, err = t.teacher.Infer(b); err != nil {
				return loss, fmt.Errorf("distill.teacher: %w", err)
			}
		}
		share := float64(len(ptrs)) / float64(len(exs))
		var l model.Losses
		if ready != nil && lo+size >= len(exs) {
			l, err = t.watchedBackward(b, weight*share, ready)
		} else {
			l, err = t.Model.BackwardParts(b, weight*share)
		}
		if err != nil {
			return loss, err
		}
		loss.Total += l.Total * share
		loss.Soft += l.Soft * share
		loss.Hard += l.Hard * share
	}
	return loss, nil
}

// watchedBackward is the model's Backward, calling ready(n) as the gradient's prefixes
// become final (model.GradWatch).
func (t *Trainer) watchedBackward(b *model.Batch, scale float64, ready func(n int)) (model.Losses, error) {
	w, err := t.Model.Params.Watch()
	if err != nil {
		return model.Losses{}, err
	}
	var loss model.Losses
	err = w.Run(func() (err error) {
		loss, err = t.Model.BackwardParts(b, scale)
		return err
	}, func(n int64) { ready(int(n)) })
	return loss, err
}

// batch collates examples into a model batch with their labels; an mlm batch is masked
// with seed (the step's, or evalMaskSeed).
func (t *Trainer) batch(exs []*Example, seed int64) (*model.Batch, error) {
	encs := make([]*tokenize.Encoding, 0, max(3, len(exs[0].ChoiceEncs))*len(exs))
	for _, e := range exs {
		if len(e.ChoiceEncs) == 0 {
			encs = append(encs, &e.Enc)
		}
		for k := range e.ChoiceEncs { // choice: each example's choices in a row (model.Choice)
			encs = append(encs, &e.ChoiceEncs[k])
		}
	}
	// embed: the positives after the anchors, then any hard negatives (model.Embed)
	for _, e := range exs {
		if e.Positive != nil {
			encs = append(encs, e.Positive)
		}
	}
	for _, e := range exs {
		if e.Negative != nil {
			encs = append(encs, e.Negative)
		}
	}
	cb, err := t.coll.Collate(encs)
	if err != nil {
		return nil, err
	}
	b := &model.Batch{B: cb.Size, L: cb.Len, InputIDs: cb.InputIDs, TokenTypeIDs: cb.TokenTypeIDs, AttentionMask: cb.AttentionMask, Labels: cb.Labels,
		Choices: len(exs[0].ChoiceEncs)}
	t.task.label(b, exs)
	if mk, ok := t.task.(masker); ok {
		mk.mask(t.Tok, b, exs, seed)
	}
	return b, nil
}

// Run trains to the end, evaluating and keeping the best checkpoint, and writes the
// final model and reports. With Spec.Resume it continues from a checkpoint exactly. When
// ctx is cancelled it stops between steps, writes a resumable checkpoint and returns
// ctx's error.
func (t *Trainer) Run(ctx context.Context) (res *Result, err error) {
	var bar *progressbar.ProgressBar
	defer func() { // after Catch: the error line is not to start at the bar's end
		if err != nil && bar != nil {
			bar.Clear()
		}
	}()
	defer outOfMemory(t.Model.Opts.Device, &err)
	defer model.CatchOn(t.Model.Opts.Device, &err)
	s := t.Spec
	if err := os.MkdirAll(s.Output, 0o755); err != nil {
		return nil, err
	}
	p := progress{Total: t.totalSteps(), Scale: 1, Spec: s}
	if s.Autocast == "fp16" {
		p.Scale = lossscale.Initial
	}
	from, err := t.resumeDir()
	if err != nil {
		return nil, err
	}
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if from != "" {
		if p, err = t.restore(from); err != nil {
			return nil, err
		}
		fmt.Fprintf(t.Out, "resuming from %s at step %d\n", from, p.Step)
		flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	if t.mlog, err = os.OpenFile(filepath.Join(s.Output, "metrics.jsonl"), flags, 0o644); err != nil {
		return nil, err
	}
	defer t.mlog.Close()
	if slices.Contains(s.ReportTo, "tensorboard") {
		if t.tb, err = report.NewTensorBoard(s.Output); err != nil {
			return nil, err
		}
		defer t.tb.Close()
		if from != "" {
			if err := t.tb.Restart(int64(p.Step)); err != nil {
				return nil, err
			}
		}
	}
	total := p.Total
	sched := s.LRSchedule(total)
	fmt.Fprintf(t.Out, "%s, %d train records / %d eval examples, %d outputs, %d steps\n", t.Model.Params, t.Plan.Train, len(t.Eval), t.Model.Opts.NumLabels, total)
	bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(t.Out), progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(24), progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("step"), progressbar.OptionClearOnFinish())
	bar.Set(p.Step)
	res = &Result{Best: EvalResult{Step: p.BestStep, Metrics: p.BestMetrics}}
	start := time.Now()
	evalEvery := s.EvalEvery
	if evalEvery <= 0 {
		evalEvery = t.stepsPerEpoch()
	}
	order := t.order(p.Epoch)
	recs := make([]shard.Record, 0, s.BatchSize*s.GradAccum)
	var meter rate.Meter
	for p.Step < total {
		stepStart := time.Now()
		if err := ctx.Err(); err != nil {
			if p.Step > 0 {
				if serr := t.saveCheckpoint(p); serr != nil {
					return res, errors.Join(err, serr)
				}
			}
			return res, err
		}
		// One optimizer step is one global batch of batch_size × grad_accum records
		// of the epoch's order (short at its end), as in a cluster job.
		if p.Pos >= len(order) {
			p.Epoch, p.Pos = p.Epoch+1, 0
			order = t.order(p.Epoch)
		}
		recs = recs[:0]
		for _, id := range stream.Batch(order, p.Pos, s.BatchSize*s.GradAccum) {
			recs = append(recs, t.Records[id])
		}
		p.Pos += len(recs)
		samples := len(recs)
		t.Model.Params.ZeroGrad()
		parts, err := t.backward(recs, p.Scale, api.StepSeed(s.Seed, int64(p.Step), 0), nil)
		if err != nil {
			return res, err
		}
		loss := parts.Total
		if t.Sync != nil {
			if err := t.Sync.AllReduce(ctx, t.Model.Params.HostGrad()); err != nil {
				return res, fmt.Errorf("step %d: gradient all-reduce: %w", p.Step+1, err)
			}
			t.Model.Params.SyncGrad()
		}
		lr := sched.LR(p.Step - p.Skipped)
		sps := meter.Add(samples, time.Since(stepStart))
		if !t.unscale(&p) {
			p.Skipped++
			fmt.Fprintf(t.Out, "\nstep %d: gradient overflow in fp16, loss scale now %g\n", p.Step+1, p.Scale)
		} else {
			norm := model.ClipAndStep(t.opt, t.Model.Params, lr, s.ClipNorm)
			// every step, as a cluster job logs, so the two compare step by step
			v := map[string]any{"step": p.Step + 1, "epoch": float64(p.Epoch) + float64(p.Pos)/float64(len(order)), "loss": loss, "lr": lr, "grad_norm": norm, "samples_per_s": sps}
			if t.teacher != nil {
				v["distill_loss"], v["hard_loss"] = parts.Soft, parts.Hard
			}
			t.logMetrics(v)
		}
		p.Step++
		bar.Describe(fmt.Sprintf("loss %.4f lr %.2e %.0f samples/s", loss, lr, sps))
		bar.Add(1)
		stop := false
		if len(t.Eval) > 0 && (p.Step%evalEvery == 0 || p.Step == total) {
			if stop, err = t.evaluate(&p, res); err != nil {
				return res, err
			}
		}
		saveEvery := s.SaveEvery
		if saveEvery == 0 {
			saveEvery = t.stepsPerEpoch()
		}
		if saveEvery > 0 && p.Step%saveEvery == 0 && p.Step < total {
			if err := t.saveCheckpoint(p); err != nil {
				return res, err
			}
		}
		if t.OnStep != nil {
			t.OnStep(p.Step)
		}
		if stop {
			break
		}
	}
	bar.Finish()
	res.Steps, res.Elapsed = p.Step, time.Since(start)
	if err := t.Save(filepath.Join(s.Output, "final")); err != nil {
		return res, err
	}
	if t.tb != nil {
		if err := t.tb.Close(); err != nil {
			return res, err
		}
	}
	return res, t.writeReports(res)
}

// unscale undoes fp16 loss scaling and moves the scale on (lossscale.Next); false:
// the gradient overflowed, and the step is skipped. Without fp16 it does nothing.
func (t *Trainer) unscale(p *progress) bool {
	if t.Spec.Autocast != "fp16" {
		return true
	}
	ok := unscaleGrad(t.Model.Params, p.Scale)
	p.Scale, p.Good = lossscale.Next(p.Scale, p.Good, !ok)
	return ok
}

// unscaleGrad divides ps's gradient by the loss scale, unless a value overflowed (the
// norm is not finite): then it says so and leaves it.
func unscaleGrad(ps *model.Params, scale float64) bool {
	if n := ps.ClipGradNorm(0); math.IsNaN(n) || math.IsInf(n, 0) {
		return false
	}
	ps.ScaleGrad(1 / scale)
	return true
}

// evaluate scores the eval set, keeps the best checkpoint and says whether early
// stopping ends the run.
func (t *Trainer) evaluate(p *progress, res *Result) (bool, error) {
	s := t.Spec
	ev, err := t.Evaluate()
	if err != nil {
		return false, err
	}
	ev.Step = p.Step
	res.Final = ev
	t.logMetrics(ev.Values(p.Step))
	v, ok := ev.Metrics[s.Metric]
	if !ok {
		return false, fmt.Errorf("metric %q: not one of %v", s.Metric, ev.Names())
	}
	if best, seen := p.BestMetrics[s.Metric]; !seen || metrics.Improves(s.Metric, v, best) {
		res.Best = ev
		p.BestStep, p.BestMetrics, p.Bad = ev.Step, ev.Metrics, 0
		return false, t.Save(filepath.Join(s.Output, "best"))
	}
	if p.Bad++; s.Patience > 0 && p.Bad >= s.Patience {
		fmt.Fprintf(t.Out, "\nearly stop at step %d: %s has not improved for %d evaluations\n", p.Step, s.Metric, p.Bad)
		return true, nil
	}
	return false, nil
}

func (t *Trainer) logMetrics(v map[string]any) {
	b, _ := json.Marshal(v)
	t.mlog.Write(append(b, '\n'))
	if t.tb != nil {
		t.tb.Metrics(v) // an error sticks, and Run returns it from Close
	}
}

// Save writes a Hugging Face checkpoint directory: config, weights, tokenizer. A LoRA
// model's is a PEFT adapter directory, unless lora.merge asks for the merged weights.
func (t *Trainer) Save(dir string) error {
	return t.save(dir, t.Model.LoRA().On() && !t.Spec.LoRA.Merge)
}

// save writes the model as a PEFT adapter, or as a checkpoint (merged, for a LoRA
// model), and the tokenizer.
func (t *Trainer) save(dir string, adapter bool) error {
	var err error
	if adapter {
		err = t.Model.SaveAdapter(dir, t.Labels.Names(), t.Spec.Model)
	} else {
		err = t.Model.Save(dir, t.Labels.Names(), model.SaveOptions{MaxLength: t.Spec.MaxLength, Normalize: t.Normalize})
	}
	if err != nil {
		return err
	}
	return t.Tok.Save(dir)
}

// ExportONNX writes what optimum-cli export onnx writes for the checkpoint: model.onnx
// (model.SaveONNX: LoRA merged, an embedding model's vectors normalized as its
// checkpoint says), config.json and the tokenizer's files.
func (t *Trainer) ExportONNX(dir string, externalData bool) error {
	err := t.Model.SaveONNX(dir, t.Labels.Names(), model.SaveOptions{MaxLength: t.Spec.MaxLength, Normalize: t.Normalize, ONNXExternalData: externalData})
	if err != nil {
		return err
	}
	return t.Tok.Save(dir)
}

// writeReports draws the curves and the final confusion matrix and prints a summary.
func (t *Trainer) writeReports(res *Result) error {
	out := t.Spec.Output
	if err := report.CurvesFile(filepath.Join(out, "metrics.jsonl"), filepath.Join(out, "curves.png")); err != nil {
		return err
	}
	if err := writeEvalReports(out, res.Final); err != nil {
		return err
	}
	if res.Final.Confusion != nil {
		fmt.Fprintf(t.Out, "\n%s\n", res.Final.Confusion.Table())
	}
	if len(res.Final.Report.PerClass) > 0 {
		fmt.Fprintf(t.Out, "\n%s\n", res.Final.Report.Table(4))
	}
	fmt.Fprintf(t.Out, "%d steps in %s; best %s %.4f at step %d; model in %s\n", res.Steps, res.Elapsed.Round(time.Second),
		t.Spec.Metric, res.Best.Metrics[t.Spec.Metric], res.Best.Step, filepath.Join(out, "best"))
	return nil
}

// writeEvalReports writes what an evaluation found into dir: the confusion matrix
// (classify), the predictions (qa) and the mistakes, most confident first.
func writeEvalReports(dir string, ev EvalResult) error {
	if c := ev.Confusion; c != nil {
		if err := atomicfile.Write(filepath.Join(dir, "confusion.png"), 0o644, func(w io.Writer) error {
			return report.ConfusionPNG(w, c.Labels, c.Matrix(), 600)
		}); err != nil {
			return err
		}
	}
	if ev.Predictions != nil {
		b, err := json.MarshalIndent(ev.Predictions, "", " ")
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, "predictions.json"), b, 0o644); err != nil {
			return err
		}
	}
	if ev.Mistakes != nil {
		return atomicfile.Write(filepath.Join(dir, "mistakes.jsonl"), 0o644, func(w io.Writer) error {
			return report.WriteMistakes(w, ev.Mistakes)
		})
	}
	return nil
}
