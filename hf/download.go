package hf

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

var errNotFound = errors.New("not found")

// fileMeta is what a HEAD on a resolve URL tells about a file.
type fileMeta struct {
	url    string
	commit string // X-Repo-Commit; empty when the server does not say
	etag   string // unquoted; for LFS files the content's sha256
	size   int64  // -1 when unknown
}

type downloader struct {
	client *http.Client
	token  string
}

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

func (d *downloader) request(method, url string) (*http.Request, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return nil, err
	}
	if d.token != "" {
		// net/http drops this header on redirects to another host (the CDN).
		req.Header.Set("Authorization", "Bearer "+d.token)
	}
	// Sizes and hashes refer to the stored bytes, not a compressed transfer.
	req.Header.Set("Accept-Encoding", "identity")
	return req, nil
}

// head asks for a file's commit, ETag and size. Redirects within the hub
// (renamed repositories) are followed; the redirect to an LFS CDN is not,
// because that response carries X-Linked-Etag and X-Linked-Size.
func (d *downloader) head(url string) (fileMeta, error) {
	req, err := d.request(http.MethodHead, url)
	if err != nil {
		return fileMeta{}, err
	}
	client := *d.client
	client.CheckRedirect = func(r *http.Request, via []*http.Request) error {
		if r.URL.Host != via[0].URL.Host || len(via) >= 10 {
			return http.ErrUseLastResponse
		}
		return nil
	}
	resp, err := client.Do(req)
	if err != nil {
		return fileMeta{}, err
	}
	resp.Body.Close()
	if err := statusErr(resp, url); err != nil {
		return fileMeta{}, err
	}
	m := fileMeta{url: url, commit: resp.Header.Get("X-Repo-Commit"), size: -1}
	etag := resp.Header.Get("X-Linked-Etag")
	if etag == "" {
		etag = resp.Header.Get("ETag")
	}
	if !strings.HasPrefix(etag, "W/") { // a weak tag says nothing about the bytes
		m.etag = strings.Trim(etag, `"`)
	}
	if size := resp.Header.Get("X-Linked-Size"); size != "" {
		if m.size, err = strconv.ParseInt(size, 10, 64); err != nil || m.size < 0 {
			return fileMeta{}, fmt.Errorf("HEAD %s: bad X-Linked-Size %q", url, size)
		}
	} else if resp.StatusCode == http.StatusOK {
		m.size = resp.ContentLength
	}
	if m.commit != "" && !commitID.MatchString(m.commit) {
		return fileMeta{}, fmt.Errorf("HEAD %s: bad X-Repo-Commit %q", url, m.commit)
	}
	return m, nil
}

func statusErr(resp *http.Response, url string) error {
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return errNotFound
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%s %s: %s (no such repository, or a private or gated one: set HF_TOKEN)", resp.Request.Method, url, resp.Status)
	case resp.StatusCode >= 400:
		return fmt.Errorf("%s %s: %s", resp.Request.Method, url, resp.Status)
	}
	return nil
}

// fetch downloads the file described by m to dst unless dst exists. Bytes
// land in blobs/<etag>.incomplete first, so an interrupted download never
// looks complete and the next call resumes it with a Range request; the
// file is renamed into place only once its size (and sha256 for LFS files)
// check out.
func (d *downloader) fetch(m fileMeta, blobs, dst string) error {
	if st, err := os.Stat(dst); err == nil && st.Mode().IsRegular() {
		return nil
	}
	for _, dir := range []string{blobs, filepath.Dir(dst)} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	key := m.etag
	if key == "" || strings.ContainsAny(key, `/\`) {
		key = fmt.Sprintf("%x", sha256.Sum256([]byte(m.url)))
	}
	partial := filepath.Join(blobs, key+".incomplete")
	f, err := os.OpenFile(partial, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	var h hash.Hash
	if sha256Hex.MatchString(m.etag) {
		h = sha256.New()
	}
	have, err := d.resume(f, h, m)
	if err != nil {
		return err
	}
	if m.size >= 0 && have != m.size {
		return fmt.Errorf("download %s: got %d bytes, the hub announced %d (partial download kept in %s)", m.url, have, m.size, partial)
	}
	if h != nil {
		if sum := hex.EncodeToString(h.Sum(nil)); sum != m.etag {
			os.Remove(partial)
			return fmt.Errorf("download %s: sha256 %s does not match the hub's %s; discarded", m.url, sum, m.etag)
		}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return os.Rename(partial, dst)
}

// resume appends the rest of the file to f, hashing all of it into h, and
// returns f's final size.
func (d *downloader) resume(f *os.File, h hash.Hash, m fileMeta) (int64, error) {
	have, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, err
	}
	if m.size >= 0 && have > m.size {
		have = 0 // a stale partial of some other content
	}
	if have > 0 && have == m.size { // downloaded before, but not yet renamed
		if h != nil {
			_, err = io.Copy(h, io.NewSectionReader(f, 0, have))
		}
		return have, err
	}
	req, err := d.request(http.MethodGet, m.url)
	if err != nil {
		return 0, err
	}
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if err := statusErr(resp, m.url); err != nil {
		if err == errNotFound {
			return 0, fmt.Errorf("GET %s: %s after HEAD found it", m.url, resp.Status)
		}
		return 0, err
	}
	if resp.StatusCode != http.StatusPartialContent || !strings.HasPrefix(resp.Header.Get("Content-Range"), fmt.Sprintf("bytes %d-", have)) {
		have = 0 // the server sent the whole file
	}
	if err := f.Truncate(have); err != nil {
		return 0, err
	}
	if h != nil && have > 0 {
		if _, err := io.Copy(h, io.NewSectionReader(f, 0, have)); err != nil {
			return 0, err
		}
	}
	if _, err := f.Seek(have, io.SeekStart); err != nil {
		return 0, err
	}
	var w io.Writer = f
	if h != nil {
		w = io.MultiWriter(f, h)
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return 0, fmt.Errorf("download %s: %w after %d bytes (partial download kept in %s for the next attempt)", m.url, err, have+n, f.Name())
	}
	return have + n, nil
}
