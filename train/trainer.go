package train

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/bertnode/bertnode/hf"
	"github.com/bertnode/bertnode/internal/atomicfile"
	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/report"
	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/tokenize"
	"github.com/schollz/progressbar/v3"
)

// GradSync averages the flat gradient across replicas in place; nil trains alone. The
// distributed node plugs the ring all-reduce in here.
type GradSync interface {
	AllReduce(ctx context.Context, grad []float32) error
}

// Trainer runs one job. Every method must be called from one goroutine locked to its
// OS thread (see package model).
type Trainer struct {
	Spec   Spec
	Model  *model.Model
	Tok    *tokenize.Tokenizer
	Labels *shard.LabelSet
	Train  []Example
	Eval   []Example
	Sync   GradSync
	Out    io.Writer // progress and summaries

	task task
	opt  *model.AdamW
	coll *tokenize.Collator
	mlog *os.File
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
	tk, err := newTask(spec.Task)
	if err != nil {
		return nil, fmt.Errorf("job spec: task: %w", err)
	}
	recs, bad, err := readRecords(spec.Data, spec.Train)
	if err != nil {
		return nil, err
	}
	if bad.Count > 0 {
		fmt.Fprintf(out, "skipped %s\n", bad)
	}
	var trainRecs, evalRecs []shard.Record
	if spec.Eval != "" {
		trainRecs = recs
		if evalRecs, _, err = readRecords(spec.Data, spec.Eval); err != nil {
			return nil, err
		}
	} else {
		for i, r := range recs {
			if spec.EvalSplit > 0 && heldOut(i, spec.EvalSplit) {
				evalRecs = append(evalRecs, r)
			} else {
				trainRecs = append(trainRecs, r)
			}
		}
	}
	labels, err := shard.CollectLabels(shard.SliceSource(trainRecs))
	if err != nil {
		return nil, err
	}
	if labels.Len() < 2 && spec.Task == string(model.Classify) {
		return nil, fmt.Errorf("%s: only %d class in the training data", spec.Train, labels.Len())
	}
	lower := spec.Lowercase == nil || *spec.Lowercase
	tokPath := spec.Tokenizer
	if tokPath == "" {
		tokPath = spec.Model
	}
	tok, err := loadTokenizer(tokPath, lower)
	if err != nil {
		return nil, err
	}
	t := &Trainer{Spec: spec, Tok: tok, Labels: labels, Out: out, task: tk}
	if t.Train, err = tk.encode(tok, trainRecs, labels, spec.MaxLength); err != nil {
		return nil, err
	}
	if t.Eval, err = tk.encode(tok, evalRecs, labels, spec.MaxLength); err != nil {
		return nil, err
	}
	dev, err := model.ParseDevice(spec.Device)
	if err != nil {
		return nil, err
	}
	model.SetThreads(spec.Threads)
	model.ManualSeed(spec.Seed)
	headDrop := -1.0
	if spec.Dropout != nil {
		headDrop = *spec.Dropout
	}
	opts := model.Options{
		Task: model.Task(spec.Task), NumLabels: labels.Len(), HeadHidden: spec.HeadHidden, HeadDropout: headDrop,
		Freeze: spec.Freeze, Device: dev, ClassWeights: spec.ClassWeights, Autocast: spec.Autocast,
	}
	m, rep, err := model.Pretrained(spec.Model, hf.Options{}, opts)
	if err != nil {
		return nil, err
	}
	if rep != nil && len(rep.Initialized) > 0 {
		fmt.Fprintf(out, "newly initialised: %v\n", rep.Initialized)
	}
	if m.Config.VocabSize < tok.Vocab().Len() {
		return nil, fmt.Errorf("tokenizer has %d tokens, the model's vocabulary %d", tok.Vocab().Len(), m.Config.VocabSize)
	}
	t.Model = m
	t.opt = model.NewAdamW(m.Params, spec.WeightDecay)
	pad := tokenize.PadLongest
	if spec.Padding == "max_length" {
		pad = tokenize.PadMaxLength
	}
	if t.coll, err = tokenize.NewCollator(pad, spec.MaxLength, tok.PadID()); err != nil {
		return nil, err
	}
	return t, nil
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
	micro := (len(t.Train) + t.Spec.BatchSize - 1) / t.Spec.BatchSize
	return max(1, micro/t.Spec.GradAccum)
}

// batch collates examples into a model batch with their labels.
func (t *Trainer) batch(exs []*Example) (*model.Batch, error) {
	encs := make([]*tokenize.Encoding, len(exs))
	for i, e := range exs {
		encs[i] = &e.Enc
	}
	cb, err := t.coll.Collate(encs)
	if err != nil {
		return nil, err
	}
	b := &model.Batch{B: cb.Size, L: cb.Len, InputIDs: cb.InputIDs, TokenTypeIDs: cb.TokenTypeIDs, AttentionMask: cb.AttentionMask, Labels: cb.Labels}
	t.task.label(b, exs)
	return b, nil
}

// Run trains to the end (or until ctx is cancelled, between steps), evaluating and
// keeping the best checkpoint, and writes the final model and reports.
func (t *Trainer) Run(ctx context.Context) (*Result, error) {
	s := t.Spec
	if err := os.MkdirAll(s.Output, 0o755); err != nil {
		return nil, err
	}
	var err error
	if t.mlog, err = os.Create(filepath.Join(s.Output, "metrics.jsonl")); err != nil {
		return nil, err
	}
	defer t.mlog.Close()
	total := t.totalSteps()
	sched := Schedule{Kind: s.Schedule, Peak: s.LR, Total: total, Warmup: int(math.Ceil(s.WarmupRatio * float64(total)))}
	fmt.Fprintf(t.Out, "%s, %d train / %d eval examples, %d labels, %d steps\n", t.Model.Params, len(t.Train), len(t.Eval), t.Labels.Len(), total)
	bar := progressbar.NewOptions(total, progressbar.OptionSetWriter(t.Out), progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(24), progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("step"), progressbar.OptionClearOnFinish())
	res := &Result{}
	start := time.Now()
	evalEvery := s.EvalEvery
	if evalEvery <= 0 {
		evalEvery = t.stepsPerEpoch()
	}
	bad := 0
	step, epoch, pos := 0, 0, 0
	order := shard.Order(len(t.Train), uint64(s.Seed), epoch, 0)
	exs := make([]*Example, 0, s.BatchSize)
	samples, window := 0, time.Now()
	for step < total {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		t.Model.Params.ZeroGrad()
		var loss float64
		for micro := 0; micro < s.GradAccum; micro++ {
			exs = exs[:0]
			for len(exs) < s.BatchSize {
				if pos == len(order) {
					epoch++
					pos = 0
					order = shard.Order(len(t.Train), uint64(s.Seed), epoch, 0)
					if len(exs) > 0 { // an epoch's last, short batch
						break
					}
				}
				exs = append(exs, &t.Train[order[pos]])
				pos++
			}
			b, err := t.batch(exs)
			if err != nil {
				return res, err
			}
			l, err := t.Model.Backward(b, 1/float64(s.GradAccum))
			if err != nil {
				return res, err
			}
			loss += l / float64(s.GradAccum)
			samples += len(exs)
		}
		if t.Sync != nil {
			if err := t.Sync.AllReduce(ctx, t.Model.Params.HostGrad()); err != nil {
				return res, fmt.Errorf("step %d: gradient all-reduce: %w", step+1, err)
			}
			t.Model.Params.SyncGrad()
		}
		norm := t.Model.Params.ClipGradNorm(s.ClipNorm)
		lr := sched.LR(step)
		t.opt.Update(lr)
		step++
		bar.Describe(fmt.Sprintf("loss %.4f lr %.2e", loss, lr))
		bar.Add(1)
		if step%10 == 0 || step == total {
			rate := float64(samples) / time.Since(window).Seconds()
			t.logMetrics(map[string]any{"step": step, "epoch": float64(epoch) + float64(pos)/float64(len(order)), "loss": loss, "lr": lr, "grad_norm": norm, "samples_per_s": rate})
			samples, window = 0, time.Now()
		}
		if len(t.Eval) > 0 && (step%evalEvery == 0 || step == total) {
			ev, err := t.Evaluate()
			if err != nil {
				return res, err
			}
			ev.Step = step
			res.Final = ev
			t.logMetrics(ev.Values(step))
			if v, ok := ev.Metrics[s.Metric]; !ok {
				return res, fmt.Errorf("metric %q: not one of %v", s.Metric, ev.Names())
			} else if best, _ := res.Best.Metrics[s.Metric]; res.Best.Step == 0 || v > best {
				res.Best = ev
				bad = 0
				if err := t.Save(filepath.Join(s.Output, "best")); err != nil {
					return res, err
				}
			} else if bad++; s.Patience > 0 && bad >= s.Patience {
				fmt.Fprintf(t.Out, "\nearly stop at step %d: %s has not improved for %d evaluations\n", step, s.Metric, bad)
				break
			}
		}
	}
	bar.Finish()
	res.Steps, res.Elapsed = step, time.Since(start)
	if err := t.Save(filepath.Join(s.Output, "final")); err != nil {
		return res, err
	}
	return res, t.writeReports(res)
}

func (t *Trainer) logMetrics(v map[string]any) {
	b, _ := json.Marshal(v)
	t.mlog.Write(append(b, '\n'))
}

// Save writes a Hugging Face checkpoint directory: config, weights, tokenizer.
func (t *Trainer) Save(dir string) error {
	if err := t.Model.Save(dir, t.Labels.Names(), model.SaveOptions{}); err != nil {
		return err
	}
	return t.Tok.Save(dir)
}

// writeReports draws the curves and the final confusion matrix and prints a summary.
func (t *Trainer) writeReports(res *Result) error {
	out := t.Spec.Output
	b, err := os.ReadFile(filepath.Join(out, "metrics.jsonl"))
	if err != nil {
		return err
	}
	log, err := report.ReadMetricsLog(bytes.NewReader(b), "metrics.jsonl")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(out, "curves.png"), 0o644, func(w io.Writer) error {
		return report.CurvesPNG(w, log, 900, 600)
	}); err != nil {
		return err
	}
	if res.Final.Confusion != nil {
		c := res.Final.Confusion
		if err := atomicfile.Write(filepath.Join(out, "confusion.png"), 0o644, func(w io.Writer) error {
			return report.ConfusionPNG(w, c.Labels, c.Matrix(), 600)
		}); err != nil {
			return err
		}
		fmt.Fprintf(t.Out, "\n%s\n%s\n", res.Final.Report.Table(4), c.Table())
	}
	if res.Final.Mistakes != nil {
		if err := atomicfile.Write(filepath.Join(out, "mistakes.jsonl"), 0o644, func(w io.Writer) error {
			return report.WriteMistakes(w, res.Final.Mistakes)
		}); err != nil {
			return err
		}
	}
	fmt.Fprintf(t.Out, "%d steps in %s; best %s %.4f at step %d; model in %s\n", res.Steps, res.Elapsed.Round(time.Second),
		t.Spec.Metric, res.Best.Metrics[t.Spec.Metric], res.Best.Step, filepath.Join(out, "best"))
	return nil
}
