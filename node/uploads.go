package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/internal/atomicfile"
	"github.com/bertnode/bertnode/internal/tarball"
)

// FetchUpload resolves a spec's model or tokenizer path for job. One the CLI uploaded
// (blob:<sha256>, a packed directory, or blob:<sha256>/<file>, a packed file) is
// fetched and unpacked once into dir/<sha256>, which later jobs reuse; the result is
// that directory or the file in it. Any other path (a preset, a hub name, a shared
// path) comes back as it is. The jobs that used an upload are listed beside it
// (dir/<sha256>.jobs), so that it goes once bertnode delete removed them all
// (pruneUploads).
func FetchUpload(ctx context.Context, c Blobs, dir, path string, job *api.Job) (string, error) {
	ref, ok := strings.CutPrefix(path, "blob:")
	if !ok {
		return path, nil
	}
	sha, file, nested := strings.Cut(ref, "/")
	if !isSHA(sha) || nested && (file == "" || file == "." || file == ".." || strings.ContainsAny(file, `/\`)) {
		return "", fmt.Errorf("%q: want blob:<sha256> or blob:<sha256>/<file name>", path)
	}
	dst := filepath.Join(dir, sha)
	if _, err := os.Stat(dst); errors.Is(err, os.ErrNotExist) {
		if err := unpackBlob(ctx, c, sha, dst); err != nil {
			return "", fmt.Errorf("fetching %s: %w", path, err)
		}
	} else if err != nil {
		return "", err
	}
	if err := addUploadUser(dir, sha, job); err != nil {
		return "", err
	}
	if nested {
		return filepath.Join(dst, file), nil
	}
	return dst, nil
}

// unpackBlob unpacks blob sha into dst through a temporary directory, so that dst
// exists only whole.
func unpackBlob(ctx context.Context, c Blobs, sha, dst string) error {
	rc, _, err := c.GetBlob(ctx, sha)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dst), ".unpack-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := tarball.Unpack(rc, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		if _, serr := os.Stat(dst); serr == nil {
			return nil // another session unpacked it first
		}
		return err
	}
	return nil
}

func isSHA(s string) bool { return len(s) == 64 && strings.Trim(s, "0123456789abcdef") == "" }

// uploadUsers are the jobs that used an upload: ID -> submission time (a job of the
// same ID from a cluster started over is another job).
type uploadUsers map[string]time.Time

var usersMu sync.Mutex // one read-modify-write of a .jobs file at a time

const usersExt = ".jobs"

func addUploadUser(dir, sha string, job *api.Job) error {
	usersMu.Lock()
	defer usersMu.Unlock()
	path := filepath.Join(dir, sha+usersExt)
	users := uploadUsers{}
	if err := readJSON(path, &users); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if at, ok := users[job.ID]; ok && at.Equal(job.Submitted) {
		return nil
	}
	users[job.ID] = job.Submitted.UTC()
	b, err := json.Marshal(users)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b, 0o644)
}

// pruneUploads removes from dir (<data-dir>/uploads) the uploads every job that used
// them was deleted (bertnode delete), with their lists; those unpacked before lists
// were kept (a job that needs one fetches it again); and the temporaries of unpacks
// and writes cut short. It must run while no session does: one may be unpacking, or
// about to use an upload its job has not been listed with yet. It returns what it
// removed.
func pruneUploads(dir string, deleted map[string]time.Time) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var removed []string
	remove := func(name string) error {
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			return err
		}
		removed = append(removed, filepath.Join(dir, name))
		return nil
	}
	shas := map[string]bool{}
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			if err := remove(name); err != nil {
				return removed, err
			}
		} else if sha := strings.TrimSuffix(name, usersExt); isSHA(sha) {
			shas[sha] = true
		}
	}
	for _, sha := range slices.Sorted(maps.Keys(shas)) {
		users := uploadUsers{}
		if err := readJSON(filepath.Join(dir, sha+usersExt), &users); err != nil && !errors.Is(err, os.ErrNotExist) {
			return removed, err
		}
		live := false
		for id, at := range users {
			if sub, ok := deleted[id]; !ok || !sub.Equal(at) {
				live = true
			}
		}
		if live {
			continue
		}
		// The upload first, then its list: a crash between leaves a list, removed next time.
		for _, name := range []string{sha, sha + usersExt} {
			if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
				if err := remove(name); err != nil {
					return removed, err
				}
			}
		}
	}
	return removed, nil
}
