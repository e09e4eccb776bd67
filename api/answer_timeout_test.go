package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// silentThenGood are the addresses of two members: the first takes a request and
// never answers (one cut off the network), the second answers every request with
// status c2 leading.
func silentThenGood(t *testing.T) []string {
	hang := make(chan struct{})
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(Status{Leader: "c2"})
	}))
	t.Cleanup(func() {
		close(hang)
		silent.Close()
		good.Close()
	})
	return []string{strings.TrimPrefix(silent.URL, "http://"), strings.TrimPrefix(good.URL, "http://")}
}

// A member that takes the request and never answers (one cut off the network) costs a
// try AnswerTimeout, then the client moves on to the next member.
func TestSilentMemberIsPassedOver(t *testing.T) {
	c := &Client{Addrs: silentThenGood(t), AnswerTimeout: 200 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	st, err := c.Status(ctx)
	if err != nil || st.Leader != "c2" {
		t.Fatalf("status: %+v, %v", st, err)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 5*time.Second {
		t.Fatalf("answered after %v; want about one AnswerTimeout", d)
	}
}

// A call made with WithAnswerTimeout passes a silent member over after that, not the
// client's AnswerTimeout.
func TestWithAnswerTimeoutShortensOneCall(t *testing.T) {
	c := &Client{Addrs: silentThenGood(t), AnswerTimeout: time.Minute}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	if err := c.Failure(WithAnswerTimeout(ctx, 200*time.Millisecond), "job-1", FailureReport{Node: "n1", Gen: 1, Error: "x"}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("answered after %v; want about 200ms", d)
	}
}
