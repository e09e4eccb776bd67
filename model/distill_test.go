package model

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// softmaxT is softmax(z/T) in float64.
func softmaxT(z []float64, temp float64) []float64 {
	p := make([]float64, len(z))
	for k := range z {
		p[k] = math.Exp(logSoftmax(scaled(z, temp), k))
	}
	return p
}

func scaled(z []float64, temp float64) []float64 {
	out := make([]float64, len(z))
	for k, v := range z {
		out[k] = v / temp
	}
	return out
}

// klRows is T² × the mean over the rows kept of KL(softmax(teacher/T) ‖
// softmax(student/T)), rows of width n taken row-major from the two logit slices.
func klRows(student, teacher []float32, n int, keep func(row int) bool, temp float64) float64 {
	var sum float64
	count := 0
	for r := 0; r*n < len(student); r++ {
		if !keep(r) {
			continue
		}
		s, t := make([]float64, n), make([]float64, n)
		for k := range n {
			s[k], t[k] = float64(student[r*n+k]), float64(teacher[r*n+k])
		}
		pt := softmaxT(t, temp)
		for k := range n {
			sum += pt[k] * (logSoftmax(scaled(t, temp), k) - logSoftmax(scaled(s, temp), k))
		}
		count++
	}
	return temp * temp * sum / float64(max(count, 1))
}

// referenceSoftLoss is the distillation loss Distill documents, in float64 from the
// student's and the teacher's logits.
func referenceSoftLoss(m *Model, b *Batch, student []float32) float64 {
	temp, teacher, n := m.Opts.Distill.Temperature, b.Teacher, m.Opts.NumLabels
	all := func(int) bool { return true }
	switch m.Opts.Task {
	case Regression:
		var sum float64
		for i := range student {
			d := float64(student[i]) - float64(teacher[i])
			sum += d * d
		}
		return sum / float64(len(student))
	case MultiLabel: // BCE of sigmoid(student/T) against sigmoid(teacher/T), times T²
		var sum float64
		for i := range student {
			z, p := float64(student[i])/temp, 1/(1+math.Exp(-float64(teacher[i])/temp))
			sum -= p*-math.Log1p(math.Exp(-z)) + (1-p)*-math.Log1p(math.Exp(z))
		}
		return temp * temp * sum / float64(len(student))
	case Choice:
		return klRows(student, teacher, b.Choices, all, temp)
	case NER:
		return klRows(student, teacher, n, func(r int) bool { return b.Labels[r] != IgnoreIndex }, temp)
	case QA: // [B, L, 2]: start and end apart, each over the positions inside the sequence
		var half [2]float64
		for k := range half {
			s, t := make([]float32, b.B*b.L), make([]float32, b.B*b.L)
			for i := range s {
				s[i], t[i] = student[2*i+k], teacher[2*i+k]
			}
			half[k] = klRows(s, t, b.L, func(r int) bool {
				p := b.Labels[k*b.B+r]
				return p < int64(b.L) // negative positions clamp to 0, which counts
			}, temp)
		}
		return (half[0] + half[1]) / 2
	}
	return klRows(student, teacher, n, all, temp) // classify, mlm's masked rows
}

// distillCases are the tasks that distil, each with every loss option in use.
var distillCases = append(taskCases[:len(taskCases):len(taskCases)],
	struct {
		name string
		opts Options
	}{"mlm", Options{Task: MLM}},
	struct {
		name string
		opts Options
	}{"choice", Options{Task: Choice}},
)

// withTeacher gives b teacher logits for m: random, far from the student's.
func withTeacher(r *rand.Rand, m *Model, b *Batch) {
	b.Teacher = make([]float32, m.teacherLen(b))
	for i := range b.Teacher {
		b.Teacher[i] = float32(3 * r.NormFloat64())
	}
}

// The distillation loss is the one Distill documents (KL at temperature T times T²,
// over the rows the hard loss counts), the total blends it with the hard loss by
// alpha, and alpha 0 gives the hard loss exactly.
func TestDistillLossMatchesReference(t *testing.T) {
	for _, tc := range distillCases {
		t.Run(tc.name, func(t *testing.T) {
			lockThread(t)
			opts := tc.opts
			opts.Distill = Distill{Temperature: 2.5, Alpha: 0.7}
			m := newModel(t, smallConfig(0), opts, 5)
			r := rand.New(rand.NewPCG(5, 6))
			b := randomBatch(r, m, 10, []int{10, 4, 7, 2, 9})
			switch tc.opts.Task {
			case QA:
				b.Labels[2], b.Labels[b.B+4] = 10, -3 // past the end: ignored; negative: clamped to 0
			case NER:
				if !slices.Contains(b.Labels, IgnoreIndex) {
					t.Fatal("no ignored token: the test would not test ignoring them")
				}
			}
			withTeacher(r, m, b)
			out, err := m.Forward(b, true, false)
			if err != nil {
				t.Fatal(err)
			}
			logits := hostFloats(out.Logits)
			soft, hard, total := out.Soft.Float64Values()[0], out.Hard.Float64Values()[0], out.Loss.Float64Values()[0]
			if want := referenceSoftLoss(m, b, logits); math.Abs(soft-want) > 1e-5*math.Abs(want) {
				t.Errorf("distillation loss %.7g, reference %.7g", soft, want)
			}
			if want := referenceLoss(m, b, logits); math.Abs(hard-want) > 1e-5*math.Abs(want) {
				t.Errorf("hard loss %.7g, reference %.7g", hard, want)
			}
			if want := 0.7*soft + 0.3*hard; math.Abs(total-want) > 1e-6*math.Abs(want) {
				t.Errorf("loss %.7g, want 0.7 × %.7g + 0.3 × %.7g", total, soft, hard)
			}
			// alpha 0: the loss without a teacher, bit for bit
			m.Opts.Distill.Alpha = 0
			_, with, err := m.Infer(b)
			if err != nil {
				t.Fatal(err)
			}
			b.Teacher = nil
			_, without, err := m.Infer(b)
			if err != nil {
				t.Fatal(err)
			}
			if with != without {
				t.Errorf("alpha 0: loss %.9g, without a teacher %.9g", with, without)
			}
		})
	}
}

// Backward's gradient is the derivative of the blended loss: the teacher's logits are
// constants, the student's get both parts' gradients.
func TestDistillGradientMatchesFiniteDifferences(t *testing.T) {
	for _, tc := range distillCases {
		if tc.opts.Task != Classify && tc.opts.Task != NER && tc.opts.Task != QA {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			lockThread(t)
			opts := tc.opts
			opts.Distill = Distill{Temperature: 2, Alpha: 0.6}
			m := newModel(t, smallConfig(0), opts, 3)
			r := rand.New(rand.NewPCG(3, 4))
			b := randomBatch(r, m, 12, []int{12, 5, 9, 3})
			withTeacher(r, m, b)
			checkGradient(t, m, b, bertProbes, 15)
		})
	}
}

// smoothedCE is torch's cross_entropy with label_smoothing eps and ignore_index,
// unweighted, reduction mean: (1-eps) × NLL + eps × the mean over classes of -log p.
func smoothedCE(rows [][]float64, labels []int64, eps float64, ignore int64) float64 {
	var sum float64
	count := 0
	for i, z := range rows {
		if labels[i] == ignore {
			continue
		}
		var uniform float64
		for k := range z {
			uniform -= logSoftmax(z, k)
		}
		sum += (1-eps)*-logSoftmax(z, int(labels[i])) + eps*uniform/float64(len(z))
		count++
	}
	return sum / float64(count)
}

// Label smoothing: the training loss is the smoothed cross-entropy computed by hand;
// evaluation's (Infer) is the unsmoothed one, and smoothing 0 trains on it exactly.
func TestLabelSmoothingMatchesReference(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"classify", Options{Task: Classify, NumLabels: 3}},
		{"ner", Options{Task: NER, NumLabels: 5}},
		{"qa", Options{Task: QA}},
		{"mlm", Options{Task: MLM}},
		{"choice", Options{Task: Choice}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lockThread(t)
			const eps = 0.1
			opts := tc.opts
			opts.LabelSmoothing = eps
			m := newModel(t, smallConfig(0), opts, 7)
			r := rand.New(rand.NewPCG(7, 8))
			b := randomBatch(r, m, 10, []int{10, 4, 7, 2, 9})
			if tc.opts.Task == QA {
				b.Labels[2] = 10 // past the end: ignored
			}
			out, err := m.Forward(b, true, false) // dropout 0: the eval function
			if err != nil {
				t.Fatal(err)
			}
			logits := hostFloats(out.Logits)
			got := out.Loss.Float64Values()[0]
			rows := func(k int) [][]float64 { return floatRows(logits, k) }
			var want float64
			switch tc.opts.Task {
			case QA:
				start, end := make([][]float64, b.B), make([][]float64, b.B)
				for i := range b.B {
					start[i], end[i] = make([]float64, b.L), make([]float64, b.L)
					for j := range b.L {
						start[i][j], end[i][j] = float64(logits[(i*b.L+j)*2]), float64(logits[(i*b.L+j)*2+1])
					}
				}
				want = (smoothedCE(start, b.Labels[:b.B], eps, int64(b.L)) + smoothedCE(end, b.Labels[b.B:], eps, int64(b.L))) / 2
			case MLM:
				want = smoothedCE(rows(m.Opts.NumLabels), maskedLabels(b.Labels), eps, IgnoreIndex)
			case Choice:
				want = smoothedCE(rows(b.Choices), b.Labels, eps, IgnoreIndex)
			default:
				want = smoothedCE(rows(m.Opts.NumLabels), b.Labels, eps, IgnoreIndex)
			}
			if math.Abs(got-want) > 1e-5*want {
				t.Errorf("smoothed loss %.7g, reference %.7g", got, want)
			}
			unsmoothed := referenceLoss(m, b, logits)
			if math.Abs(got-unsmoothed) < 1e-3*unsmoothed {
				t.Fatalf("smoothed loss %.7g is the unsmoothed one", got)
			}
			if _, ev, err := m.Infer(b); err != nil || math.Abs(ev-unsmoothed) > 1e-5*unsmoothed {
				t.Errorf("evaluation loss %.7g, want the unsmoothed %.7g (%v)", ev, unsmoothed, err)
			}
			m.Opts.LabelSmoothing = 0
			out, err = m.Forward(b, true, false)
			if err != nil {
				t.Fatal(err)
			}
			if l := out.Loss.Float64Values()[0]; math.Abs(l-unsmoothed) > 1e-5*unsmoothed {
				t.Errorf("smoothing 0: loss %.7g, want %.7g", l, unsmoothed)
			}
		})
	}
}

// Options that cannot hold are refused, naming what is wrong.
func TestDistillAndSmoothingOptionsChecked(t *testing.T) {
	lockThread(t)
	for _, c := range []struct {
		opts Options
		says string
	}{
		{Options{Task: Classify, NumLabels: 2, LabelSmoothing: 1}, "label smoothing 1 is not in [0, 1)"},
		{Options{Task: Classify, NumLabels: 2, LabelSmoothing: math.NaN()}, "label smoothing NaN"},
		{Options{Task: MultiLabel, NumLabels: 2, LabelSmoothing: 0.1}, "not multilabel's"},
		{Options{Task: Regression, NumLabels: 1, LabelSmoothing: 0.1}, "not regression's"},
		{Options{Task: Classify, NumLabels: 2, Distill: Distill{Temperature: 0, Alpha: 0.5}}, "temperature 0"},
		{Options{Task: Classify, NumLabels: 2, Distill: Distill{Temperature: 2, Alpha: 1.5}}, "alpha 1.5"},
		{Options{Task: Embed, Distill: Distill{Temperature: 2, Alpha: 0.5}}, "embedding model"},
	} {
		if _, err := New(smallConfig(0), c.opts); err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%+v: got %v, want an error saying %q", c.opts, err, c.says)
		}
	}
	m := newModel(t, smallConfig(0), Options{Task: Classify, NumLabels: 3, Distill: Distill{Temperature: 2, Alpha: 0.5}}, 1)
	b := randomBatch(rand.New(rand.NewPCG(1, 2)), m, 8, []int{8, 3})
	b.Teacher = make([]float32, 5)
	if _, _, err := m.Infer(b); err == nil || !strings.Contains(err.Error(), "5 teacher logits, want 6") {
		t.Errorf("short teacher logits: %v", err)
	}
}
