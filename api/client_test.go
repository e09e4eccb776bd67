package api_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/coordinator/coordtest"
)

// deadAddr is a loopback address nobody listens on.
func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestClientFollowsTheLeader: the client skips addresses that do not answer, learns
// the leader from the answers and keeps using it when the member it first reached is
// gone.
func TestClientFollowsTheLeader(t *testing.T) {
	c := coordtest.New(t, coordtest.Options{Members: 3})
	f := c.Follower()
	cl := &api.Client{Addrs: []string{deadAddr(t), f.APIAddr()}, Token: c.Secret.Token()}
	st, err := cl.Status(c.Context())
	if err != nil || len(st.Members) != 3 {
		t.Fatalf("status: %+v, %v", st, err)
	}
	c.Stop(c.Index(f))
	if err := cl.RegisterNode(c.Context(), api.RegisterNode{ID: "n1", RingAddr: "127.0.0.1:7001"}); err != nil {
		t.Fatalf("with its only live address gone, the client did not use the leader: %v", err)
	}

}

// TestClientFailover: a write goes through while the leader is replaced.
func TestClientFailover(t *testing.T) {
	c := coordtest.New(t, coordtest.Options{Members: 3})
	cl := c.Client()
	if err := cl.RegisterNode(c.Context(), api.RegisterNode{ID: "n1", RingAddr: "127.0.0.1:7001"}); err != nil {
		t.Fatal(err)
	}
	c.Stop(c.Index(c.Leader()))
	if err := cl.RegisterNode(c.Context(), api.RegisterNode{ID: "n2", RingAddr: "127.0.0.1:7002"}); err != nil {
		t.Fatalf("write after the leader left: %v", err)
	}
	ns, err := cl.Nodes(c.Context())
	if err != nil || len(ns) != 2 {
		t.Fatalf("nodes: %+v, %v", ns, err)
	}
}

// TestClientErrors: 4xx answers are *api.Error with status and field; nothing
// reachable ends with ctx, saying what failed last.
func TestClientErrors(t *testing.T) {
	c := coordtest.New(t, coordtest.Options{})
	cl := c.Client()
	var ae *api.Error
	if _, err := cl.Job(c.Context(), "job-9"); !errors.As(err, &ae) || ae.Status != http.StatusNotFound || ae.Error() != `no job "job-9"` {
		t.Fatalf("unknown job: %#v", err)
	}
	if _, err := cl.Submit(c.Context(), api.SubmitRequest{Spec: "task: x\ntrain: a"}); !errors.As(err, &ae) || ae.Status != 400 || ae.Field != "task" {
		t.Fatalf("bad spec: %#v", err)
	}
	bad := &api.Client{Addrs: c.Addrs(), Token: "nope"}
	if _, err := bad.Status(c.Context()); !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
		t.Fatalf("wrong token: %v", err)
	}
	nowhere := &api.Client{Addrs: []string{deadAddr(t), deadAddr(t)}, Token: c.Secret.Token()}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := nowhere.Status(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("nothing reachable: %v", err)
	}
}

// TestClientBlobs: an upload from a reader that cannot seek is spooled and hashed;
// a download that does not hash to its name fails at its end.
func TestClientBlobs(t *testing.T) {
	c := coordtest.New(t, coordtest.Options{})
	cl := c.Client()
	content := bytes.Repeat([]byte("0123456789"), 50000)
	sha, err := cl.PutBlob(c.Context(), io.MultiReader(bytes.NewReader(content)), -1)
	if err != nil {
		t.Fatal(err)
	}
	rc, size, err := cl.GetBlob(c.Context(), sha)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, content) || size != int64(len(content)) {
		t.Fatalf("round trip: %d bytes, size %d, %v", len(got), size, err)
	}
	if _, err := cl.PutBlob(c.Context(), bytes.NewReader(content), 3); err == nil {
		t.Fatal("a size that does not match the content was accepted")
	}
	// Someone corrupts the stored file.
	path := c.Servers[0].BlobPath(sha)
	if err := os.WriteFile(path, bytes.Repeat([]byte("x"), len(content)), 0o600); err != nil {
		t.Fatal(err)
	}
	rc, _, err = cl.GetBlob(c.Context(), sha)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(rc)
	rc.Close()
	if err == nil || !strings.Contains(err.Error(), "hashes to") {
		t.Fatalf("a corrupt download: %v", err)
	}
}
