package model

import (
	"fmt"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Distill blends a teacher's soft targets into the training loss, as task-specific
// distillation (DistilBERT, TinyBERT) does: Alpha × the soft loss at Temperature +
// (1 − Alpha) × the loss against the labels. The soft loss is T² × KL(softmax(teacher/T)
// ‖ softmax(student/T)) for the tasks with a softmax (classify, choice, ner and mlm over
// the tokens their loss counts, qa's start and end each), T² × BCE against
// sigmoid(teacher/T) for multilabel, and the MSE against the teacher's scores for
// regression. The zero value distils nothing.
type Distill struct {
	Temperature float64
	Alpha       float64
}

func (d Distill) check(task Task) error {
	switch {
	case d == Distill{}:
		return nil
	case task == Embed:
		return fmt.Errorf("model: distillation: an embedding model has no logits to match (a student's embeddings may differ in width from its teacher's)")
	case !(d.Temperature > 0) || d.Temperature > 1e6:
		return fmt.Errorf("model: distillation temperature %v: must be a positive number", d.Temperature)
	case !(d.Alpha >= 0 && d.Alpha <= 1):
		return fmt.Errorf("model: distillation alpha %v is not in [0, 1]", d.Alpha)
	}
	return nil
}

// blend is Alpha × soft + (1 − Alpha) × hard, a new tensor.
func (d Distill) blend(soft, hard *ts.Tensor) *ts.Tensor {
	s := soft.MustMulScalar(ts.FloatScalar(d.Alpha), false)
	h := hard.MustMulScalar(ts.FloatScalar(1-d.Alpha), false)
	defer h.MustDrop()
	return s.MustAdd(h, true)
}

// teacherLen is the number of logits Batch.Teacher holds for b: Output.Logits' with labels.
func (m *Model) teacherLen(b *Batch) int {
	n := m.Opts.NumLabels
	switch m.Opts.Task {
	case NER, QA:
		return b.B * b.L * n
	case MLM:
		return len(maskedLabels(b.Labels)) * n
	}
	return b.B * n // the sequence tasks; choice's one score per sequence
}

func (m *Model) checkTeacher(b *Batch) error {
	switch {
	case b.Teacher == nil:
		return nil
	case m.Opts.Distill == Distill{}:
		return fmt.Errorf("model: a batch with a teacher's logits, and no distillation options")
	case b.Labels == nil && b.Targets == nil:
		return fmt.Errorf("model: a batch with a teacher's logits and no labels: distillation blends the two")
	case len(b.Teacher) != m.teacherLen(b):
		return fmt.Errorf("model: %d teacher logits, want %d (the model's logits for the batch)", len(b.Teacher), m.teacherLen(b))
	}
	return nil
}

// softLoss is the distillation loss of the student's logits against b.Teacher (see
// Distill), differentiable in the student's alone.
func (m *Model) softLoss(logits *ts.Tensor, b *Batch) *ts.Tensor {
	dev, temp := m.Opts.Device, m.Opts.Distill.Temperature
	t := ts.MustOfSlice(b.Teacher).MustView(logits.MustSize(), true).MustTo(dev, true)
	defer t.MustDrop()
	const mean = 1
	switch m.Opts.Task {
	case Regression:
		return logits.MustMseLoss(t, mean, false)
	case MultiLabel:
		s := logits.MustDivScalar(ts.FloatScalar(temp), false)
		defer s.MustDrop()
		p := t.MustDivScalar(ts.FloatScalar(temp), false).MustSigmoid(true)
		defer p.MustDrop()
		return s.MustBinaryCrossEntropyWithLogits(p, undefined, undefined, mean, true).MustMulScalar(ts.FloatScalar(temp*temp), true)
	case Choice:
		s := logits.MustView([]int64{-1, int64(b.Choices)}, false)
		defer s.MustDrop()
		tt := t.MustView([]int64{-1, int64(b.Choices)}, false)
		defer tt.MustDrop()
		return klDiv(s, tt, nil, temp, dev)
	case NER:
		n := int64(m.Opts.NumLabels)
		s := logits.MustView([]int64{-1, n}, false)
		defer s.MustDrop()
		tt := t.MustView([]int64{-1, n}, false)
		defer tt.MustDrop()
		return klDiv(s, tt, keptRows(b.Labels, IgnoreIndex), temp, dev)
	case QA:
		// Each of start and end over the examples their loss counts: the positions
		// in the sequence (loss clamps the others to L, which it ignores).
		var half [2]*ts.Tensor
		for k := range half {
			pos := make([]int64, b.B)
			for i, p := range b.Labels[k*b.B : (k+1)*b.B] {
				pos[i] = min(max(p, 0), int64(b.L))
			}
			s := logits.MustSelect(2, int64(k), false)
			tt := t.MustSelect(2, int64(k), false)
			half[k] = klDiv(s, tt, keptRows(pos, int64(b.L)), temp, dev)
			s.MustDrop()
			tt.MustDrop()
		}
		defer half[1].MustDrop()
		return half[0].MustAdd(half[1], true).MustMulScalar(ts.FloatScalar(0.5), true)
	}
	return klDiv(logits, t, nil, temp, dev) // classify, and mlm's masked rows
}

// klDiv is T² × the mean over rows (nil: all of them) of KL(softmax(teacher/T) ‖
// softmax(student/T)), student and teacher [R, C]. No rows give a zero.
func klDiv(student, teacher *ts.Tensor, rows []int64, temp float64, dev gotch.Device) *ts.Tensor {
	n := student.MustSize()[0]
	if rows != nil {
		student, teacher = selectRows(student, rows, dev), selectRows(teacher, rows, dev)
		defer student.MustDrop()
		defer teacher.MustDrop()
		n = int64(len(rows))
	}
	ls := student.MustDivScalar(ts.FloatScalar(temp), false).MustLogSoftmax(1, gotch.Float, true)
	defer ls.MustDrop()
	lt := teacher.MustDivScalar(ts.FloatScalar(temp), false).MustLogSoftmax(1, gotch.Float, true)
	defer lt.MustDrop()
	const sum = 2
	return ls.MustKlDiv(lt, sum, true, false).MustMulScalar(ts.FloatScalar(temp*temp/float64(max(n, 1))), true)
}

// keptRows are the indexes of the labels other than ignore.
func keptRows(labels []int64, ignore int64) []int64 {
	rows := []int64{}
	for i, l := range labels {
		if l != ignore {
			rows = append(rows, int64(i))
		}
	}
	return rows
}

// selectRows is a new tensor of x's rows at idx.
func selectRows(x *ts.Tensor, idx []int64, dev gotch.Device) *ts.Tensor {
	if len(idx) == 0 { // gotch makes no tensor of an empty slice
		return x.MustNarrow(0, 0, 0, false)
	}
	t := ts.MustOfSlice(idx).MustTo(dev, true)
	defer t.MustDrop()
	return x.MustIndexSelect(0, t, false)
}
