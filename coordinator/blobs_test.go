package coordinator_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/coordinator"
	"github.com/bertnode/bertnode/coordinator/coordtest"
)

// TestBlobsReplicateAndSurvive: a blob uploaded to a follower reaches every member's
// store and the state's holder list; with the uploader gone, the others serve it. A
// body that does not hash to its name is refused and not stored.
func TestBlobsReplicateAndSurvive(t *testing.T) {
	c := coordtest.New(t, coordtest.Options{Members: 3})
	up := c.Follower()
	content := bytes.Repeat([]byte("model weights "), 10000)
	sha, err := c.Client(up).PutBlob(ctx(t), bytes.NewReader(content), int64(len(content)))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	if sha != hex.EncodeToString(sum[:]) {
		t.Fatalf("PutBlob returned %s", sha)
	}
	c.WaitFor("every member to hold the blob", func() bool {
		for _, s := range c.Servers {
			if fi, err := os.Stat(s.BlobPath(sha)); err != nil || fi.Size() != int64(len(content)) {
				return false
			}
			held := false
			s.Read(func(st *coordinator.State) { held = st.Blobs[sha] != nil && len(st.Blobs[sha].Holders) == 3 })
			if !held {
				return false
			}
		}
		return true
	})
	// A member that lost its copy serves the blob from another's, then fetches it again.
	other := c.Leader()
	if err := os.Remove(other.BlobPath(sha)); err != nil {
		t.Fatal(err)
	}
	code, _, body := raw(t, "GET", other.APIAddr(), "/v1/blobs/"+sha, c.Secret.Token(), nil)
	if code != 200 || !bytes.Equal(body, content) {
		t.Fatalf("GET from a member without its copy: %d, %d bytes", code, len(body))
	}
	c.WaitFor("the lost copy to come back", func() bool {
		_, err := os.Stat(other.BlobPath(sha))
		return err == nil
	})
	c.Detach(c.Index(up)).Kill()
	for _, s := range c.Servers {
		if s == nil {
			continue
		}
		rc, size, err := c.Client(s).GetBlob(ctx(t), sha)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, content) || size != int64(len(content)) {
			t.Fatalf("member %s serves %d bytes (size %d), %v", s.ID(), len(got), size, err)
		}
		code, h, _ := raw(t, "HEAD", s.APIAddr(), "/v1/blobs/"+sha, c.Secret.Token(), nil)
		if code != 200 || h.Get("Content-Length") != strconv.Itoa(len(content)) {
			t.Fatalf("HEAD: %d, length %q", code, h.Get("Content-Length"))
		}
	}

	wrong := sha256.Sum256([]byte("something else"))
	code, _, body = raw(t, "PUT", other.APIAddr(), "/v1/blobs/"+hex.EncodeToString(wrong[:]), c.Secret.Token(), []byte("not that"))
	var e api.Error
	json.Unmarshal(body, &e)
	if code != http.StatusBadRequest || e.Field != "sha" {
		t.Fatalf("sha mismatch: %d %s", code, body)
	}
	if _, err := os.Stat(other.BlobPath(hex.EncodeToString(wrong[:]))); err == nil {
		t.Fatal("a mismatching blob was stored")
	}
	entries, _ := os.ReadDir(filepath.Dir(other.BlobPath(sha)))
	if i := slices.IndexFunc(entries, func(e os.DirEntry) bool { return e.Name() != sha }); i >= 0 {
		t.Fatalf("the store keeps %s", entries[i].Name())
	}
	var ae *api.Error
	if _, _, err := c.Client().GetBlob(ctx(t), hex.EncodeToString(wrong[:])); !errors.As(err, &ae) || ae.Status != http.StatusNotFound {
		t.Fatalf("an unknown blob: %v", err)
	}
}

// TestCollectedBlobsLeaveEveryDisk: a checkpoint a newer one replaces leaves every
// member's disk and answers 404; a file the state does not list that is younger than
// the file grace (an upload not yet recorded) stays, and goes once old; temporary
// files of writes are not touched; an upload no job references goes after the grace
// in the log's time; a finished job's data, plan and models stay and download.
func TestCollectedBlobsLeaveEveryDisk(t *testing.T) {
	c := coordtest.New(t, coordtest.Options{Members: 3, Tweak: func(_ int, cfg *coordinator.Config) {
		cfg.BlobFileGrace = time.Minute // the test ages files past it with Chtimes
	}})
	cl := c.Client()
	ns := nodes(c, "n1")
	data := putData(t, cl, trainData)
	id := submit(c, jobSpecText(data, 1, 1))
	ns[0].awaitGen(id, 1, 0)
	put := func(text string) string { return putData(t, cl, text)[len("blob:"):] }
	report := func(kind, sha string) {
		t.Helper()
		if err := cl.Result(ctx(t), id, api.ResultReport{Node: "n1", Kind: kind, Blob: sha, Step: 10}); err != nil {
			t.Fatal(err)
		}
	}
	// recorded waits until every member has its copy of sha and has recorded it: a
	// record renews the blob's grace, and its file's.
	recorded := func(what, sha string) {
		t.Helper()
		c.WaitFor(what, func() bool {
			n := 0
			c.Leader().Read(func(st *coordinator.State) {
				if b := st.Blobs[sha]; b != nil {
					n = len(b.Holders)
				}
			})
			return n == len(c.Servers)
		})
	}
	// age makes sha's files older than the file grace on every member that has one.
	old := time.Now().Add(-time.Hour)
	age := func(sha string) (left int) {
		for _, s := range c.Servers {
			if os.Chtimes(s.BlobPath(sha), old, old) == nil {
				left++
			}
		}
		return left
	}
	// gone waits for sha to leave every member's disk, its files kept old: a member
	// may renew a file's mtime meanwhile (recording a copy it made).
	gone := func(what, sha string) {
		t.Helper()
		c.WaitFor(what, func() bool { return age(sha) == 0 })
	}

	ck1 := put("checkpoint at step 10")
	report("checkpoint", ck1)
	recorded("every member to hold the first checkpoint", ck1)
	// Written but not recorded yet, and a write under way: neither may go.
	unrecorded := []byte("uploaded, not recorded yet")
	sum := sha256.Sum256(unrecorded)
	fresh := hex.EncodeToString(sum[:])
	for _, s := range c.Servers {
		if err := os.WriteFile(s.BlobPath(fresh), unrecorded, 0o600); err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(filepath.Dir(s.BlobPath(fresh)), "."+fresh+".tmp-123")
		if err := os.WriteFile(tmp, unrecorded, 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(tmp, old, old)
	}
	ck2 := put("checkpoint at step 20")
	report("checkpoint", ck2)
	gone("the replaced checkpoint to leave every member", ck1)
	var ae *api.Error
	for _, s := range c.Servers {
		if _, _, err := c.Client(s).GetBlob(ctx(t), ck1); !errors.As(err, &ae) || ae.Status != http.StatusNotFound {
			t.Fatalf("%s: GET of a collected blob: %v", s.ID(), err)
		}
		if _, err := os.Stat(s.BlobPath(fresh)); err != nil {
			t.Fatalf("%s: the unrecorded upload younger than the grace: %v", s.ID(), err)
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(s.BlobPath(fresh)), "."+fresh+".tmp-123")); err != nil {
			t.Fatalf("%s: the temporary file: %v", s.ID(), err)
		}
	}
	gone("the unrecorded upload past the grace to go", fresh)

	// Final and best the same model; an upload nobody references, past the grace in
	// the commands' time (the test's clock), goes; the job's blobs stay.
	model := put("the final model")
	report("final", model)
	report("best", model)
	stray := put("uploaded, never referenced")
	recorded("every member to record the stray upload", stray)
	c.Clock.Advance(2 * time.Hour)
	c.WaitFor("the leader to collect the stray upload", func() bool {
		listed := true
		c.Leader().Read(func(st *coordinator.State) { listed = st.Blobs[stray] != nil })
		return !listed
	})
	gone("the stray upload to leave every member", stray)
	if err := cl.Done(ctx(t), id, api.DoneReport{Node: "n1", Gen: 1, Step: 20}); err != nil {
		t.Fatal(err)
	}
	j := job(c, id)
	keep := []string{data[len("blob:"):], j.Train.Plan, ck2, model}
	for _, sha := range keep {
		age(sha)
	}
	time.Sleep(3 * time.Second) // sweeps run every 2s
	for _, s := range c.Servers {
		for _, sha := range keep {
			rc, _, err := c.Client(s).GetBlob(ctx(t), sha)
			if err != nil {
				t.Fatalf("%s: GET of a job's blob %s: %v", s.ID(), sha, err)
			}
			_, err = io.Copy(io.Discard, rc)
			rc.Close()
			if err != nil {
				t.Fatalf("%s: reading %s: %v", s.ID(), sha, err)
			}
			if _, err := os.Stat(s.BlobPath(sha)); err != nil {
				t.Fatalf("%s: a job's blob left the disk: %v", s.ID(), err)
			}
		}
	}
}

// TestSweepDoesNotWaitForACopy: a member still copying a blob from another (here one
// that never answers, as a large blob over a slow link would take minutes) goes on
// removing the files the state no longer lists.
func TestSweepDoesNotWaitForACopy(t *testing.T) {
	c := coordtest.New(t, coordtest.Options{Members: 3, Tweak: func(_ int, cfg *coordinator.Config) {
		cfg.BlobFileGrace = time.Minute
	}})
	// Member 2 crashes, and a listener that accepts and never answers takes its address.
	silent, addr := c.Servers[2].ID(), c.Servers[2].APIAddr()
	if err := c.Detach(2).Kill(); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn // kept: a collected conn closes
	)
	accepted := make(chan struct{}, 16)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			accepted <- struct{}{}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, conn := range conns {
			conn.Close()
		}
	})
	// The state says the silent member holds a blob: the others fetch it from there.
	var sha [32]byte
	sha[0] = 1
	want := hex.EncodeToString(sha[:])
	body, _ := json.Marshal(api.BlobHolder{Member: silent, Size: 1 << 30, Upload: true}) // as its upload would
	if code, _, b := raw(t, http.MethodPost, c.Leader().APIAddr(), "/v1/blobs/"+want+"/holders", c.Secret.Token(), body); code != http.StatusOK {
		t.Fatalf("recording the silent member's blob: %d %s", code, b)
	}
	for range 2 {
		select {
		case <-accepted:
		case <-time.After(30 * time.Second):
			t.Fatal("the members never asked the silent one for its blob")
		}
	}
	// Now each is waiting for its copy: a file the state does not list, past the grace.
	garbage := sha256.Sum256([]byte("collected"))
	name := hex.EncodeToString(garbage[:])
	old := time.Now().Add(-time.Hour)
	for _, s := range c.Servers[:2] {
		if err := os.WriteFile(s.BlobPath(name), []byte("collected"), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(s.BlobPath(name), old, old)
	}
	c.WaitFor("both members to sweep while they copy", func() bool {
		for _, s := range c.Servers[:2] {
			if _, err := os.Stat(s.BlobPath(name)); err == nil {
				return false
			}
		}
		return true
	})
}

// TestBlobUploadGoesToAMemberWithRoom: an upload to a member whose disk is full (a
// tmpfs of 64 KiB over its blob store) is answered 507, and the client stores it on
// another member; once every member is full, the upload fails with the 507 rather than
// retrying for ever. A 500 failed the upload before, and with it a job that had
// trained to its end. Needs root (mount); skipped without.
func TestBlobUploadGoesToAMemberWithRoom(t *testing.T) {
	c := coordtest.New(t, coordtest.Options{Members: 3})
	fill := func(s *coordinator.Server) {
		dir := filepath.Dir(s.BlobPath(strings.Repeat("0", 64)))
		if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
			t.Skipf("mount a small tmpfs over %s: %v", dir, err)
		}
		t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	}
	full := c.Leader()
	fill(full)
	cl := c.Client()
	cl.Addrs = append([]string{full.APIAddr()}, slices.DeleteFunc(cl.Addrs, func(a string) bool { return a == full.APIAddr() })...)
	content := bytes.Repeat([]byte("checkpoint "), 100000) // 1.1 MB
	sha, err := cl.PutBlob(ctx(t), bytes.NewReader(content), int64(len(content)))
	if err != nil {
		t.Fatalf("upload with one member full: %v", err)
	}
	c.WaitFor("the other members to hold the blob", func() bool {
		held := 0
		full.Read(func(st *coordinator.State) {
			if b := st.Blobs[sha]; b != nil {
				held = len(b.Holders)
			}
		})
		return held == 2
	})
	for _, s := range c.Servers {
		if s != full {
			fill(s)
		}
	}
	more := bytes.Repeat([]byte("final model "), 100000)
	_, err = cl.PutBlob(ctx(t), bytes.NewReader(more), int64(len(more)))
	var e *api.Error
	if !errors.As(err, &e) || e.Status != http.StatusInsufficientStorage {
		t.Fatalf("upload with every member full: %v, want a 507", err)
	}
}
