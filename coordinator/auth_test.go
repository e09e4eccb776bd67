package coordinator_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/coordinator"
	"github.com/bertnode/bertnode/coordinator/coordtest"
	"github.com/bertnode/bertnode/internal/clusterkey"
	"github.com/hashicorp/raft"
)

// TestAPIRefusesWithoutToken: every route family answers 401, as JSON, without the
// bearer token or with a wrong one, and does not with the right one; the read-only
// token gets 403 but for reads of the catalog and /metrics.
func TestAPIRefusesWithoutToken(t *testing.T) {
	c := coordtest.New(t, coordtest.Options{})
	s := c.Servers[0]
	s.Handle("GET /v1/datasets/{plan}/blocks/{i}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("block")) }))
	sha := strings.Repeat("ab", 32)
	routes := [][2]string{
		{"GET", "/v1/status"}, {"GET", "/v1/cluster"}, {"GET", "/v1/members"}, {"POST", "/v1/members"},
		{"DELETE", "/v1/members/x"}, {"GET", "/v1/nodes"}, {"POST", "/v1/nodes"}, {"GET", "/v1/nodes/n1"},
		{"GET", "/v1/nodes/n1/assignment"}, {"POST", "/v1/nodes/n1/drain"}, {"DELETE", "/v1/nodes/n1"}, {"GET", "/v1/jobs"}, {"POST", "/v1/jobs"}, {"GET", "/v1/jobs/job-1"},
		{"GET", "/v1/jobs/job-1/logs"}, {"POST", "/v1/jobs/job-1/cancel"}, {"POST", "/v1/jobs/job-1/progress"},
		{"POST", "/v1/jobs/job-1/failure"}, {"POST", "/v1/jobs/job-1/checkpoint"}, {"POST", "/v1/jobs/job-1/result"},
		{"POST", "/v1/jobs/job-1/done"}, {"PUT", "/v1/blobs/" + sha}, {"GET", "/v1/blobs/" + sha},
		{"HEAD", "/v1/blobs/" + sha}, {"POST", "/v1/blobs/" + sha + "/holders"}, {"GET", "/metrics"},
		{"GET", "/v1/datasets/p/blocks/0"}, {"GET", "/v1/self"},
	}
	wrong, _ := clusterkey.Generate()
	for _, rt := range routes {
		for _, token := range []string{"", wrong.Token(), c.Secret.Token() + "x"} {
			code, h, body := raw(t, rt[0], s.APIAddr(), rt[1], token, []byte("{}"))
			if code != http.StatusUnauthorized {
				t.Errorf("%s %s with token %q: %d, want 401", rt[0], rt[1], token, code)
				continue
			}
			var e api.Error
			if rt[0] != "HEAD" && (json.Unmarshal(body, &e) != nil || e.Message == "" || h.Get("Content-Type") != "application/json") {
				t.Errorf("%s %s: 401 body %q is not an api.Error", rt[0], rt[1], body)
			}
		}
		if code, _, body := raw(t, rt[0], s.APIAddr(), rt[1], c.Secret.Token(), []byte("{}")); code == http.StatusUnauthorized {
			t.Errorf("%s %s with the token: 401 %s", rt[0], rt[1], body)
		}
		// The read-only token reads the catalog and /metrics, and nothing else.
		reads := (rt[0] == "GET" || rt[0] == "HEAD") && !strings.HasPrefix(rt[1], "/v1/blobs/") && !strings.HasPrefix(rt[1], "/v1/datasets/")
		code, _, body := raw(t, rt[0], s.APIAddr(), rt[1], c.Secret.ReadToken(), []byte("{}"))
		var e api.Error
		switch {
		case reads && (code == http.StatusUnauthorized || code == http.StatusForbidden):
			t.Errorf("%s %s with the read-only token: %d %s", rt[0], rt[1], code, body)
		case !reads && code != http.StatusForbidden:
			t.Errorf("%s %s with the read-only token: %d, want 403", rt[0], rt[1], code)
		case !reads && rt[0] != "HEAD" && (json.Unmarshal(body, &e) != nil || !strings.Contains(e.Message, "read-only token")):
			t.Errorf("%s %s with the read-only token: 403 body %q does not say why", rt[0], rt[1], body)
		}
	}
	if code, _, body := raw(t, "GET", s.APIAddr(), "/metrics", c.Secret.ReadToken(), nil); code != 200 || !bytes.Contains(body, []byte("bertnode_jobs")) {
		t.Errorf("/metrics with the read-only token: %d", code)
	}
	code, _, body := raw(t, "GET", s.APIAddr(), "/metrics", c.Secret.Token(), nil)
	for _, want := range []string{`bertnode_raft_state{state="Leader"} 1`, "bertnode_raft_applied_index", `bertnode_jobs{state="pending"}`,
		`bertnode_nodes{health="alive"}`, "bertnode_nodes_drained 0", "bertnode_nodes_reaped_total 0", `bertnode_http_requests_total{code="401",route="GET /v1/status"} 3`, "bertnode_http_request_seconds_bucket"} {
		if code != 200 || !bytes.Contains(body, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestRaftRefusesWrongKey: a coordinator with another cluster's secret can neither
// join nor, added as a voter by hand, receive a single log entry.
func TestRaftRefusesWrongKey(t *testing.T) {
	c := coordtest.New(t, coordtest.Options{Members: 3})
	other, _ := clusterkey.Generate()
	cfg := c.Config(0, false)
	cfg.DataDir, cfg.RaftAddr, cfg.APIAddr, cfg.Secret = t.TempDir(), "127.0.0.1:0", "127.0.0.1:0", other
	cfg.Join = []string{c.Leader().APIAddr()}
	out, err := coordinator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Kill()
	l := c.Leader()
	if err := l.Raft().AddVoter("intruder", raft.ServerAddress(out.RaftAddr()), 0, 10*time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := c.Client().RegisterNode(ctx(t), api.RegisterNode{ID: "n" + string(rune('1'+i)), RingAddr: "127.0.0.1:9000"}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond)
	if last := out.Raft().LastIndex(); last != 0 || out.Raft().AppliedIndex() != 0 {
		t.Fatalf("the member with the wrong key has raft index %d, applied %d", last, out.Raft().AppliedIndex())
	}
	l.Read(func(st *coordinator.State) {
		if st.Members[out.ID()] != nil {
			t.Fatalf("the member with the wrong key joined: %+v", st.Members)
		}
	})
}
