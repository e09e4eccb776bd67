package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/internal/tarball"
)

// blobStore is a coordinator's blob store as FetchUpload sees it, counting fetches.
type blobStore struct {
	blobs   map[string][]byte
	fetched int
}

func (b *blobStore) put(t *testing.T, data []byte) string {
	sum := sha256.Sum256(data)
	sha := hex.EncodeToString(sum[:])
	b.blobs[sha] = data
	return sha
}

func (b *blobStore) GetBlob(_ context.Context, sha string) (io.ReadCloser, int64, error) {
	d, ok := b.blobs[sha]
	if !ok {
		return nil, 0, &api.Error{Status: http.StatusNotFound, Message: "no such blob"}
	}
	b.fetched++
	return io.NopCloser(bytes.NewReader(d)), int64(len(d)), nil
}

func (b *blobStore) DatasetBlock(context.Context, string, int, http.Header) (*http.Response, error) {
	panic("not used")
}

// TestFetchUpload: an uploaded model directory and a packed file are fetched once,
// unpacked whole, and reused; other paths pass through; bad references and broken
// blobs are errors that leave nothing behind.
func TestFetchUpload(t *testing.T) {
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "config.json"), []byte(`{"model_type": "bert"}`), 0o644)
	os.WriteFile(filepath.Join(src, "vocab.txt"), []byte("[PAD]\n[UNK]\n"), 0o644)
	var dirTar, fileTar bytes.Buffer
	if err := tarball.Pack(src, &dirTar); err != nil {
		t.Fatal(err)
	}
	if err := tarball.PackFile(filepath.Join(src, "vocab.txt"), &fileTar); err != nil {
		t.Fatal(err)
	}
	bs := &blobStore{blobs: map[string][]byte{}}
	dirSHA, fileSHA := bs.put(t, dirTar.Bytes()), bs.put(t, fileTar.Bytes())
	broken := bs.put(t, []byte("not a tar"))
	dir := filepath.Join(t.TempDir(), "uploads")
	ctx := context.Background()
	job := &api.Job{ID: "job-1"}

	got, err := FetchUpload(ctx, bs, dir, "blob:"+dirSHA, job)
	if err != nil || got != filepath.Join(dir, dirSHA) {
		t.Fatalf("model: %q, %v", got, err)
	}
	if b, _ := os.ReadFile(filepath.Join(got, "config.json")); string(b) != `{"model_type": "bert"}` {
		t.Errorf("unpacked config.json: %q", b)
	}
	got, err = FetchUpload(ctx, bs, dir, "blob:"+fileSHA+"/vocab.txt", job)
	if err != nil || got != filepath.Join(dir, fileSHA, "vocab.txt") {
		t.Fatalf("tokenizer: %q, %v", got, err)
	}
	if b, _ := os.ReadFile(got); string(b) != "[PAD]\n[UNK]\n" {
		t.Errorf("unpacked vocab.txt: %q", b)
	}
	if _, err := FetchUpload(ctx, bs, dir, "blob:"+dirSHA, job); err != nil || bs.fetched != 2 {
		t.Errorf("a second job's fetch of the same model: %v, %d fetches in all, want 2", err, bs.fetched)
	}
	for _, p := range []string{"tiny", "bert-base-uncased", "/models/shared"} {
		if got, err := FetchUpload(ctx, bs, dir, p, job); got != p || err != nil {
			t.Errorf("%q came back as %q, %v", p, got, err)
		}
	}
	for _, tc := range []struct{ path, says string }{
		{"blob:abc", "want blob:<sha256>"},
		{"blob:" + dirSHA + "/../x", "want blob:<sha256>"},
		{"blob:" + dirSHA + "/", "want blob:<sha256>"},
		{"blob:" + strings.Repeat("0", 64), "no such blob"},
		{"blob:" + broken, "tarball"},
	} {
		if _, err := FetchUpload(ctx, bs, dir, tc.path, job); err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%q: %v, want an error saying %q", tc.path, err, tc.says)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 4 {
		t.Errorf("uploads dir holds %d entries, want the 2 good blobs and their lists of jobs: %v", len(ents), ents)
	}
}

// The uploads a node unpacked go once every job that used them was deleted, as those
// jobs' directories do; an upload a live job used stays, and one a deleted job of
// another cluster (same ID, another submission) used; leftovers of unpacks and writes
// cut short, and uploads unpacked before lists of jobs were kept, go.
func TestPruneUploads(t *testing.T) {
	bs := &blobStore{blobs: map[string][]byte{}}
	var shas []string
	for _, name := range []string{"shared", "alone", "other-cluster", "before-lists"} {
		src := t.TempDir()
		os.WriteFile(filepath.Join(src, "config.json"), []byte(name), 0o644)
		var tar bytes.Buffer
		if err := tarball.Pack(src, &tar); err != nil {
			t.Fatal(err)
		}
		shas = append(shas, bs.put(t, tar.Bytes()))
	}
	shared, alone, other, before := shas[0], shas[1], shas[2], shas[3]
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	j1, j2, j3 := &api.Job{ID: "job-1", Submitted: at}, &api.Job{ID: "job-2", Submitted: at.Add(time.Hour)}, &api.Job{ID: "job-3", Submitted: at}
	dir := filepath.Join(t.TempDir(), "uploads")
	ctx := context.Background()
	for _, u := range []struct {
		job *api.Job
		sha string
	}{{j1, shared}, {j2, shared}, {j1, alone}, {j3, other}, {j1, before}} {
		if _, err := FetchUpload(ctx, bs, dir, "blob:"+u.sha, u.job); err != nil {
			t.Fatal(err)
		}
	}
	os.Remove(filepath.Join(dir, before+usersExt))
	os.Mkdir(filepath.Join(dir, ".unpack-123"), 0o755)
	os.WriteFile(filepath.Join(dir, "."+shared+usersExt+".tmp-456"), nil, 0o644)
	exists := func(name string) bool { _, err := os.Stat(filepath.Join(dir, name)); return err == nil }

	deleted := map[string]time.Time{"job-1": at, "job-3": at.Add(time.Minute)}
	removed, err := pruneUploads(dir, deleted)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{shared, shared + usersExt, other, other + usersExt} {
		if !exists(name) {
			t.Errorf("%s removed: a job not deleted used it", name)
		}
	}
	for _, name := range []string{alone, alone + usersExt, before, ".unpack-123", "." + shared + usersExt + ".tmp-456"} {
		if exists(name) {
			t.Errorf("%s kept (removed: %v)", name, removed)
		}
	}
	deleted["job-2"] = j2.Submitted
	if _, err := pruneUploads(dir, deleted); err != nil {
		t.Fatal(err)
	}
	if exists(shared) || exists(shared+usersExt) {
		t.Error("the shared upload kept once both its jobs were deleted")
	}
	// A later job that names a removed upload fetches it again.
	if _, err := FetchUpload(ctx, bs, dir, "blob:"+alone, &api.Job{ID: "job-4"}); err != nil || !exists(alone) {
		t.Fatalf("fetching a removed upload again: %v", err)
	}
}
