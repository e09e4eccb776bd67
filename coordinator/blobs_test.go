package coordinator

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/bertnode/bertnode/api"
)

// TestBlobsReplicateAndSurvive: a blob uploaded to a follower reaches every member's
// store and the state's holder list; with the uploader gone, the others serve it. A
// body that does not hash to its name is refused and not stored.
func TestBlobsReplicateAndSurvive(t *testing.T) {
	c := newCluster(t, 3, nil)
	up := c.follower()
	content := bytes.Repeat([]byte("model weights "), 10000)
	sha, err := c.client(up).PutBlob(ctx(t), bytes.NewReader(content), int64(len(content)))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	if sha != hex.EncodeToString(sum[:]) {
		t.Fatalf("PutBlob returned %s", sha)
	}
	c.waitFor("every member to hold the blob", func() bool {
		for _, s := range c.servers {
			if n, ok := s.blobs.size(sha); !ok || n != int64(len(content)) {
				return false
			}
			held := false
			s.Read(func(st *State) { held = st.Blobs[sha] != nil && len(st.Blobs[sha].Holders) == 3 })
			if !held {
				return false
			}
		}
		return true
	})
	c.stop(c.index(up), false)
	for _, s := range c.servers {
		if s == nil {
			continue
		}
		rc, size, err := c.client(s).GetBlob(ctx(t), sha)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, content) || size != int64(len(content)) {
			t.Fatalf("member %s serves %d bytes (size %d), %v", s.ID(), len(got), size, err)
		}
		code, h, _ := raw(t, "HEAD", s.APIAddr(), "/v1/blobs/"+sha, c.secret.Token(), nil)
		if code != 200 || h.Get("Content-Length") != strconv.Itoa(len(content)) {
			t.Fatalf("HEAD: %d, length %q", code, h.Get("Content-Length"))
		}
	}

	other := c.leader()
	wrong := sha256.Sum256([]byte("something else"))
	code, _, body := raw(t, "PUT", other.APIAddr(), "/v1/blobs/"+hex.EncodeToString(wrong[:]), c.secret.Token(), []byte("not that"))
	var e api.Error
	json.Unmarshal(body, &e)
	if code != http.StatusBadRequest || e.Field != "sha" {
		t.Fatalf("sha mismatch: %d %s", code, body)
	}
	if _, ok := other.blobs.size(hex.EncodeToString(wrong[:])); ok {
		t.Fatal("a mismatching blob was stored")
	}
	entries, _ := os.ReadDir(other.blobs.dir)
	if i := slices.IndexFunc(entries, func(e os.DirEntry) bool { return e.Name() != sha }); i >= 0 {
		t.Fatalf("the store keeps %s", entries[i].Name())
	}
	var ae *api.Error
	if _, _, err := c.client().GetBlob(ctx(t), hex.EncodeToString(wrong[:])); !errors.As(err, &ae) || ae.Status != http.StatusNotFound {
		t.Fatalf("an unknown blob: %v", err)
	}
}
