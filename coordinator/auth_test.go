package coordinator

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/internal/clusterkey"
	"github.com/hashicorp/raft"
)

func raftAddr(s string) raft.ServerAddress { return raft.ServerAddress(s) }

// TestAPIRefusesWithoutToken: every route family answers 401, as JSON, without the
// bearer token or with a wrong one, and does not with the right one.
func TestAPIRefusesWithoutToken(t *testing.T) {
	c := newCluster(t, 1, nil)
	s := c.servers[0]
	s.Handle("GET /v1/datasets/{plan}/blocks/{i}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("block")) }))
	sha := strings.Repeat("ab", 32)
	routes := [][2]string{
		{"GET", "/v1/status"}, {"GET", "/v1/cluster"}, {"GET", "/v1/members"}, {"POST", "/v1/members"},
		{"DELETE", "/v1/members/x"}, {"GET", "/v1/nodes"}, {"POST", "/v1/nodes"}, {"GET", "/v1/nodes/n1"},
		{"GET", "/v1/nodes/n1/assignment"}, {"GET", "/v1/jobs"}, {"POST", "/v1/jobs"}, {"GET", "/v1/jobs/job-1"},
		{"GET", "/v1/jobs/job-1/logs"}, {"POST", "/v1/jobs/job-1/cancel"}, {"POST", "/v1/jobs/job-1/progress"},
		{"POST", "/v1/jobs/job-1/failure"}, {"POST", "/v1/jobs/job-1/checkpoint"}, {"POST", "/v1/jobs/job-1/result"},
		{"POST", "/v1/jobs/job-1/done"}, {"PUT", "/v1/blobs/" + sha}, {"GET", "/v1/blobs/" + sha},
		{"HEAD", "/v1/blobs/" + sha}, {"POST", "/v1/blobs/" + sha + "/holders"}, {"GET", "/metrics"},
		{"GET", "/v1/datasets/p/blocks/0"},
	}
	wrong, _ := clusterkey.Generate()
	for _, rt := range routes {
		for _, token := range []string{"", wrong.Token(), c.secret.Token() + "x"} {
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
		if code, _, body := raw(t, rt[0], s.APIAddr(), rt[1], c.secret.Token(), []byte("{}")); code == http.StatusUnauthorized {
			t.Errorf("%s %s with the token: 401 %s", rt[0], rt[1], body)
		}
	}
	code, _, body := raw(t, "GET", s.APIAddr(), "/metrics", c.secret.Token(), nil)
	for _, want := range []string{`bertnode_raft_state{state="Leader"} 1`, "bertnode_raft_applied_index", `bertnode_jobs{state="pending"}`,
		`bertnode_nodes{health="alive"}`, `bertnode_http_requests_total{code="401",route="GET /v1/status"} 3`, "bertnode_http_request_seconds_bucket"} {
		if code != 200 || !bytes.Contains(body, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestRaftTransportHandshake: connections between holders of the same key go
// through; with another key the dialer fails and the acceptor never hands the
// connection to raft, nor one from a stranger speaking another protocol.
func TestRaftTransportHandshake(t *testing.T) {
	log, _ := testLogger()
	key := []byte("0123456789abcdef0123456789abcdef")
	l, err := newStreamLayer("127.0.0.1:0", "", key, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	good, err := newStreamLayer("127.0.0.1:0", "", key, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	c, err := good.Dial(raftAddr(l.Addr().String()), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("raft bytes"))
	select {
	case ac := <-accepted:
		buf := make([]byte, 10)
		if _, err := io.ReadFull(ac, buf); err != nil || string(buf) != "raft bytes" {
			t.Fatalf("accepted connection reads %q, %v", buf, err)
		}
		ac.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("the right key's connection was not accepted")
	}
	c.Close()

	bad, err := newStreamLayer("127.0.0.1:0", "", []byte("another key, another cluster...."), nil, log)
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if _, err := bad.Dial(raftAddr(l.Addr().String()), time.Second); !errors.Is(err, errAuth) {
		t.Fatalf("dial with a wrong key: %v, want %v", err, errAuth)
	}
	stranger, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	stranger.Write(append([]byte{0, 1, 2}, make([]byte, 100)...)) // raft's own RPC framing, no handshake
	if n, err := stranger.Read(make([]byte, 1)); err == nil {
		t.Fatalf("a stranger got %d bytes back", n)
	}
	stranger.Close()
	select {
	case ac := <-accepted:
		t.Fatalf("a connection without the key reached raft: %v", ac.RemoteAddr())
	case <-time.After(300 * time.Millisecond):
	}
}

// TestRaftRefusesWrongKey: a coordinator with another cluster's secret can neither
// join nor, added as a voter by hand, receive a single log entry.
func TestRaftRefusesWrongKey(t *testing.T) {
	c := newCluster(t, 3, nil)
	other, _ := clusterkey.Generate()
	cfg := c.config(0, false)
	cfg.DataDir, cfg.RaftAddr, cfg.APIAddr, cfg.Secret = t.TempDir(), "127.0.0.1:0", "127.0.0.1:0", other
	cfg.Join = []string{c.leader().APIAddr()}
	out, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer out.close(false)
	l := c.leader()
	if err := l.raft.AddVoter("intruder", out.trans.LocalAddr(), 0, 10*time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := c.client().RegisterNode(ctx(t), api.RegisterNode{ID: "n" + string(rune('1'+i)), RingAddr: "127.0.0.1:9000"}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond)
	if last := out.raft.LastIndex(); last != 0 || out.fsm.Index() != 0 {
		t.Fatalf("the member with the wrong key has raft index %d, applied %d", last, out.fsm.Index())
	}
	l.Read(func(st *State) {
		if st.Members[out.ID()] != nil {
			t.Fatalf("the member with the wrong key joined: %+v", st.Members)
		}
	})
}
