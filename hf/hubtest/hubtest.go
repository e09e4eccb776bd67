// Package hubtest fakes the Hugging Face hub for tests: resolve URLs of one
// repository's files, LFS files behind a CDN, and API routes.
package hubtest

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Commit is the commit every response of the fake hub names.
const Commit = "0123456789abcdef0123456789abcdef01234567"

// Hub serves a repository the way huggingface.co does: resolve URLs
// carry X-Repo-Commit; LFS files answer with a redirect to a CDN on another
// host, announcing their sha256 in X-Linked-Etag and size in X-Linked-Size.
type Hub struct {
	Repo   string // as in resolve URLs: org/name for a model, datasets/org/name for a dataset
	Files  map[string][]byte
	LFS    map[string]bool
	Status map[string]int // a file answers with this status instead
	// Truncate makes the CDN's next full GET of the file stop halfway.
	Truncate map[string]bool
	// Etag overrides the sha256 announced for an LFS file.
	Etag map[string]string
	// API answers GET of a path with this value as JSON, or a string with a redirect to it.
	API map[string]any

	Hub, CDN *httptest.Server
	mu       sync.Mutex
	log      []string
}

// New starts a hub serving files of repo at the revisions main, Commit and
// refs/convert/parquet, closed when the test ends.
func New(t testing.TB, repo string, files map[string][]byte) *Hub {
	h := &Hub{Repo: repo, Files: files, LFS: map[string]bool{}, Status: map[string]int{}, Truncate: map[string]bool{}, Etag: map[string]string{}}
	h.CDN = httptest.NewServer(http.HandlerFunc(h.serveCDN))
	h.Hub = httptest.NewServer(http.HandlerFunc(h.serveHub))
	t.Cleanup(func() { h.Hub.Close(); h.CDN.Close() })
	return h
}

func (h *Hub) record(r *http.Request, host string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.log = append(h.log, fmt.Sprintf("%s %s %s range=%q auth=%q", host, r.Method, r.URL.Path, r.Header.Get("Range"), r.Header.Get("Authorization")))
}

// Requests are the requests served so far: host (hub or cdn), method, path, Range and
// Authorization.
func (h *Hub) Requests() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.log...)
}

func (h *Hub) serveHub(w http.ResponseWriter, r *http.Request) {
	h.record(r, "hub")
	if v, ok := h.API[r.URL.Path]; ok {
		if to, ok := v.(string); ok {
			http.Redirect(w, r, to, http.StatusFound)
			return
		}
		json.NewEncoder(w).Encode(v)
		return
	}
	repo, rest, ok := strings.Cut(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/resolve/")
	rev, name, _ := strings.Cut(rest, "/")
	rev, _ = url.PathUnescape(rev)
	name, _ = url.PathUnescape(name)
	if !ok || repo != h.Repo || (rev != "main" && rev != Commit && rev != "refs/convert/parquet") {
		http.Error(w, "Repository not found", http.StatusNotFound)
		return
	}
	w.Header().Set("X-Repo-Commit", Commit)
	if code := h.Status[name]; code != 0 {
		http.Error(w, "injected", code)
		return
	}
	data, ok := h.Files[name]
	if !ok {
		w.Header().Set("X-Error-Code", "EntryNotFound")
		http.Error(w, "Entry not found", http.StatusNotFound)
		return
	}
	if h.LFS[name] {
		etag := h.Etag[name]
		if etag == "" {
			etag = fmt.Sprintf("%x", sha256.Sum256(data))
		}
		w.Header().Set("X-Linked-Etag", `"`+etag+`"`)
		w.Header().Set("X-Linked-Size", fmt.Sprint(len(data)))
		http.Redirect(w, r, h.CDN.URL+"/"+name, http.StatusFound)
		return
	}
	w.Header().Set("ETag", fmt.Sprintf(`"%x"`, sha1.Sum(data)))
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(data))
}

func (h *Hub) serveCDN(w http.ResponseWriter, r *http.Request) {
	h.record(r, "cdn")
	name := strings.TrimPrefix(r.URL.Path, "/")
	data := h.Files[name]
	h.mu.Lock()
	cut := h.Truncate[name] && r.Method == http.MethodGet && r.Header.Get("Range") == ""
	h.Truncate[name] = h.Truncate[name] && !cut
	h.mu.Unlock()
	if cut {
		// Announce the whole file, send half, and hang up.
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.Write(data[:len(data)/2])
		return
	}
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(data))
}
