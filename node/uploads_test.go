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

	got, err := FetchUpload(ctx, bs, dir, "blob:"+dirSHA)
	if err != nil || got != filepath.Join(dir, dirSHA) {
		t.Fatalf("model: %q, %v", got, err)
	}
	if b, _ := os.ReadFile(filepath.Join(got, "config.json")); string(b) != `{"model_type": "bert"}` {
		t.Errorf("unpacked config.json: %q", b)
	}
	got, err = FetchUpload(ctx, bs, dir, "blob:"+fileSHA+"/vocab.txt")
	if err != nil || got != filepath.Join(dir, fileSHA, "vocab.txt") {
		t.Fatalf("tokenizer: %q, %v", got, err)
	}
	if b, _ := os.ReadFile(got); string(b) != "[PAD]\n[UNK]\n" {
		t.Errorf("unpacked vocab.txt: %q", b)
	}
	if _, err := FetchUpload(ctx, bs, dir, "blob:"+dirSHA); err != nil || bs.fetched != 2 {
		t.Errorf("a second job's fetch of the same model: %v, %d fetches in all, want 2", err, bs.fetched)
	}
	for _, p := range []string{"tiny", "bert-base-uncased", "/models/shared"} {
		if got, err := FetchUpload(ctx, bs, dir, p); got != p || err != nil {
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
		if _, err := FetchUpload(ctx, bs, dir, tc.path); err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%q: %v, want an error saying %q", tc.path, err, tc.says)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("uploads dir holds %d entries, want the 2 good blobs: %v", len(ents), ents)
	}
}
