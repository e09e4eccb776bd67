package coordinator_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

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
