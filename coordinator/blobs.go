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
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/internal/atomicfile"
)

// blobStore is a directory of content-addressed files, each named by its sha256.
type blobStore struct {
	dir string
	max int64
	// grace: how old a file the state does not list must be to go.
	grace time.Duration
	// mu orders sweep's removals with have's renewals.
	mu sync.Mutex
}

// openBlobStore opens dir, removing the temporary files of writes a crash cut short:
// none is under way before the store opens.
func openBlobStore(dir string, max int64, grace time.Duration) (*blobStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("coordinator: blob store: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("coordinator: blob store: %w", err)
	}
	for _, e := range entries {
		if n := e.Name(); strings.HasPrefix(n, ".") && strings.Contains(n, ".tmp-") {
			if err := os.Remove(filepath.Join(dir, n)); err != nil {
				return nil, fmt.Errorf("coordinator: blob store: %w", err)
			}
		}
	}
	return &blobStore{dir: dir, max: max, grace: grace}, nil
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

// have is like size, and renews the file's mtime (under the lock sweep removes
// with): the caller is about to record the blob, which may be unlisted and old.
func (b *blobStore) have(sha string) (int64, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, ok := b.size(sha)
	if ok {
		now := time.Now()
		ok = os.Chtimes(b.path(sha), now, now) == nil
	}
	return n, ok
}

// expired says whether a file written at mtime, if the state does not list it, is
// garbage: collected, or an upload never recorded.
func (b *blobStore) expired(mtime time.Time) bool { return time.Since(mtime) >= b.grace }

// sweep removes the blobs whose files are expired and that listed does not name;
// temporary files (writes under way) are not named by a sha and stay.
func (b *blobStore) sweep(listed func(sha string) bool) (removed []string, err error) {
	entries, err := os.ReadDir(b.dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		sha := e.Name()
		if !ValidSHA(sha) || listed(sha) {
			continue
		}
		gone, rerr := b.removeExpired(sha)
		if gone {
			removed = append(removed, sha)
		}
		err = cmp.Or(err, rerr)
	}
	return removed, err
}

func (b *blobStore) removeExpired(sha string) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	fi, err := os.Stat(b.path(sha))
	if err != nil || !b.expired(fi.ModTime()) {
		return false, nil
	}
	return true, os.Remove(b.path(sha))
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
	return sha, s.addHolder(ctx, sha, int64(len(data)), true)
}

// addHolder records in the replicated state that this member holds a blob, uploaded
// to it or copied from another member: on the leader directly, else through it. The
// leader is looked up for each try: an upload that arrives during an election must
// not keep knocking on the dead leader. After 30 s it answers 503, and the uploader's
// retry finds the file already here.
func (s *Server) addHolder(ctx context.Context, sha string, size int64, upload bool) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	b, _ := json.Marshal(api.BlobHolder{Member: s.id, Size: size, Upload: upload})
	last := errors.New("no leader")
	for {
		if s.IsLeader() {
			_, _, err := s.commit(ctx, CmdBlobStored, s.holderRecord(BlobStored{SHA: sha, Size: size, Member: s.id, Upload: upload}))
			return err
		}
		if leader := s.leaderAPI(); leader != "" {
			try, stop := context.WithTimeout(ctx, 5*time.Second)
			resp, err := s.client([]string{leader}).Do(try, http.MethodPost, "/v1/blobs/"+sha+"/holders", nil, b)
			stop()
			if err == nil {
				resp.Body.Close()
				return nil
			}
			if ae := (*api.Error)(nil); errors.As(err, &ae) && ae.Status < 500 {
				return err
			}
			last = fmt.Errorf("%s: %w", leader, err)
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return &api.Error{Status: http.StatusServiceUnavailable, Message: fmt.Sprintf("recording blob %s with the leader: %v", sha, last)}
		}
	}
}

func (s *Server) putBlob(w http.ResponseWriter, r *http.Request) {
	sha := r.PathValue("sha")
	if !ValidSHA(sha) {
		writeError(w, badField("sha", "%q is not a lower-case hex sha256", sha))
		return
	}
	n, ok := s.blobs.have(sha)
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
		case errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT):
			// This member's disk is full, not the others': the client tries them (a
			// 500 failed the upload, and with it a job that had trained to its end).
			// The rest of the upload is read first: answered early, the connection's
			// close can reset it before the client has read the 507, and a client that
			// never hears that every member is full retries until its deadline (a
			// test saw it under load).
			io.Copy(io.Discard, io.LimitReader(r.Body, s.cfg.MaxBlobSize))
			writeError(w, &api.Error{Status: http.StatusInsufficientStorage, Message: fmt.Sprintf("storing blob %s on member %s: %v", sha, s.id, err)})
			return
		case err != nil:
			writeError(w, fmt.Errorf("storing blob %s: %w", sha, err))
			return
		}
		s.metrics.blobBytesIn.Add(float64(n))
	}
	if err := s.addHolder(r.Context(), sha, n, true); err != nil {
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
		if fi, err := f.Stat(); err == nil && s.garbage(sha, fi.ModTime()) {
			writeError(w, errorf(http.StatusNotFound, "no blob %s: no job references it any more, and it was collected", sha))
			return
		}
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
	writeError(w, errorf(http.StatusNotFound, "no blob %s: never stored, or no job references it any more and it was collected", sha))
}

// garbage says whether this member's file of sha, written at mtime, is one its
// blob sweep removes: the state does not list it and it is past the file grace.
// Until the FSM has applied the log this member started with, nothing is.
func (s *Server) garbage(sha string, mtime time.Time) bool {
	listed, caughtUp := false, false
	s.fsm.Read(func(st *State) { listed, caughtUp = st.Blobs[sha] != nil, st.Index >= s.bootIndex })
	return caughtUp && !listed && s.blobs.expired(mtime)
}

// sweepBlobs removes from this member's store, on every change of the state and every
// 2 s, the files of blobs the state does not list, once past the file grace. A blob
// is written before it is listed: the grace spares an upload not yet recorded. A
// member that has not yet applied the log it started with would take recent blobs
// for collected ones: it waits. It runs apart from syncBlobs, whose copy of a large
// blob may take minutes.
func (s *Server) sweepBlobs() {
	s.onChange(2*time.Second, func() {
		listed := map[string]bool{}
		caughtUp := false
		s.fsm.Read(func(st *State) {
			caughtUp = st.Index >= s.bootIndex
			for sha := range st.Blobs {
				listed[sha] = true
			}
		})
		if !caughtUp {
			return
		}
		removed, err := s.blobs.sweep(func(sha string) bool { return listed[sha] })
		for _, sha := range removed {
			s.log.Info("blob file removed: the state no longer lists it", "sha", sha)
		}
		if err != nil {
			s.log.Warn("blob sweep", "err", err)
		}
	})
}

// onChange calls fn on every change of the state, and every period without one,
// until the member stops.
func (s *Server) onChange(period time.Duration, fn func()) {
	for {
		changed := s.changes.wait()
		fn()
		select {
		case <-changed:
		case <-time.After(period):
		case <-s.ctx.Done():
			return
		}
	}
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
	s.write(w, r, CmdBlobStored, s.holderRecord(BlobStored{SHA: r.PathValue("sha"), Size: b.Size, Member: b.Member, Upload: b.Upload}))
}

// holderRecord is b as the leader commits it: while a member speaks a protocol older
// than protocolCopy, a copy is recorded as an upload, which every FSM applies alike.
func (s *Server) holderRecord(b BlobStored) BlobStored {
	if !b.Upload && s.supports("a copy's record", protocolCopy) != nil {
		b.Upload = true
	}
	return b
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
	s.onChange(2*time.Second, func() {
		type want struct {
			sha    string
			size   int64
			listed bool // the state says this member holds it
		}
		var all, missing []want
		listed := map[string]bool{}
		s.fsm.Read(func(st *State) {
			for sha, b := range st.Blobs {
				all = append(all, want{sha, b.Size, slices.Contains(b.Holders, s.id)})
				listed[sha] = true
			}
		})
		maps.DeleteFunc(failed, func(sha string, _ retry) bool { return !listed[sha] })
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
	})
}

func (s *Server) syncBlob(sha string) error {
	ctx, cancel := context.WithTimeout(s.ctx, time.Hour)
	defer cancel()
	n, ok := s.blobs.have(sha) // renewed: sweepBlobs may have read a state that did not list it
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
	return s.addHolder(ctx, sha, n, false)
}
