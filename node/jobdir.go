package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/internal/atomicfile"
)

// jobMark is what a job's directory on a node says about whose it is. Job IDs are
// numbered by the coordinators' state: a cluster started over from empty state numbers
// its jobs from job-1 again, and a node that kept its data directory must not resume the
// new job-1 from the old one's checkpoint.
type jobMark struct {
	ID        string    `json:"id"`
	Submitted time.Time `json:"submitted"`
}

const jobMarkFile = "job.json"

// claimJobDir makes dir the directory of job j: a directory another job of the same ID
// left is moved aside (to dir.<its submission time>), never deleted; one without a mark
// (written before marks were) is taken as j's. It returns the path the other job's
// files went to, or "".
func claimJobDir(dir string, j *api.Job) (movedTo string, err error) {
	want := jobMark{ID: j.ID, Submitted: j.Submitted.UTC()}
	have, err := readJobMark(dir)
	switch {
	case err == nil:
		if have.ID == want.ID && have.Submitted.Equal(want.Submitted) {
			return "", nil
		}
		movedTo = fmt.Sprintf("%s.%s", dir, have.Submitted.UTC().Format("20060102T150405.000000000Z"))
		if err := os.Rename(dir, movedTo); err != nil {
			return "", err
		}
	case !errors.Is(err, os.ErrNotExist):
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	b, err := json.Marshal(want)
	if err != nil {
		return "", err
	}
	return movedTo, atomicfile.WriteFile(filepath.Join(dir, jobMarkFile), b, 0o644)
}

// genFile holds the last generation a process of this node joined in the job, so that
// a restarted process (killed, or the machine's power lost) never joins that one
// again: its ring died with the process, and its members may have applied steps that
// a restart, resuming from a checkpoint, no longer holds. Had every member restarted
// at once, nobody would report the old ring broken, and the job would train those
// steps again under the same generation.
const genFile = "generation"

// joinedGen is the generation recorded in dir's genFile; 0 when there is none.
func joinedGen(dir string) (uint32, error) {
	path := filepath.Join(dir, genFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	g, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return uint32(g), nil
}

// markJoined records in dir that this node joins generation gen.
func markJoined(dir string, gen uint32) error {
	return atomicfile.WriteFile(filepath.Join(dir, genFile), []byte(strconv.FormatUint(uint64(gen), 10)+"\n"), 0o644)
}

func readJobMark(dir string) (jobMark, error) {
	var m jobMark
	return m, readJSON(filepath.Join(dir, jobMarkFile), &m)
}

// pruneDeleted removes the directories under root (<data-dir>/jobs) whose mark names a
// job bertnode delete removed: its ID and submission time both (another cluster's job
// of that ID stays). It skips the job a session runs, and returns what it removed.
func pruneDeleted(root string, deleted map[string]time.Time, active string) ([]string, error) {
	ents, err := os.ReadDir(root)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var removed []string
	for _, e := range ents {
		dir := filepath.Join(root, e.Name())
		m, err := readJobMark(dir)
		if !e.IsDir() || err != nil || m.ID == active {
			continue
		}
		if sub, ok := deleted[m.ID]; ok && sub.Equal(m.Submitted) {
			if err := os.RemoveAll(dir); err != nil {
				return removed, err
			}
			removed = append(removed, dir)
		}
	}
	return removed, nil
}
