package coordinator

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/internal/atomicfile"
)

// blobStore is a directory of content-addressed files, each named by its sha256.
type blobStore struct {
	dir string
	max int64
}

func openBlobStore(dir string, max int64) (*blobStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("coordinator: blob store: %w", err)
	}
	return &blobStore{dir: dir, max: max}, nil
}

func (b *blobStore) path(sha string) string { return filepath.Join(b.dir, sha) }

// size is the blob's size if this member holds it.
func (b *blobStore) size(sha string) (int64, bool) {
	fi, err := os.Stat(b.path(sha))
	if err != nil {
		return 0, false
	}
	return fi.Size(), true
}

// errMismatch: the content does not hash to its name.
var errMismatch = errors.New("content does not match its sha256")

// put stores r's content as blob sha: into a temporary file, checked, fsynced and
// renamed, so the store never holds a torn or wrong blob.
func (b *blobStore) put(r io.Reader, sha string) (int64, error) {
	f, err := atomicfile.Create(b.path(sha), 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), r)
	if err != nil {
		return n, err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sha {
		return n, fmt.Errorf("%w: %d bytes hash to %s", errMismatch, n, got)
	}
	return n, f.Commit()
}

// BlobPath is where this member keeps blob sha (it may not hold it yet).
func (s *Server) BlobPath(sha string) string { return s.blobs.path(sha) }

// storeBlob puts data in the local store and records that this member holds it.
func (s *Server) storeBlob(ctx context.Context, data []byte) (string, error) {
	sum := sha256.Sum256(data)
	sha := hex.EncodeToString(sum[:])
	if _, err := s.blobs.put(bytes.NewReader(data), sha); err != nil {
		return "", err
	}
	return sha, s.addHolder(ctx, sha, int64(len(data)))
}

// addHolder records in the replicated state that this member holds a blob: on the
// leader directly, else through it.
func (s *Server) addHolder(ctx context.Context, sha string, size int64) error {
	if s.IsLeader() {
		_, _, err := s.commit(ctx, CmdBlobStored, BlobStored{SHA: sha, Size: size, Member: s.id})
		return err
	}
	leader := s.leaderAPI()
	if leader == "" {
		return &api.Error{Status: http.StatusServiceUnavailable, Message: "no leader to record the blob with"}
	}
	b, _ := json.Marshal(api.BlobHolder{Member: s.id, Size: size})
	resp, err := s.client([]string{leader}).Do(ctx, http.MethodPost, "/v1/blobs/"+sha+"/holders", nil, b)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

func (s *Server) putBlob(w http.ResponseWriter, r *http.Request) {
	sha := r.PathValue("sha")
	if !ValidSHA(sha) {
		writeError(w, badField("sha", "%q is not a lower-case hex sha256", sha))
		return
	}
	n, ok := s.blobs.size(sha)
	if !ok {
		var err error
		n, err = s.blobs.put(http.MaxBytesReader(w, r.Body, s.cfg.MaxBlobSize), sha)
		var me *http.MaxBytesError
		switch {
		case errors.Is(err, errMismatch):
			writeError(w, badField("sha", "%v", err))
			return
		case errors.As(err, &me):
			writeError(w, &api.Error{Status: http.StatusRequestEntityTooLarge, Message: fmt.Sprintf("blob over %d bytes", me.Limit)})
			return
		case err != nil:
			writeError(w, fmt.Errorf("storing blob %s: %w", sha, err))
			return
		}
		s.metrics.blobBytesIn.Add(float64(n))
	}
	if err := s.addHolder(r.Context(), sha, n); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.BlobHolder{Member: s.id, Size: n})
}

// getBlob serves a blob from this member's store (with ranges), or from a member that
// holds it. ?local=1 asks for this member's copy only: members fetch so.
func (s *Server) getBlob(w http.ResponseWriter, r *http.Request) {
	sha := r.PathValue("sha")
	if !ValidSHA(sha) {
		writeError(w, badField("sha", "%q is not a lower-case hex sha256", sha))
		return
	}
	if f, err := os.Open(s.blobs.path(sha)); err == nil {
		defer f.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("ETag", `"`+sha+`"`)
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		http.ServeContent(w, r, "", time.Time{}, f)
		return
	}
	if r.URL.Query().Get("local") == "" {
		for _, addr := range s.holders(sha) {
			if s.proxyBlob(w, r, addr, sha) {
				return
			}
		}
	}
	writeError(w, errorf(http.StatusNotFound, "no blob %s", sha))
}

// holders are the API addresses of the other members that hold sha.
func (s *Server) holders(sha string) []string {
	var addrs []string
	s.fsm.Read(func(st *State) {
		if b := st.Blobs[sha]; b != nil {
			for _, h := range b.Holders {
				if m := st.Members[h]; m != nil && h != s.id {
					addrs = append(addrs, m.APIAddr)
				}
			}
		}
	})
	return addrs
}

func (s *Server) fetchLocal(ctx context.Context, addr, sha, method string, header http.Header) (*http.Response, error) {
	scheme := "http"
	if s.cfg.TLS != nil {
		scheme = "https"
	}
	req, err := http.NewRequestWithContext(ctx, method, scheme+"://"+addr+"/v1/blobs/"+sha+"?local=1", nil)
	if err != nil {
		return nil, err
	}
	for _, k := range []string{"Range", "If-Range", "If-None-Match"} {
		if v := header.Get(k); v != "" {
			req.Header.Set(k, v)
		}
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	return s.peer.Do(req)
}

// proxyBlob answers r with another member's copy; false if it could not.
func (s *Server) proxyBlob(w http.ResponseWriter, r *http.Request, addr, sha string) bool {
	resp, err := s.fetchLocal(r.Context(), addr, sha, r.Method, r.Header)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 && resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		return false
	}
	for _, k := range []string{"Content-Type", "Content-Length", "Content-Range", "Accept-Ranges", "ETag", "Cache-Control"} {
		if v := resp.Header.Get(k); v != "" {
			w.Header().Set(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
	return true
}

func (s *Server) postHolder(w http.ResponseWriter, r *http.Request) {
	var b api.BlobHolder
	if err := decodeBody(w, r, &b); err != nil {
		writeError(w, err)
		return
	}
	s.write(w, r, CmdBlobStored, BlobStored{SHA: r.PathValue("sha"), Size: b.Size, Member: b.Member})
}

// syncBlobs copies to this member every blob the state lists that it lacks, from a
// member holding it, so that every member holds every blob: a job's results outlive
// any one member. A file lost from this member's store is fetched again.
func (s *Server) syncBlobs() {
	type retry struct {
		at    time.Time
		delay time.Duration
	}
	failed := map[string]retry{} // sha -> when to try again
	for {
		changed := s.changes.wait()
		type want struct {
			sha    string
			size   int64
			listed bool // the state says this member holds it
		}
		var all, missing []want
		s.fsm.Read(func(st *State) {
			for sha, b := range st.Blobs {
				all = append(all, want{sha, b.Size, slices.Contains(b.Holders, s.id)})
			}
		})
		for _, w := range all {
			if !w.listed {
				missing = append(missing, w)
			} else if _, ok := s.blobs.size(w.sha); !ok {
				missing = append(missing, w) // lost from this member's disk
			}
		}
		slices.SortFunc(missing, func(a, b want) int { return cmp.Compare(a.size, b.size) })
		for _, m := range missing {
			if s.ctx.Err() != nil {
				return
			}
			r := failed[m.sha]
			if time.Now().Before(r.at) {
				continue
			}
			if err := s.syncBlob(m.sha); err != nil {
				r.delay = min(max(2*r.delay, 2*time.Second), time.Minute)
				s.log.Warn("blob sync", "sha", m.sha, "err", err, "retry in", r.delay)
				failed[m.sha] = retry{time.Now().Add(r.delay), r.delay}
				continue
			}
			delete(failed, m.sha)
		}
		select {
		case <-changed:
		case <-time.After(2 * time.Second):
		case <-s.ctx.Done():
			return
		}
	}
}

func (s *Server) syncBlob(sha string) error {
	ctx, cancel := context.WithTimeout(s.ctx, time.Hour)
	defer cancel()
	n, ok := s.blobs.size(sha)
	if !ok {
		var last error = errors.New("no member holds it")
		for _, addr := range s.holders(sha) {
			resp, err := s.fetchLocal(ctx, addr, sha, http.MethodGet, http.Header{})
			if err != nil {
				last = err
				continue
			}
			if resp.StatusCode != http.StatusOK {
				resp.Body.Close()
				last = fmt.Errorf("%s: %s", addr, resp.Status)
				continue
			}
			n, err = s.blobs.put(resp.Body, sha)
			resp.Body.Close()
			if err != nil {
				last = fmt.Errorf("%s: %w", addr, err)
				continue
			}
			ok = true
			s.metrics.blobBytesIn.Add(float64(n))
			break
		}
		if !ok {
			return last
		}
	}
	return s.addHolder(ctx, sha, n)
}
