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

// A member that takes the request and never answers (one cut off the network) costs a
// try AnswerTimeout, then the client moves on to the next member.
func TestSilentMemberIsPassedOver(t *testing.T) {
	hang := make(chan struct{})
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer silent.Close()
	defer close(hang)
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(Status{Leader: "c2"})
	}))
	defer good.Close()
	c := &Client{Addrs: []string{strings.TrimPrefix(silent.URL, "http://"), strings.TrimPrefix(good.URL, "http://")},
		AnswerTimeout: 200 * time.Millisecond}
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
	hang := make(chan struct{})
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer silent.Close()
	defer close(hang)
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer good.Close()
	c := &Client{Addrs: []string{strings.TrimPrefix(silent.URL, "http://"), strings.TrimPrefix(good.URL, "http://")},
		AnswerTimeout: time.Minute}
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
