package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/bertnode/bertnode/internal/tarball"
)

// resume gives the session the newest state it can have without a peer: this node's
// latest checkpoint of the job (the node process restarted, or the whole cluster did),
// else, for a job submitted with --resume, the checkpoint the coordinator keeps of the
// job it continues. The generation's agreement then decides whether a peer holds a
// newer one. Without either, the replica starts fresh and takes rank 0's state.
func (s *session) resume(ctx context.Context) error {
	dir, err := latestCheckpoint(s.dir)
	if err != nil {
		return err
	}
	if dir == "" && s.job.ResumeOf != "" {
		if dir, err = s.fetchCheckpoint(ctx, s.job.ResumeOf); err != nil {
			return fmt.Errorf("resuming %s: %w", s.job.ResumeOf, err)
		}
	}
	if dir == "" {
		return nil
	}
	return s.load(dir)
}

// restore loads a checkpoint blob the coordinator names in a generation whose members
// are all new to the job (every node that held its state is gone): they go on from the
// job's last checkpoint instead of starting it over.
func (s *session) restore(ctx context.Context, blob string) error {
	dir, err := s.fetchBlob(ctx, blob, "restore")
	if err != nil {
		return fmt.Errorf("%w: restoring the job's checkpoint: %v", errRetry, err)
	}
	return s.load(dir)
}

// load makes the checkpoint in dir the replica's state.
func (s *session) load(dir string) error {
	bufs := s.env.Replica.State()
	p, err := ReadState(dir, bufs, layoutOf(s.env.Replica))
	if err != nil {
		return err
	}
	if err := s.env.Replica.Loaded(); err != nil {
		return err
	}
	s.pos, s.has = p, true
	s.a.applied.Store(p.Step)
	s.logf("resuming from %s at step %d (epoch %d, record %d of its order)", dir, p.Step, p.Epoch, p.Pos)
	return nil
}

// latestCheckpoint is the newest complete checkpoint directory under dir, or "".
func latestCheckpoint(dir string) (string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	var steps []int
	for _, e := range ents {
		n, err := strconv.Atoi(strings.TrimPrefix(e.Name(), ckptPrefix))
		if err == nil && e.IsDir() && strings.HasPrefix(e.Name(), ckptPrefix) {
			steps = append(steps, n)
		}
	}
	if len(steps) == 0 {
		return "", nil
	}
	sort.Ints(steps)
	return filepath.Join(dir, fmt.Sprintf("%s%d", ckptPrefix, steps[len(steps)-1])), nil
}

// fetchCheckpoint downloads the checkpoint the coordinator keeps of job prev.
func (s *session) fetchCheckpoint(ctx context.Context, prev string) (string, error) {
	j, err := s.a.cfg.Coordinator.Job(ctx, prev)
	if err != nil {
		return "", err
	}
	res, ok := j.Results["checkpoint"]
	if !ok || res.Blob == "" {
		return "", fmt.Errorf("job %s left no checkpoint (it saves one every save_steps)", prev)
	}
	return s.fetchBlob(ctx, res.Blob, "resume-"+prev)
}

// fetchBlob downloads a checkpoint blob into the session's directory name.
func (s *session) fetchBlob(ctx context.Context, blob, name string) (string, error) {
	rc, _, err := s.a.cfg.Coordinator.GetBlob(ctx, blob)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	dir := filepath.Join(s.dir, name)
	os.RemoveAll(dir)
	if err := tarball.Unpack(rc, dir); err != nil {
		return "", err
	}
	return dir, nil
}
