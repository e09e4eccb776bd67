package coordinator_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/coordinator/coordtest"
)

// trainData is a small valid data file for coordtest.LinePlanner.
const trainData = "ham\thello there\nspam\twin a prize\nham\tsee you at 6\n"

func jobSpecText(train string, nodes, minNodes int) string {
	return "task: classify\ntrain: " + train + "\nepochs: 1\nbatch_size: 8\ncluster:\n  nodes: " +
		strconv.Itoa(nodes) + "\n  min_nodes: " + strconv.Itoa(minNodes) + "\n  rejoin_window: 2s\n"
}

// ctx bounds one call of a test.
func ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// raw sends one request to addr without the client's retries and returns status,
// headers and body.
func raw(t *testing.T, method, addr, path, token string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// putData uploads text as a blob and returns its "blob:<sha>" path.
func putData(t testing.TB, cl *api.Client, text string) string {
	t.Helper()
	sha, err := cl.PutBlob(ctx(t), strings.NewReader(text), int64(len(text)))
	if err != nil {
		t.Fatal(err)
	}
	return "blob:" + sha
}

// scripted is a worker node played by the test through the real client.
type scripted struct {
	t   testing.TB
	id  string
	cl  *api.Client
	idx uint64
}

// nodes registers workers, alive in gossip.
func nodes(c *coordtest.Cluster, ids ...string) []*scripted {
	c.T.Helper()
	var out []*scripted
	for _, id := range ids {
		n := &scripted{t: c.T, id: id, cl: c.Client()}
		n.register()
		c.AliveNode(id)
		out = append(out, n)
	}
	return out
}

func (n *scripted) register() {
	n.t.Helper()
	if err := n.cl.RegisterNode(ctx(n.t), api.RegisterNode{ID: n.id, Name: n.id, RingAddr: "127.0.0.1:70" + n.id[1:]}); err != nil {
		n.t.Fatal(err)
	}
}

// await watches the node's assignment (blocking queries) until cond holds.
func (n *scripted) await(what string, cond func(a *api.Assignment) bool) *api.Assignment {
	n.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		a, err := n.cl.Assignment(ctx(n.t), n.id, n.idx, 2*time.Second)
		if err != nil {
			n.t.Fatalf("%s: assignment: %v", n.id, err)
		}
		n.idx = a.Index
		if cond(a) {
			return a
		}
	}
	n.t.Fatalf("%s: timed out waiting for %s", n.id, what)
	return nil
}

func (n *scripted) awaitGen(job string, gen uint32, rank int) *api.Assignment {
	n.t.Helper()
	return n.await(fmt.Sprintf("generation %d rank %d", gen, rank), func(a *api.Assignment) bool {
		return a.Job != nil && a.Job.ID == job && a.Gen == gen && a.Rank == rank
	})
}

func (n *scripted) awaitIdle() {
	n.t.Helper()
	n.await("release", func(a *api.Assignment) bool { return a.Job == nil })
}

// startThree registers n1, n2 and n3 and runs a job of 3 nodes (min 2) on them.
func startThree(c *coordtest.Cluster) ([]*scripted, string) {
	c.T.Helper()
	ns := nodes(c, "n1", "n2", "n3")
	id := submit(c, jobSpecText(putData(c.T, c.Client(), trainData), 3, 2))
	for r, n := range ns {
		n.awaitGen(id, 1, r)
	}
	return ns, id
}

// name reports a ring error of generation gen that names suspect, as a killed rank's
// neighbours do.
func (n *scripted) name(job string, gen uint32, suspect string) {
	n.t.Helper()
	if err := n.cl.Failure(ctx(n.t), job, api.FailureReport{Node: n.id, Gen: gen, Applied: 7, Error: "peer lost", Suspect: suspect}); err != nil {
		n.t.Fatal(err)
	}
}

func (n *scripted) fail(job string, gen uint32, msg string) error {
	return n.cl.Failure(ctx(n.t), job, api.FailureReport{Node: n.id, Gen: gen, Applied: 7, Error: msg})
}

// conflict asserts err is a 409 whose message says want.
func conflict(t *testing.T, err error, want string) {
	t.Helper()
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict || !strings.Contains(ae.Message, want) {
		t.Fatalf("got %v, want a 409 saying %q", err, want)
	}
}

func submit(c *coordtest.Cluster, spec string) string {
	c.T.Helper()
	id, err := c.Client().Submit(ctx(c.T), api.SubmitRequest{Spec: spec})
	if err != nil {
		c.T.Fatal(err)
	}
	return id
}

func job(c *coordtest.Cluster, id string) *api.Job {
	c.T.Helper()
	j, err := c.Client().Job(ctx(c.T), id)
	if err != nil {
		c.T.Fatal(err)
	}
	return j
}

// settle gives the leader's loop time to act on what it should not act on.
func settle() { time.Sleep(300 * time.Millisecond) }

// shortCtx bounds a call expected to fail (after a few tries, on a loaded machine).
func shortCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}
