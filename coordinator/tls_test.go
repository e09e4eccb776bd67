package coordinator_test

import (
	"strings"
	"testing"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/coordinator/coordtest"
)

// TestMutualTLS: members talk raft, forwarding and blob replication over mutual TLS;
// a client with a certificate of the cluster's CA is served, one without TLS or with
// another CA's certificate is not.
func TestMutualTLS(t *testing.T) {
	pki := coordtest.TLS(t, 3)
	c := coordtest.New(t, coordtest.Options{Members: 2, TLS: pki})
	f := c.Follower()
	cl := c.Client(f)
	data := putData(t, cl, trainData) // to the follower, replicated to the leader
	if _, err := cl.Submit(ctx(t), api.SubmitRequest{Spec: jobSpecText(data, 1, 1)}); err != nil {
		t.Fatalf("a write forwarded over TLS: %v", err)
	}
	c.WaitFor("the blob on the leader", func() bool {
		_, _, err := c.Client(c.Leader()).GetBlob(ctx(t), strings.TrimPrefix(data, "blob:"))
		return err == nil
	})

	plain := &api.Client{Addrs: c.Addrs(), Token: c.Secret.Token(), MaxBackoff: 100 * time.Millisecond}
	if _, err := plain.Status(shortCtx(t)); err == nil {
		t.Fatal("a plain HTTP client was served")
	}
	stranger := &api.Client{Addrs: c.Addrs(), Token: c.Secret.Token(), TLS: coordtest.TLS(t, 1)[0]}
	if _, err := stranger.Status(shortCtx(t)); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("another CA's client: %v", err)
	}
}
