package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The headers every coordinator answer carries.
const (
	HeaderIndex  = "X-Bertnode-Index"  // the raft index the answer reflects
	HeaderLeader = "X-Bertnode-Leader" // the leader's API address, when known
	HeaderStale  = "X-Bertnode-Stale"  // "true" when a follower answered from its own copy
)

// Client talks to the coordinators. It sends each request to the leader when it knows
// it (from the X-Bertnode-Leader header), else to the next of Addrs; on a connection
// error or a 502/503/504 (an election, a member going away) it tries the next address
// after a capped backoff, until ctx ends (or GiveUp). A 507 (a member whose disk is
// full) it tries on the others until each has answered so. A 4xx comes back as an
// *Error.
//
// Writes are retried too: one that reached a leader which then lost its leadership
// before answering may be applied twice (a job submitted twice, a report counted
// once more); every report the nodes send is safe to repeat.
type Client struct {
	Addrs []string // host:port or http(s)://host:port, any member
	Token string   // the cluster's API token (clusterkey.Secret.Token)
	TLS   *tls.Config
	// HTTP is the client used; nil: one made from TLS, without a timeout (ctx bounds
	// each call, and blocking queries last as long as they wait).
	HTTP *http.Client
	// Stale lets reads be answered by any member from its own copy.
	Stale bool
	// MaxBackoff caps the wait between tries (default 2s).
	MaxBackoff time.Duration
	// AnswerTimeout bounds how long one try waits for a member's answer to begin
	// (beyond a blocking query's wait) before it moves on to the next member
	// (default 10s): a member cut off the network answers nothing, and without it a
	// request would hang until the partition heals. Uploads are not bounded.
	AnswerTimeout time.Duration
	// GiveUp bounds how long a call goes on trying after its first failed try: then
	// it returns the last failure. 0: until ctx ends, as a node does, which must wait
	// for the coordinators; a person's command should rather say that they cannot
	// answer (most of them down: no leader) than hang.
	GiveUp time.Duration

	mu     sync.Mutex
	leader string
	next   int
	hc     *http.Client
}

type answerTimeoutKey struct{}

// WithAnswerTimeout is ctx with the calls made with it waiting d for each member's
// answer to begin instead of the client's AnswerTimeout: for a short report whose
// delay costs, which should rather move on to another member quickly (a node's
// failure report: the ring waits for the reconfiguration it starts).
func WithAnswerTimeout(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, answerTimeoutKey{}, d)
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hc == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = c.TLS.Clone() // net/http changes the one it holds
		t.MaxIdleConnsPerHost = 16
		c.hc = &http.Client{Transport: t}
	}
	return c.hc
}

func (c *Client) base(addr string) string {
	if strings.HasPrefix(addr, "http://") || strings.HasPrefix(addr, "https://") {
		return strings.TrimSuffix(addr, "/")
	}
	if c.TLS != nil {
		return "https://" + addr
	}
	return "http://" + addr
}

// target is the address to try next: the leader if known, else the next of Addrs.
func (c *Client) target() (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leader != "" {
		return c.leader, nil
	}
	if len(c.Addrs) == 0 {
		return "", errors.New("coordinator client: no coordinator address")
	}
	a := c.Addrs[c.next%len(c.Addrs)]
	return a, nil
}

// failed forgets addr as the leader and moves on to the next address.
func (c *Client) failed(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leader == addr {
		c.leader = ""
	}
	c.next++
}

func (c *Client) sawLeader(h http.Header) {
	if l := h.Get(HeaderLeader); l != "" {
		c.mu.Lock()
		c.leader = l
		c.mu.Unlock()
	}
}

// request is one call: body is resent as is on every try.
type request struct {
	method string
	path   string
	query  url.Values
	body   func() (io.Reader, error) // nil: none
	ctype  string
	header http.Header
}

// Do sends a request, retrying as the Client's doc says, and returns a response with
// a 2xx status (the caller closes its body) or an error: *Error for a 4xx.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, body []byte) (*http.Response, error) {
	r := request{method: method, path: path, query: query}
	if body != nil {
		r.body = func() (io.Reader, error) { return bytes.NewReader(body), nil }
		r.ctype = "application/json"
	}
	return c.do(ctx, r)
}

func (c *Client) do(ctx context.Context, r request) (*http.Response, error) {
	backoff := 50 * time.Millisecond
	maxBackoff := c.MaxBackoff
	if maxBackoff <= 0 {
		maxBackoff = 2 * time.Second
	}
	q := url.Values{}
	for k, v := range r.query {
		q[k] = v
	}
	if c.Stale && r.method == http.MethodGet {
		q.Set("stale", "1")
	}
	var last error
	var answer error          // the last failure a member answered (says more than a refused connection)
	var failing time.Time     // since the first failed try
	full := map[string]bool{} // the members that answered 507
	for attempt := 0; ; attempt++ {
		addr, err := c.target()
		if err != nil {
			return nil, err
		}
		resp, err := c.try(ctx, addr, r, q)
		if err == nil {
			c.sawLeader(resp.Header)
			if resp.StatusCode < 300 {
				return resp, nil
			}
			e := readError(resp)
			if resp.StatusCode < 500 {
				return nil, e
			}
			switch resp.StatusCode {
			case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			case http.StatusInsufficientStorage:
				if full[c.base(addr)] = true; len(full) >= len(c.Addrs) {
					return nil, e
				}
			default:
				return nil, e
			}
			err = e
		}
		if ctx.Err() != nil {
			if last == nil {
				last = err
			}
			return nil, fmt.Errorf("coordinator: %s %s: %w (last: %v)", r.method, r.path, ctx.Err(), last)
		}
		last = fmt.Errorf("%s: %w", addr, err)
		if errors.As(err, new(*Error)) {
			answer = last
		}
		c.failed(addr)
		if failing.IsZero() {
			failing = time.Now()
		} else if c.GiveUp > 0 && time.Since(failing) >= c.GiveUp {
			if answer != nil {
				last = answer
			}
			return nil, fmt.Errorf("coordinator: %s %s: still failing after %v: giving up (last: %v)", r.method, r.path, c.GiveUp, last)
		}
		// A full round of addresses failed: wait before the next.
		if n := max(len(c.Addrs), 1); attempt%n == n-1 {
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return nil, fmt.Errorf("coordinator: %s %s: %w (last: %v)", r.method, r.path, ctx.Err(), last)
			}
			backoff = min(2*backoff, maxBackoff)
		}
	}
}

func (c *Client) try(ctx context.Context, addr string, r request, q url.Values) (*http.Response, error) {
	u := c.base(addr) + r.path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var body io.Reader
	if r.body != nil {
		var err error
		if body, err = r.body(); err != nil {
			return nil, err
		}
	}
	limit := c.AnswerTimeout
	if d, ok := ctx.Value(answerTimeoutKey{}).(time.Duration); ok {
		limit = d
	}
	ctx, cancel := context.WithCancel(ctx)
	if r.method != http.MethodPut { // an upload takes as long as it takes
		wait, _ := time.ParseDuration(q.Get("wait"))
		if limit <= 0 {
			limit = 10 * time.Second
		}
		t := time.AfterFunc(wait+limit, cancel)
		defer t.Stop()
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		cancel()
		return nil, err
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	if r.ctype != "" {
		req.Header.Set("Content-Type", r.ctype)
	}
	if sz, ok := body.(interface{ Len() int }); ok && body != nil {
		req.ContentLength = int64(sz.Len())
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := c.httpClient().Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = cancelOnClose{resp.Body, cancel}
	return resp, nil
}

// cancelOnClose ends a try's context when its answer's body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

func readError(resp *http.Response) *Error {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &Error{}
	if json.Unmarshal(b, e) != nil || e.Message == "" {
		e.Message = strings.TrimSpace(string(b))
		if e.Message == "" {
			e.Message = resp.Status
		}
	}
	e.Status = resp.StatusCode
	return e
}

// call sends in (JSON, nil for none) and decodes the answer into out (nil: ignored);
// it returns the answer's index.
func (c *Client) call(ctx context.Context, method, path string, q url.Values, in, out any) (uint64, error) {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return 0, err
		}
	}
	resp, err := c.Do(ctx, method, path, q, body)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	idx, _ := strconv.ParseUint(resp.Header.Get(HeaderIndex), 10, 64)
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return idx, nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return idx, fmt.Errorf("coordinator: %s %s: bad answer: %w", method, path, err)
	}
	return idx, nil
}

// blocking is the query of a blocking read: wait up to wait for a change after index.
func blocking(index uint64, wait time.Duration) url.Values {
	q := url.Values{}
	if index > 0 {
		q.Set("index", strconv.FormatUint(index, 10))
		if wait > 0 {
			q.Set("wait", wait.String())
		}
	}
	return q
}

func esc(s string) string { return url.PathEscape(s) }

// Status is the cluster at a glance.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var s Status
	_, err := c.call(ctx, http.MethodGet, "/v1/status", nil, nil, &s)
	return &s, err
}

// Cluster says where the coordinators are.
func (c *Client) Cluster(ctx context.Context) (*Cluster, error) {
	var s Cluster
	_, err := c.call(ctx, http.MethodGet, "/v1/cluster", nil, nil, &s)
	return &s, err
}

// Submit submits a job and returns its ID.
func (c *Client) Submit(ctx context.Context, req SubmitRequest) (string, error) {
	var r SubmitResponse
	_, err := c.call(ctx, http.MethodPost, "/v1/jobs", nil, req, &r)
	return r.ID, err
}

// Job reads a job.
func (c *Client) Job(ctx context.Context, id string) (*Job, error) {
	j, _, err := c.JobWait(ctx, id, 0, 0)
	return j, err
}

// JobWait reads a job once it changed after index (blocking up to wait) and returns it
// with the index to pass next time.
func (c *Client) JobWait(ctx context.Context, id string, index uint64, wait time.Duration) (*Job, uint64, error) {
	var j Job
	idx, err := c.call(ctx, http.MethodGet, "/v1/jobs/"+esc(id), blocking(index, wait), nil, &j)
	return &j, idx, err
}

// DeletedJobs are the jobs bertnode delete removed, by ID, with their submission times.
func (c *Client) DeletedJobs(ctx context.Context) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	_, err := c.call(ctx, http.MethodGet, "/v1/deleted-jobs", nil, nil, &out)
	return out, err
}

// Jobs lists the jobs, oldest first.
func (c *Client) Jobs(ctx context.Context) ([]Job, error) {
	var js []Job
	_, err := c.call(ctx, http.MethodGet, "/v1/jobs", nil, nil, &js)
	return js, err
}

// Cancel cancels a job.
func (c *Client) Cancel(ctx context.Context, id string) error {
	_, err := c.call(ctx, http.MethodPost, "/v1/jobs/"+esc(id)+"/cancel", nil, struct{}{}, nil)
	return err
}

// DeleteJob removes an ended job, its event log, and the blobs only it referenced.
func (c *Client) DeleteJob(ctx context.Context, id string) error {
	_, err := c.call(ctx, http.MethodDelete, "/v1/jobs/"+esc(id), nil, nil, nil)
	return err
}

// Logs reads a job's event log once it changed after index (blocking up to wait).
func (c *Client) Logs(ctx context.Context, id string, index uint64, wait time.Duration) (*JobLogs, error) {
	var l JobLogs
	_, err := c.call(ctx, http.MethodGet, "/v1/jobs/"+esc(id)+"/logs", blocking(index, wait), nil, &l)
	return &l, err
}

// Progress sends a node's progress report.
func (c *Client) Progress(ctx context.Context, job string, r ProgressReport) error {
	_, err := c.call(ctx, http.MethodPost, "/v1/jobs/"+esc(job)+"/progress", nil, r, nil)
	return err
}

// Failure sends a node's failure report or confirmation.
func (c *Client) Failure(ctx context.Context, job string, r FailureReport) error {
	_, err := c.call(ctx, http.MethodPost, "/v1/jobs/"+esc(job)+"/failure", nil, r, nil)
	return err
}

// Checkpoint sends a node's checksum at a save step.
func (c *Client) Checkpoint(ctx context.Context, job string, r CheckpointReport) error {
	_, err := c.call(ctx, http.MethodPost, "/v1/jobs/"+esc(job)+"/checkpoint", nil, r, nil)
	return err
}

// Result registers an uploaded model.
func (c *Client) Result(ctx context.Context, job string, r ResultReport) error {
	_, err := c.call(ctx, http.MethodPost, "/v1/jobs/"+esc(job)+"/result", nil, r, nil)
	return err
}

// Done ends a job.
func (c *Client) Done(ctx context.Context, job string, r DoneReport) error {
	_, err := c.call(ctx, http.MethodPost, "/v1/jobs/"+esc(job)+"/done", nil, r, nil)
	return err
}

// Lease asks for a unit of predict job job to do (Unit -1: none free now).
func (c *Client) Lease(ctx context.Context, job, node string) (Lease, error) {
	var l Lease
	_, err := c.call(ctx, http.MethodPost, "/v1/jobs/"+esc(job)+"/lease", nil, LeaseRequest{Node: node}, &l)
	return l, err
}

// Outputs are predict job job's units' output blobs, in unit order ("" for a unit not
// done).
func (c *Client) Outputs(ctx context.Context, job string) ([]string, error) {
	var o JobOutputs
	_, err := c.call(ctx, http.MethodGet, "/v1/jobs/"+esc(job)+"/outputs", nil, nil, &o)
	return o.Blobs, err
}

// RenewLease extends node's lease on unit of predict job job; a 409 says the node no
// longer holds it (its output may still count: see UnitReport).
func (c *Client) RenewLease(ctx context.Context, job, node string, unit int) (Lease, error) {
	var l Lease
	_, err := c.call(ctx, http.MethodPost, "/v1/jobs/"+esc(job)+"/renew", nil, RenewRequest{Node: node, Unit: unit}, &l)
	return l, err
}

// UnitDone reports a unit of predict job job done.
func (c *Client) UnitDone(ctx context.Context, job string, r UnitReport) error {
	_, err := c.call(ctx, http.MethodPost, "/v1/jobs/"+esc(job)+"/units", nil, r, nil)
	return err
}

// Nodes lists the workers.
func (c *Client) Nodes(ctx context.Context) ([]Node, error) {
	var ns []Node
	_, err := c.call(ctx, http.MethodGet, "/v1/nodes", nil, nil, &ns)
	return ns, err
}

// Node reads a worker.
func (c *Client) Node(ctx context.Context, id string) (*Node, error) {
	n, _, err := c.NodeWait(ctx, id, 0, 0)
	return n, err
}

// NodeWait reads a worker once it changed after index (blocking up to wait) and
// returns it with the index to pass next time.
func (c *Client) NodeWait(ctx context.Context, id string, index uint64, wait time.Duration) (*Node, uint64, error) {
	var n Node
	idx, err := c.call(ctx, http.MethodGet, "/v1/nodes/"+esc(id), blocking(index, wait), nil, &n)
	return &n, idx, err
}

// Drain turns node id's drain on (no new work; it leaves its job once the job can go
// on without it) or off.
func (c *Client) Drain(ctx context.Context, id string, on bool) error {
	_, err := c.call(ctx, http.MethodPost, "/v1/nodes/"+esc(id)+"/drain", nil, NodeDrain{Drain: on}, nil)
	return err
}

// RemoveNode takes node id out of the catalog: it must be dead or left in gossip, on no
// job, and in no running job's generation (409 otherwise, saying which). Should it come
// back, it registers as a new node.
func (c *Client) RemoveNode(ctx context.Context, id string) error {
	_, err := c.call(ctx, http.MethodDelete, "/v1/nodes/"+esc(id), nil, nil, nil)
	return err
}

// RegisterNode adds or refreshes a worker.
func (c *Client) RegisterNode(ctx context.Context, r RegisterNode) error {
	_, err := c.call(ctx, http.MethodPost, "/v1/nodes", nil, r, nil)
	return err
}

// Assignment is what node is told to do, once it changed after index (blocking up to
// wait; index 0 answers at once).
func (c *Client) Assignment(ctx context.Context, node string, index uint64, wait time.Duration) (*Assignment, error) {
	var a Assignment
	_, err := c.call(ctx, http.MethodGet, "/v1/nodes/"+esc(node)+"/assignment", blocking(index, wait), nil, &a)
	return &a, err
}

// Members lists the coordinators.
func (c *Client) Members(ctx context.Context) ([]Member, error) {
	var ms []Member
	_, err := c.call(ctx, http.MethodGet, "/v1/members", nil, nil, &ms)
	return ms, err
}

// JoinMember adds a coordinator to the raft cluster.
func (c *Client) JoinMember(ctx context.Context, r JoinMember) error {
	_, err := c.call(ctx, http.MethodPost, "/v1/members", nil, r, nil)
	return err
}

// Self asks the member at the client's first address about itself (no failover).
func (c *Client) Self(ctx context.Context) (*Self, error) {
	var s Self
	_, err := c.call(ctx, http.MethodGet, "/v1/self", nil, nil, &s)
	return &s, err
}

// RemoveMember takes a coordinator out of the raft cluster.
func (c *Client) RemoveMember(ctx context.Context, id string) error {
	_, err := c.call(ctx, http.MethodDelete, "/v1/members/"+esc(id), nil, nil, nil)
	return err
}

// PutBlob uploads r's content (size bytes, -1 if unknown) to the blob store and
// returns its sha256. A reader that cannot seek is spooled to a temporary file first:
// the address of a blob is its hash, known only after reading it all.
func (c *Client) PutBlob(ctx context.Context, r io.Reader, size int64) (string, error) {
	rs, ok := r.(io.ReadSeeker)
	if !ok {
		f, err := os.CreateTemp("", "bertnode-blob-*")
		if err != nil {
			return "", err
		}
		defer os.Remove(f.Name())
		defer f.Close()
		if _, err := io.Copy(f, r); err != nil {
			return "", fmt.Errorf("put blob: spool: %w", err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return "", err
		}
		rs = f
	}
	start, err := rs.Seek(0, io.SeekCurrent)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	n, err := io.Copy(h, rs)
	if err != nil {
		return "", fmt.Errorf("put blob: %w", err)
	}
	if size >= 0 && n != size {
		return "", fmt.Errorf("put blob: read %d bytes, expected %d", n, size)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	resp, err := c.do(ctx, request{method: http.MethodPut, path: "/v1/blobs/" + sum, ctype: "application/octet-stream",
		body: func() (io.Reader, error) {
			if _, err := rs.Seek(start, io.SeekStart); err != nil {
				return nil, err
			}
			return sizedReader{io.LimitReader(rs, n), n}, nil
		}})
	if err != nil {
		return "", err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return sum, nil
}

// sizedReader tells the request its length, so the upload is not chunked.
type sizedReader struct {
	io.Reader
	n int64
}

func (s sizedReader) Len() int { return int(s.n) }

// GetBlob downloads a blob: the caller closes the reader, which fails at its end if
// the content does not hash to sha.
func (c *Client) GetBlob(ctx context.Context, sha string) (io.ReadCloser, int64, error) {
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/blobs/" + esc(sha)})
	if err != nil {
		return nil, 0, err
	}
	return &verifying{rc: resp.Body, h: sha256.New(), want: sha}, resp.ContentLength, nil
}

type verifying struct {
	rc   io.ReadCloser
	h    hash.Hash
	want string
}

func (v *verifying) Read(p []byte) (int, error) {
	n, err := v.rc.Read(p)
	v.h.Write(p[:n])
	if err == io.EOF {
		if got := hex.EncodeToString(v.h.Sum(nil)); got != v.want {
			return n, fmt.Errorf("blob %s: content hashes to %s", v.want, got)
		}
	}
	return n, err
}

func (v *verifying) Close() error { return v.rc.Close() }

// DatasetBlock fetches block i of a dataset plan; header (Accept-Encoding, say) goes
// with the request. The caller closes the answer's body.
func (c *Client) DatasetBlock(ctx context.Context, plan string, i int, header http.Header) (*http.Response, error) {
	return c.do(ctx, request{method: http.MethodGet, path: fmt.Sprintf("/v1/datasets/%s/blocks/%d", esc(plan), i), header: header})
}
