// Package sweep expands a hyperparameter sweep into trials: a grid of values, random
// draws, or both, each trial a set of job-spec fields to override. It does no I/O but
// parsing; `bertnode sweep` submits the trials as cluster jobs and ranks their results.
package sweep

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Spec is a sweep file.
type Spec struct {
	// Job is the spec every trial starts from, relative to the sweep file.
	Job string `yaml:"job"`
	// Metric ranks the trials by their best evaluation; default the job's metric.
	Metric string `yaml:"metric"`
	// Parallel is how many trials run at once; 0: all are submitted together and the
	// coordinator queues those its idle nodes cannot take.
	Parallel int `yaml:"parallel"`
	// Grid is every combination of these values, fields in the order written.
	Grid Fields[[]any] `yaml:"grid"`
	// Random draws Trials settings (per grid point, with a grid too).
	Random *Random `yaml:"random"`
	// Prune stops trials that fall behind; nil: every trial runs to its end.
	Prune *Prune `yaml:"prune"`
}

// Prune is Optuna's MedianPruner: a trial stops at an evaluation where its best value
// so far is worse than the median of the values the succeeded trials had at that step.
type Prune struct {
	// StartupTrials is how many succeeded trials must have evaluated at the step before
	// any trial stops there (Optuna's n_startup_trials, default 5).
	StartupTrials int `yaml:"startup_trials"`
	// WarmupSteps: no trial stops before this step (n_warmup_steps, default 0).
	WarmupSteps int64 `yaml:"warmup_steps"`
}

// Point is one evaluation of a trial: the metric's value after Step optimizer steps.
type Point struct {
	Step  int64
	Value float64
}

// Verdict is Judge's answer: the trial's best value so far, the median of the
// succeeded trials at its latest step and how many gave it, and whether it stops.
type Verdict struct {
	Best, Median float64
	Trials       int
	Stop         bool
}

// Judge says whether the trial whose evaluations so far are curve (in step order)
// stops at its latest one, given the curves of the succeeded trials; better says
// whether a beats b for the metric. Steps must match exactly: trials that evaluate at
// other steps (another eval_steps or batch size) are not compared.
func (p *Prune) Judge(curve []Point, succeeded [][]Point, better func(a, b float64) bool) Verdict {
	if len(curve) == 0 {
		return Verdict{}
	}
	last := curve[len(curve)-1]
	v := Verdict{Best: last.Value}
	for _, q := range curve {
		if better(q.Value, v.Best) {
			v.Best = q.Value
		}
	}
	var at []float64
	for _, c := range succeeded {
		if i := slices.IndexFunc(c, func(q Point) bool { return q.Step == last.Step }); i >= 0 {
			at = append(at, c[i].Value)
		}
	}
	v.Trials = len(at)
	if last.Step < p.WarmupSteps || len(at) == 0 || len(at) < p.StartupTrials {
		return v
	}
	slices.Sort(at)
	v.Median = at[len(at)/2]
	if len(at)%2 == 0 { // numpy's percentile 50, which Optuna takes: the middle two's mean
		v.Median = (at[len(at)/2-1] + at[len(at)/2]) / 2
	}
	v.Stop = better(v.Median, v.Best)
	return v
}

// Random is a random search: each trial draws every field from its distribution.
type Random struct {
	Trials int           `yaml:"trials"`
	Seed   uint64        `yaml:"seed"`
	Params Fields[Distr] `yaml:"params"`
}

// Distr is one field's distribution: exactly one of the three.
type Distr struct {
	Uniform    []float64 `yaml:"uniform"`     // [low, high]
	LogUniform []float64 `yaml:"log_uniform"` // [low, high], both positive: learning rates
	Choice     []any     `yaml:"choice"`      // one of these, equally likely
}

// Field is a job-spec field (a dotted path: lr, cluster.nodes) and what it takes.
type Field[T any] struct {
	Key   string
	Value T
}

// Fields keeps a YAML mapping's order, so that trials vary in the order written.
type Fields[T any] []Field[T]

func (f *Fields[T]) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: want a mapping of field: values", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		var v T
		if err := n.Content[i+1].Decode(&v); err != nil {
			return fmt.Errorf("%s: %w", n.Content[i].Value, err)
		}
		*f = append(*f, Field[T]{n.Content[i].Value, v})
	}
	return nil
}

// Setting is one field's value in a trial.
type Setting = Field[any]

// Trial is the settings of one job.
type Trial []Setting

// Parse reads a sweep file's text; unknown fields are errors.
func Parse(text string) (Spec, error) {
	var s Spec
	dec := yaml.NewDecoder(strings.NewReader(text))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		return s, err
	}
	return s, s.validate()
}

func (s *Spec) validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...))
	}
	if s.Job == "" {
		return bad("job", "missing: the job spec every trial starts from")
	}
	if s.Parallel < 0 {
		return bad("parallel", "%d: must be 0 (all at once) or more", s.Parallel)
	}
	if p := s.Prune; p != nil {
		if p.StartupTrials == 0 {
			p.StartupTrials = 5
		}
		if p.StartupTrials < 0 {
			return bad("prune.startup_trials", "%d: must be positive", p.StartupTrials)
		}
		if p.WarmupSteps < 0 {
			return bad("prune.warmup_steps", "%d: must be 0 or more", p.WarmupSteps)
		}
	}
	if len(s.Grid) == 0 && s.Random == nil {
		return errors.New("grid or random: a sweep needs values to try")
	}
	seen := map[string]bool{}
	key := func(where, k string) error {
		if k == "" || strings.HasPrefix(k, ".") || strings.HasSuffix(k, ".") || strings.Contains(k, "..") {
			return bad(where, "%q is not a field path (lr, cluster.nodes)", k)
		}
		if seen[k] {
			return bad(where+"."+k, "set twice")
		}
		seen[k] = true
		return nil
	}
	for _, f := range s.Grid {
		if err := key("grid", f.Key); err != nil {
			return err
		}
		if len(f.Value) == 0 {
			return bad("grid."+f.Key, "no values")
		}
	}
	if r := s.Random; r != nil {
		if r.Trials < 1 {
			return bad("random.trials", "%d: must be at least 1", r.Trials)
		}
		if len(r.Params) == 0 {
			return bad("random.params", "no fields to draw")
		}
		for _, f := range r.Params {
			where := "random.params." + f.Key
			if err := key("random.params", f.Key); err != nil {
				return err
			}
			d, kinds := f.Value, 0
			for _, set := range []bool{d.Uniform != nil, d.LogUniform != nil, d.Choice != nil} {
				if set {
					kinds++
				}
			}
			if kinds != 1 {
				return bad(where, "want exactly one of uniform, log_uniform, choice")
			}
			for name, r := range map[string][]float64{"uniform": d.Uniform, "log_uniform": d.LogUniform} {
				if r == nil {
					continue
				}
				if len(r) != 2 || !(r[0] < r[1]) {
					return bad(where+"."+name, "want [low, high] with low < high, got %v", r)
				}
				if name == "log_uniform" && r[0] <= 0 {
					return bad(where+"."+name, "low %v: must be positive", r[0])
				}
			}
			if d.Choice != nil && len(d.Choice) == 0 {
				return bad(where+".choice", "no values")
			}
		}
	}
	return nil
}

// Trials are the grid's combinations (the last field varying fastest, as
// itertools.product), each with Random.Trials draws when the sweep is random too; the
// draws follow Random.Seed, so a sweep file always gives the same trials.
func (s *Spec) Trials() []Trial {
	trials := []Trial{nil}
	for _, f := range s.Grid {
		var next []Trial
		for _, t := range trials {
			for _, v := range f.Value {
				next = append(next, append(slices.Clip(t), Setting{f.Key, v}))
			}
		}
		trials = next
	}
	r := s.Random
	if r == nil {
		return trials
	}
	rng := rand.New(rand.NewPCG(r.Seed, 0x5eed))
	var out []Trial
	for _, t := range trials {
		for range r.Trials {
			d := slices.Clip(t)
			for _, f := range r.Params {
				d = append(d, Setting{f.Key, f.Value.draw(rng)})
			}
			out = append(out, d)
		}
	}
	return out
}

// draw rounds to 4 significant digits: a trial's learning rate reads 0.0003162, not
// 0.00031622776601683794, and no result depends on the digits dropped.
func (d Distr) draw(r *rand.Rand) any {
	switch {
	case d.Choice != nil:
		return d.Choice[r.IntN(len(d.Choice))]
	case d.LogUniform != nil:
		lo, hi := math.Log(d.LogUniform[0]), math.Log(d.LogUniform[1])
		return round4(math.Exp(lo + r.Float64()*(hi-lo)))
	}
	return round4(d.Uniform[0] + r.Float64()*(d.Uniform[1]-d.Uniform[0]))
}

func round4(x float64) float64 {
	if x == 0 {
		return 0
	}
	p := math.Pow(10, 3-math.Floor(math.Log10(math.Abs(x))))
	return math.Round(x*p) / p
}

// Apply is the job spec text with the trial's fields set, made where missing (a
// cluster: section included); the rest of the text, comments too, stays.
func Apply(text string, t Trial) (string, error) {
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(text), &root); err != nil {
		return "", err
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return "", errors.New("the job spec is not a YAML mapping")
	}
	for _, s := range t {
		var v yaml.Node
		if err := v.Encode(s.Value); err != nil {
			return "", fmt.Errorf("%s: %w", s.Key, err)
		}
		if err := set(root.Content[0], strings.Split(s.Key, "."), &v); err != nil {
			return "", fmt.Errorf("%s: %w", s.Key, err)
		}
	}
	b, err := yaml.Marshal(&root)
	return string(b), err
}

func set(m *yaml.Node, path []string, v *yaml.Node) error {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value != path[0] {
			continue
		}
		if len(path) == 1 {
			m.Content[i+1] = v
			return nil
		}
		next := m.Content[i+1]
		if next.Kind != yaml.MappingNode {
			return fmt.Errorf("%s (line %d) is not a mapping", path[0], next.Line)
		}
		return set(next, path[1:], v)
	}
	k := &yaml.Node{Kind: yaml.ScalarNode, Value: path[0]}
	if len(path) == 1 {
		m.Content = append(m.Content, k, v)
		return nil
	}
	sub := &yaml.Node{Kind: yaml.MappingNode}
	m.Content = append(m.Content, k, sub)
	return set(sub, path[1:], v)
}

// String is the trial as field=value pairs.
func (t Trial) String() string {
	parts := make([]string, len(t))
	for i, s := range t {
		parts[i] = fmt.Sprintf("%s=%v", s.Key, s.Value)
	}
	return strings.Join(parts, " ")
}

// Differs names the first setting of t that the job spec text does not hold, as
// "field: value in the spec", or "" when the spec holds them all: how a sweep tells
// its own trial's job from another's of the same name.
func (t Trial) Differs(text string) (string, error) {
	var spec map[string]any
	if err := yaml.Unmarshal([]byte(text), &spec); err != nil {
		return "", err
	}
	for _, s := range t {
		var cur any = spec
		for _, k := range strings.Split(s.Key, ".") {
			m, _ := cur.(map[string]any)
			cur = m[k]
		}
		b, err := yaml.Marshal(s.Value) // the value as the spec's YAML would read
		if err != nil {
			return "", err
		}
		var want any
		if err := yaml.Unmarshal(b, &want); err != nil {
			return "", err
		}
		if !reflect.DeepEqual(cur, want) {
			return fmt.Sprintf("%s: %v", s.Key, cur), nil
		}
	}
	return "", nil
}
