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
//
// A checkpoint that does not load, or whose checksum is not the one the ranks agreed
// on at its step (the coordinators' manifest, api.Job.Checkpoints), is damaged (bit
// rot, a file cut short or overwritten): it is moved aside (checkpoint-N.bad) and the
// next older one tried, rather than failing the job when the ring finds the replicas
// differ. A load that failed may have written part of the replica: without a good
// checkpoint, the replica is made again.
func (s *session) resume(ctx context.Context) error {
	dirs, err := CheckpointDirs(s.dir)
	if err != nil {
		return err
	}
	for _, dir := range dirs {
		err := s.load(dir)
		if err == nil {
			return nil
		}
		if diskFailed(err) {
			return err
		}
		s.logf("%s is not the job's state (damaged, or of steps trained again since), moved aside: %v", dir, err)
		if err := os.Rename(dir, dir+".bad"); err != nil {
			return err
		}
	}
	if len(dirs) > 0 {
		s.env.Replica.Close()
		if s.env, err = s.a.cfg.Setup(ctx, s.job); err != nil {
			return fmt.Errorf("setup: %w", err)
		}
	}
	if s.job.ResumeOf != "" {
		dir, err := s.fetchCheckpoint(ctx, s.job.ResumeOf)
		if err != nil {
			return fmt.Errorf("resuming %s: %w", s.job.ResumeOf, err)
		}
		return s.load(dir)
	}
	return nil
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

// load makes the checkpoint in dir the replica's state, if the coordinators' manifest
// does not say otherwise.
func (s *session) load(dir string) error {
	bufs := s.env.Replica.State()
	p, err := ReadState(dir, bufs, layoutOf(s.env.Replica))
	if err != nil {
		return err
	}
	if err := s.matchesManifest(checksum(bufs, p), p.Step); err != nil {
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

// matchesManifest checks a state's checksum against the ranks' at its step, when the
// manifest the session's job came with holds that step.
func (s *session) matchesManifest(sum string, step int64) error {
	for _, c := range s.job.Checkpoints {
		if c.Step != step || len(c.Checksums) == 0 {
			continue
		}
		for _, agreed := range c.Checksums {
			if agreed == sum {
				return nil
			}
		}
		// Damaged, or saved by a generation whose steps from before it were trained again
		// since (the manifest keeps the newest generation's): either way not the job's.
		return fmt.Errorf("its checksum %s... is none of the %d the ranks of generation %d reported at step %d", sum[:16], len(c.Checksums), c.Gen, step)
	}
	return nil
}

// CheckpointDirs are the complete checkpoint directories under dir (a job's directory
// on a node), newest first.
func CheckpointDirs(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var steps []int
	for _, e := range ents {
		n, err := strconv.Atoi(strings.TrimPrefix(e.Name(), ckptPrefix))
		if err == nil && e.IsDir() && strings.HasPrefix(e.Name(), ckptPrefix) {
			steps = append(steps, n)
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(steps)))
	dirs := make([]string, len(steps))
	for i, n := range steps {
		dirs[i] = filepath.Join(dir, fmt.Sprintf("%s%d", ckptPrefix, n))
	}
	return dirs, nil
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
