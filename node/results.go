package node

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/internal/atomicfile"
	"github.com/bertnode/bertnode/internal/tarball"
	"github.com/bertnode/bertnode/report"
	"github.com/bertnode/bertnode/safetensors"
)

// uploader sends models to the coordinator's blob store in the background, one at a
// time, so training goes on while a checkpoint travels. A model is staged as hard
// links first: the directory may be replaced (a newer best) while it uploads.
type uploader struct {
	coord Coordinator
	job   string
	node  string
	log   *log.Logger
	mu    sync.Mutex
	queue chan func() error
	errs  []error
	wg    sync.WaitGroup
}

func newUploader(c Coordinator, job, node string, l *log.Logger) *uploader {
	u := &uploader{coord: c, job: job, node: node, log: l, queue: make(chan func() error, 16)}
	go func() {
		for fn := range u.queue {
			if err := fn(); err != nil {
				u.log.Printf("job %s: upload: %v", job, err)
				u.mu.Lock()
				u.errs = append(u.errs, err)
				u.mu.Unlock()
			}
			u.wg.Done()
		}
	}()
	return u
}

// model uploads dir as the job's result of kind.
func (u *uploader) model(kind, dir string, step int64, metrics map[string]float64) {
	stage, err := os.MkdirTemp(filepath.Dir(dir), ".upload-"+kind+"-")
	if err == nil {
		err = linkFiles(dir, stage)
	}
	if err != nil {
		u.log.Printf("job %s: staging %s for upload: %v", u.job, dir, err)
		return
	}
	u.wg.Add(1)
	u.queue <- func() error {
		defer os.RemoveAll(stage)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		defer cancel()
		tmp := stage + ".tar"
		f, err := os.Create(tmp)
		if err != nil {
			return err
		}
		defer os.Remove(tmp)
		defer f.Close()
		if err := tarball.Pack(stage, f); err != nil {
			return err
		}
		size, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		sha, err := u.coord.PutBlob(ctx, f, size)
		if err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
		rep := api.ResultReport{Node: u.node, Kind: kind, Blob: sha, Size: size, Step: step, Metrics: metrics}
		return retry(ctx, u.log, "result report", func() error { return u.coord.Result(ctx, u.job, rep) })
	}
}

// wait waits for the uploads queued so far and returns their errors.
func (u *uploader) wait() error {
	u.wg.Wait()
	u.mu.Lock()
	defer u.mu.Unlock()
	err := joinErrs(u.errs)
	u.errs = nil
	return err
}

// stop waits for the uploads queued and ends the uploader's goroutine: left running, a
// node kept one per job it ran.
func (u *uploader) stop() {
	u.wait()
	close(u.queue)
}

func joinErrs(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return fmt.Errorf("%s", strings.Join(msgs, "; "))
}

func linkFiles(src, dst string) error {
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.Type().IsRegular() {
			if err := os.Link(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// StateFile is a checkpoint directory's replica state (weights, optimizer state).
const StateFile = "state.safetensors"

const (
	positionFile = "position.json"
	ckptPrefix   = "checkpoint-"
)

// checkpoint writes the resumable state at the current step (every rank, the same
// bytes), reports its checksum for the coordinator to compare across ranks (in the
// background), and on rank 0 uploads it so a whole-cluster restart can resume from it.
func (s *session) checkpoint(rank int) error {
	bufs := s.env.Replica.State()
	s.pos.SavedAt = s.pos.Step
	sum := checksum(bufs, s.pos)
	dir := filepath.Join(s.dir, fmt.Sprintf("%s%d", ckptPrefix, s.pos.Step))
	if err := writeState(dir, bufs, s.pos, layoutOf(s.env.Replica)); err != nil {
		return err
	}
	s.ckpts.send(api.CheckpointReport{Node: s.a.cfg.ID, Gen: s.a.inGen.Load(), Step: s.pos.Step, Checksum: sum})
	if rank == 0 {
		s.uploads.model("checkpoint", dir, s.pos.Step, nil)
	}
	return pruneCheckpoints(s.dir, s.env.Spec.Keep)
}

// writeState writes a checkpoint directory: the replica's buffers (in the given layout)
// and the position, complete or absent (written under a temporary name, then renamed;
// removed when the write fails, say on a full disk).
func writeState(dir string, bufs [][]float32, p Position, layout string) (err error) {
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	ts := make([]safetensors.Tensor, len(bufs))
	for i, b := range bufs {
		ts[i] = safetensors.Tensor{Info: safetensors.Info{Name: fmt.Sprintf("state.%d", i), DType: safetensors.F32, Shape: []int64{int64(len(b))}}, Data: f32bytes(b)}
	}
	var meta map[string]string
	if layout != "" {
		meta = map[string]string{"layout": layout}
	}
	if err := safetensors.Save(filepath.Join(tmp, StateFile), ts, meta); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(tmp, positionFile), p.marshal(), 0o644); err != nil {
		return err
	}
	os.RemoveAll(dir)
	return os.Rename(tmp, dir)
}

// ReadState loads a checkpoint written by writeState into bufs, which must have the
// lengths the checkpoint's buffers have and be in the same layout.
func ReadState(dir string, bufs [][]float32, layout string) (Position, error) {
	var p Position
	if err := readJSON(filepath.Join(dir, positionFile), &p); err != nil {
		return p, err
	}
	path := filepath.Join(dir, StateFile)
	f, err := safetensors.Open(path)
	if err != nil {
		return p, err
	}
	defer f.Close()
	if got := f.Metadata["layout"]; got != layout {
		return p, fmt.Errorf("%s: buffers in parameter layout %q, this replica's is %q: written by another build of bertnode, which must resume it", path, got, layout)
	}
	for i, buf := range bufs {
		t, err := f.Tensor(fmt.Sprintf("state.%d", i))
		if err != nil {
			return p, fmt.Errorf("%s: %w", path, err)
		}
		if len(t.Data) != 4*len(buf) {
			return p, fmt.Errorf("%s: state.%d has %d values, the replica %d: another model?", path, i, len(t.Data)/4, len(buf))
		}
		copy(f32bytes(buf), t.Data)
	}
	return p, nil
}

func pruneCheckpoints(dir string, keep int) error {
	if keep <= 0 {
		return nil
	}
	dirs, err := CheckpointDirs(dir)
	if err != nil {
		return err
	}
	for _, d := range dirs[min(keep, len(dirs)):] {
		if err := os.RemoveAll(d); err != nil {
			return err
		}
	}
	return nil
}

func (s *session) logMetrics(v map[string]any) {
	b, _ := json.Marshal(v)
	appendLine(s.metrics, b) // a metrics line lost to a full disk costs the curve a point
	if s.tb != nil {
		s.tb.Metrics(v) // its first error sticks and is reported when it closes
	}
}

// writeReports puts the run's metrics log, its curves and the replica's reports of the
// last evaluation next to the final model.
func (s *session) writeReports(dir string) error {
	logPath := filepath.Join(s.dir, "metrics.jsonl")
	b, err := os.ReadFile(logPath)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "metrics.jsonl"), b, 0o644); err != nil {
		return err
	}
	if err := report.CurvesFile(logPath, filepath.Join(dir, "curves.png")); err != nil {
		return err
	}
	if s.tb != nil {
		if err := s.tb.Flush(); err != nil {
			return err
		}
		if err := os.Link(s.tb.Path(), filepath.Join(dir, filepath.Base(s.tb.Path()))); err != nil {
			return err
		}
	}
	if r, ok := s.env.Replica.(Reporter); ok {
		return r.WriteReports(dir)
	}
	return nil
}

// readJSON decodes the JSON file at path into v; a malformed file's error names it.
func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
