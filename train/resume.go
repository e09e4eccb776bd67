package train

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unsafe"

	"github.com/bertnode/bertnode/internal/atomicfile"
	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/safetensors"
)

// progress is where a run stands. With the weights and the optimizer's state it is
// enough to continue exactly as if the run had never stopped: the same next batch, the
// same dropout masks (each step seeds them: api.StepSeed), the same updates.
type progress struct {
	Step  int `json:"step"`
	Epoch int `json:"epoch"`
	Pos   int `json:"pos"` // next index into the epoch's example order
	Total int `json:"total_steps"`

	BestStep    int                `json:"best_step"`
	BestMetrics map[string]float64 `json:"best_metrics"`
	Bad         int                `json:"evals_without_improvement"`

	OptStep int64 `json:"optimizer_step"`
	// OptState names the optimizer's state buffers in optimizer.safetensors, in the
	// optimizer's order (exp_avg, exp_avg_sq; momentum_buffer).
	OptState []string `json:"optimizer_state"`
	// Layout is the flat buffers' layout the optimizer's state is in (model.Layout);
	// empty in checkpoints written before it was recorded, in the legacy layout.
	Layout string  `json:"param_layout,omitempty"`
	Scale  float64 `json:"loss_scale"` // fp16 dynamic loss scaling (lossscale)
	Good   int     `json:"loss_scale_good_steps"`
	// Skipped steps overflowed in fp16: the learning-rate schedule and the optimizer's
	// step count follow the steps taken, as Trainer's and GradScaler's do.
	Skipped int  `json:"skipped_steps,omitempty"`
	Spec    Spec `json:"spec"`
}

const (
	stateFile     = "trainer_state.json"
	optimizerFile = "optimizer.safetensors"
	ckptPrefix    = "checkpoint-"
)

// resumeKey is the part of a spec that must not change across a resume: everything but
// where the run writes and reports and how it uses the machine.
func resumeKey(s Spec) []byte {
	s.Output, s.Resume, s.Threads, s.Device, s.ReportTo, s.GradientCheckpointing = "", "", 0, "", nil, false
	if s.Distill.Teacher == "" { // as a checkpoint from before distillation records it
		s.Distill = Distill{}
	}
	b, _ := json.Marshal(s)
	return b
}

// saveCheckpoint writes output/checkpoint-<step>: the model in the Hugging Face layout,
// the optimizer's state buffers and trainer_state.json. It is written under a temporary name
// and renamed, so a checkpoint directory is complete or absent. Older checkpoints beyond
// the spec's keep count are removed.
func (t *Trainer) saveCheckpoint(p progress) error {
	dir := filepath.Join(t.Spec.Output, fmt.Sprintf("%s%d", ckptPrefix, p.Step))
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	// A LoRA model's checkpoint is its adapter, which the base model reloads.
	if err := t.save(tmp, t.Model.LoRA().On()); err != nil {
		return err
	}
	st := t.opt.Export()
	p.OptStep, p.OptState, p.Layout = st.Step, st.Names, model.Layout
	bufs := make([]safetensors.Tensor, len(st.Bufs))
	for i, b := range st.Bufs {
		bufs[i] = safetensors.Tensor{Info: safetensors.Info{Name: st.Names[i], DType: safetensors.F32, Shape: []int64{int64(len(b))}}, Data: f32bytes(b)}
	}
	if err := safetensors.Save(filepath.Join(tmp, optimizerFile), bufs, nil); err != nil {
		return err
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(tmp, stateFile), b, 0o644); err != nil {
		return err
	}
	os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	return t.pruneCheckpoints()
}

func f32bytes(f []float32) []byte {
	if len(f) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(f))), 4*len(f))
}

// checkpoints lists output's checkpoint steps, oldest first.
func checkpoints(output string) ([]int, error) {
	ents, err := os.ReadDir(output)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var steps []int
	for _, e := range ents {
		if n, err := strconv.Atoi(strings.TrimPrefix(e.Name(), ckptPrefix)); err == nil && e.IsDir() && strings.HasPrefix(e.Name(), ckptPrefix) {
			steps = append(steps, n)
		}
	}
	sort.Ints(steps)
	return steps, nil
}

func (t *Trainer) pruneCheckpoints() error {
	steps, err := checkpoints(t.Spec.Output)
	if err != nil || t.Spec.KeepCheckpoints <= 0 {
		return err
	}
	for len(steps) > t.Spec.KeepCheckpoints {
		if err := os.RemoveAll(filepath.Join(t.Spec.Output, fmt.Sprintf("%s%d", ckptPrefix, steps[0]))); err != nil {
			return err
		}
		steps = steps[1:]
	}
	return nil
}

// resumeDir resolves Spec.Resume: "" none, "auto" the latest checkpoint in the output
// directory (none is fine), else a checkpoint directory.
func (t *Trainer) resumeDir() (string, error) {
	switch t.Spec.Resume {
	case "":
		return "", nil
	case "auto":
		steps, err := checkpoints(t.Spec.Output)
		if err != nil || len(steps) == 0 {
			return "", err
		}
		return filepath.Join(t.Spec.Output, fmt.Sprintf("%s%d", ckptPrefix, steps[len(steps)-1])), nil
	}
	return t.Spec.Resume, nil
}

// restore loads a checkpoint's weights, optimizer state and progress.
func (t *Trainer) restore(dir string) (progress, error) {
	var p progress
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return p, fmt.Errorf("resume: %w", err)
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("resume: %s: %w", filepath.Join(dir, stateFile), err)
	}
	if !bytes.Equal(resumeKey(p.Spec), resumeKey(t.Spec)) {
		return p, fmt.Errorf("resume: %s was made by a different job spec (only output, resume, report_to, threads and device may change)", dir)
	}
	if t.Model.LoRA().On() {
		_, err = t.Model.LoadAdapter(dir)
	} else {
		_, err = t.Model.LoadWeights(filepath.Join(dir, model.SafetensorsFile))
	}
	if err != nil {
		return p, fmt.Errorf("resume: %w", err)
	}
	f, err := safetensors.Open(filepath.Join(dir, optimizerFile))
	if err != nil {
		return p, fmt.Errorf("resume: %w", err)
	}
	defer f.Close()
	st := model.Snapshot{Step: p.OptStep, Names: p.OptState}
	for _, name := range p.OptState {
		tn, err := f.Tensor(name)
		if err != nil {
			return p, fmt.Errorf("resume: %w", err)
		}
		b := make([]float32, len(tn.Data)/4)
		copy(f32bytes(b), tn.Data)
		switch p.Layout {
		case model.Layout:
		case "":
			if err := t.Model.Params.FromLegacyLayout(b); err != nil {
				return p, fmt.Errorf("resume: %s: %s: %w", filepath.Join(dir, optimizerFile), name, err)
			}
		default:
			return p, fmt.Errorf("resume: %s: optimizer state in parameter layout %q, this build knows %q", filepath.Join(dir, stateFile), p.Layout, model.Layout)
		}
		st.Bufs = append(st.Bufs, b)
	}
	if err := t.opt.Import(st); err != nil {
		return p, fmt.Errorf("resume: %s: %w", dir, err)
	}
	return p, nil
}
