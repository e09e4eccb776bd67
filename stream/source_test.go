package stream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/bertnode/bertnode/shard"
)

func mustOpen(t testing.TB, p *Plan, path string) Source {
	t.Helper()
	src, err := OpenFile(p, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// readAll reads records 0..N-1 through src, in batches of 13.
func readAll(t testing.TB, src Source, p *Plan) []shard.Record {
	t.Helper()
	ids := make([]int32, p.Records)
	for i := range ids {
		ids[i] = int32(i)
	}
	out := make([]shard.Record, p.Records)
	for pos := 0; pos < len(ids); pos += 13 {
		b := Batch(ids, pos, 13)
		if err := src.Read(context.Background(), b, out[pos:]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// blockServer serves plans and their files over loopback HTTP with Handler, mounted
// where the coordinator mounts it.
type blockServer struct {
	*httptest.Server
	mu    sync.Mutex
	plans map[string]*Plan
	files map[string]string
	gets  int
}

func newBlockServer(t testing.TB) *blockServer {
	s := &blockServer{plans: map[string]*Plan{}, files: map[string]string{}}
	h := Handler(func(id string) (*Plan, io.ReaderAt, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.gets++
		p, ok := s.plans[id]
		if !ok {
			return nil, nil, fs.ErrNotExist
		}
		f, err := os.Open(s.files[id])
		return p, f, err
	})
	mux := http.NewServeMux()
	mux.Handle("GET /v1/datasets/{plan}/blocks/{i}", h)
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func (s *blockServer) add(id string, p *Plan, path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.plans[id], s.files[id] = p, path
}

// remote is NewRemote over the server, the node's wiring.
func (s *blockServer) remote(t testing.TB, id string, p *Plan, cacheBytes int64) Source {
	src := NewRemote(p, func(ctx context.Context, b int) (io.ReadCloser, error) {
		return FetchBlock(ctx, s.Client(), s.URL+BlockPath(id, b), http.Header{"Authorization": {"Bearer x"}})
	}, cacheBytes)
	t.Cleanup(func() { src.Close() })
	return src
}

// TestSourcesReadShardsRecords: every record of every format, read through OpenFile
// and through NewRemote over HTTP, is exactly what shard reads, positions included.
func TestSourcesReadShardsRecords(t *testing.T) {
	srv := newBlockServer(t)
	syn := synthetic(t, 300)
	for k, d := range append(syn, realDatasets(t)...) {
		sizes := []int{1, 5, 64}
		if k >= len(syn) {
			sizes = []int{3, 256} // real files are larger
		}
		for _, br := range sizes {
			p := build(t, d, Options{BlockRecords: br, EvalSplit: 0.1})
			want := shardRecords(t, d.spec, d.path)
			if got := readAll(t, mustOpen(t, p, d.path), p); !reflect.DeepEqual(got, want) {
				diff(t, d.name+" OpenFile", got, want)
			}
			id := fmt.Sprintf("%s-%d", d.name, br)
			srv.add(id, p, d.path)
			if got := readAll(t, srv.remote(t, id, p, 1<<20), p); !reflect.DeepEqual(got, want) {
				diff(t, d.name+" NewRemote", got, want)
			}
		}
	}
}

func diff(t *testing.T, what string, got, want []shard.Record) {
	t.Helper()
	for i := range min(len(got), len(want)) {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("%s: record %d\n got %+v\nwant %+v", what, i, got[i], want[i])
		}
	}
	t.Fatalf("%s: %d records, want %d", what, len(got), len(want))
}

// TestReadSkipsBadRecordsAgain: a block spanning a bad record skips it when parsed.
func TestReadSkipsBadRecordsAgain(t *testing.T) {
	path := writeFile(t, "bad.txt", "0 fine\nnolabel\n1 also fine\n\n2 third\nbad\n")
	d := dataset{"skip", shard.Spec{Format: shard.LabelText, Delimiter: " ", SkipBadRecords: true}, path}
	p := build(t, d, Options{BlockRecords: 2})
	if got, want := readAll(t, mustOpen(t, p, path), p), shardRecords(t, d.spec, path); !reflect.DeepEqual(got, want) {
		diff(t, "skip_bad_records", got, want)
	}
}

// TestReadInOrder reads an epoch's pieces in the order's random access pattern.
func TestReadInOrder(t *testing.T) {
	d := synthetic(t, 500)[5] // squad: blocks split paragraphs
	p := build(t, d, Options{BlockRecords: 16, EvalSplit: 0.1})
	all := shardRecords(t, d.spec, d.path)
	src := mustOpen(t, p, d.path)
	order := p.Order(3, 1, 4)
	for pos := 0; pos < len(order); pos += 24 {
		batch := Batch(order, pos, 24)
		piece := Piece(batch, 3, 1)
		src.(Prefetcher).Prefetch(Piece(Batch(order, pos+len(batch), 24), 3, 1))
		got := make([]shard.Record, len(piece))
		if err := src.Read(context.Background(), piece, got); err != nil {
			t.Fatal(err)
		}
		for i, id := range piece {
			if !reflect.DeepEqual(got[i], all[id]) {
				t.Fatalf("record %d: got %+v, want %+v", id, got[i], all[id])
			}
		}
	}
}

// TestCacheBound: the cache never holds more than its bound, and with room for a
// window's blocks an epoch fetches each block once.
func TestCacheBound(t *testing.T) {
	d := synthetic(t, 2000)[2]
	p := build(t, d, Options{BlockRecords: 32})
	raw, err := os.ReadFile(d.path)
	if err != nil {
		t.Fatal(err)
	}
	var biggest int64
	for _, b := range p.Blocks {
		biggest = max(biggest, b.End-b.Start+int64(b.Count)*recordSize)
	}
	for _, c := range []struct {
		window    int
		cache     int64
		exactOnce bool
	}{
		{4, 8 * biggest, true}, // a batch across two windows needs both
		{4, 2 * biggest, false},
		{1, biggest / 2, false}, // no block fits: nothing is cached
	} {
		var mu sync.Mutex
		fetches := map[int]int{}
		src := NewRemote(p, func(_ context.Context, b int) (io.ReadCloser, error) {
			mu.Lock()
			fetches[b]++
			mu.Unlock()
			return io.NopCloser(bytes.NewReader(raw[p.Blocks[b].Start:p.Blocks[b].End])), nil
		}, c.cache).(*blockSource)
		order := p.Order(1, 0, c.window)
		dst := make([]shard.Record, 48)
		for pos := 0; pos < len(order); pos += 48 {
			b := Batch(order, pos, 48)
			if err := src.Read(context.Background(), b, dst); err != nil {
				t.Fatal(err)
			}
			if src.cache.used > c.cache {
				t.Fatalf("cache of %d holds %d bytes", c.cache, src.cache.used)
			}
		}
		total := 0
		for _, n := range fetches {
			total += n
		}
		if len(fetches) != len(p.Blocks) || (c.exactOnce && total != len(p.Blocks)) {
			t.Fatalf("window %d, cache %d: %d fetches of %d blocks (%d distinct)", c.window, c.cache, total, len(p.Blocks), len(fetches))
		}
		t.Logf("window %d, cache %d bytes (peak %d): %d fetches for %d blocks", c.window, c.cache, src.cache.peak, total, len(p.Blocks))
		src.Close()
	}
}

// TestCorruptBlocks: a block that is truncated, too long or altered, at rest or in
// transfer, is an error naming the file and block.
func TestCorruptBlocks(t *testing.T) {
	d := synthetic(t, 100)[0] // csv
	p := build(t, d, Options{BlockRecords: 10})
	raw, err := os.ReadFile(d.path)
	if err != nil {
		t.Fatal(err)
	}
	blk := p.Blocks[3]
	ids := []int32{int32(blk.First)}
	dst := make([]shard.Record, 1)
	serve := func(b []byte) Source {
		return NewRemote(p, func(context.Context, int) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }, 1<<20)
	}
	flipped := bytes.Clone(raw[blk.Start:blk.End])
	flipped[5] ^= 1
	for _, c := range []struct {
		name string
		src  Source
		want string
	}{
		{"truncated", serve(raw[blk.Start : blk.End-3]), "block 3 (bytes"},
		{"too long", serve(raw[blk.Start : blk.End+1]), "the plan says"},
		{"altered", serve(flipped), "checksum"},
	} {
		err := c.src.Read(context.Background(), ids, dst)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "d.csv") {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
		c.src.Close()
	}

	// A file changed after planning: another size fails OpenFile; the same size fails
	// the block's checksum.
	changed := writeFile(t, "d.csv", string(raw)+"\n")
	if _, err := OpenFile(p, changed); err == nil || !strings.Contains(err.Error(), "not the planned file") {
		t.Errorf("longer file: got %v", err)
	}
	alt := bytes.Clone(raw)
	alt[blk.Start+2] ^= 1
	changed = writeFile(t, "d.csv", string(alt))
	if err := mustOpen(t, p, changed).Read(context.Background(), ids, dst); err == nil || !strings.Contains(err.Error(), "block 3") {
		t.Errorf("altered file: got %v", err)
	}
	if err := p.Verify(bytes.NewReader(alt)); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Errorf("Verify of an altered file: got %v", err)
	}
	if err := p.Verify(bytes.NewReader(raw)); err != nil {
		t.Error(err)
	}

	// Through HTTP: the server refuses a stored file that does not match the plan.
	srv := newBlockServer(t)
	srv.add("bad", p, changed)
	err = srv.remote(t, "bad", p, 1<<20).Read(context.Background(), ids, dst)
	if err == nil || !strings.Contains(err.Error(), "500") || !strings.Contains(err.Error(), "plan bad: stored data does not match") {
		t.Errorf("server with an altered file: got %v", err)
	}
	// And the client sees a block damaged in transfer by the headers alone.
	srv.add("good", p, d.path)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := http.Get(srv.URL + r.URL.Path) // no Accept-Encoding: plain bytes
		if err != nil {
			t.Error(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body[len(body)/2] ^= 0x20
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.Write(body)
	}))
	defer proxy.Close()
	_, err = FetchBlock(context.Background(), proxy.Client(), proxy.URL+BlockPath("good", 3), nil)
	if err == nil || !strings.Contains(err.Error(), "damaged in transfer") {
		t.Errorf("damaged in transfer: got %v", err)
	}
}

func TestHandlerAnswers(t *testing.T) {
	d := synthetic(t, 100)[3]
	p := build(t, d, Options{BlockRecords: 10})
	srv := newBlockServer(t)
	srv.add("p1", p, d.path)
	raw, _ := os.ReadFile(d.path)
	get := func(path, enc string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if enc != "" {
			req.Header.Set("Accept-Encoding", enc)
		}
		resp, err := srv.Client().Transport.RoundTrip(req) // no transparent gzip
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for _, c := range []struct {
		path, enc string
		code      int
		want      string // Content-Encoding, or the error's text
	}{
		{BlockPath("p1", 2), "gzip, zstd", 200, "zstd"},
		{BlockPath("p1", 2), "zstd;q=0, gzip", 200, ""},
		{BlockPath("p1", 2), "", 200, ""},
		{BlockPath("nope", 2), "", 404, "plan nope"},
		{BlockPath("p1", 10), "", 404, "has 10 blocks, no block 10"},
		{"/v1/datasets/p1/blocks/x", "", 400, `block "x"`},
	} {
		resp := get(c.path, c.enc)
		if resp.StatusCode != c.code {
			t.Fatalf("%s: %s", c.path, resp.Status)
		}
		if c.code != 200 {
			_, err := DecodeBlock(resp)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: got %v, want %q", c.path, err, c.want)
			}
			continue
		}
		if got := resp.Header.Get("Content-Encoding"); got != c.want {
			t.Errorf("%s with %q: Content-Encoding %q, want %q", c.path, c.enc, got, c.want)
		}
		rc, err := DecodeBlock(resp)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		if b := p.Blocks[2]; !bytes.Equal(got, raw[b.Start:b.End]) {
			t.Errorf("%s with %q: wrong bytes", c.path, c.enc)
		}
	}
}

// TestRemoteConcurrentReads: readers sharing a source agree, each block loaded once.
func TestRemoteConcurrentReads(t *testing.T) {
	d := synthetic(t, 400)[1]
	p := build(t, d, Options{BlockRecords: 16})
	srv := newBlockServer(t)
	srv.add("c", p, d.path)
	src := srv.remote(t, "c", p, 1<<30)
	want := shardRecords(t, d.spec, d.path)
	order := p.Order(9, 0, 2)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for r := range 4 {
		wg.Go(func() {
			for pos := 0; pos < len(order); pos += 20 {
				piece := Piece(Batch(order, pos, 20), 4, r)
				got := make([]shard.Record, len(piece))
				if err := src.Read(context.Background(), piece, got); err != nil {
					errs <- err
					return
				}
				for i, id := range piece {
					if !reflect.DeepEqual(got[i], want[id]) {
						errs <- fmt.Errorf("record %d differs", id)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := src.(*blockSource).cache.loads; n != len(p.Blocks) {
		t.Fatalf("%d loads of %d blocks", n, len(p.Blocks))
	}
	if err := src.Read(context.Background(), []int32{int32(p.Records)}, make([]shard.Record, 1)); err == nil || !errors.Is(err, err) || !strings.Contains(err.Error(), "no record") {
		t.Fatalf("record out of range: %v", err)
	}
}

// A regression plan reads its labels as scores: one that is not a number is a bad
// record, skipped again when a node reads the blocks through the plan (which carries
// Scores in its JSON), and the outputs are named, not the scores collected.
func TestRegressionPlan(t *testing.T) {
	path := writeFile(t, "sts.jsonl", `{"text":"a","label":4.5}`+"\n"+`{"text":"b","label":"x"}`+"\n"+`{"text":"c","label":0.25}`+"\n"+`{"text":"d","label":3}`+"\n")
	spec := shard.Spec{SkipBadRecords: true}
	opts := Options{BlockRecords: 2, Task: "regression"}
	p, err := Build(path, spec, opts)
	if err != nil {
		t.Fatal(err)
	}
	if p.Records != 3 || p.Bad.Count != 1 || !strings.Contains(p.Bad.String(), `sts.jsonl:2 (byte 25): field "label": want a number`) {
		t.Fatalf("%d records, bad %v", p.Records, p.Bad)
	}
	if !reflect.DeepEqual(p.Labels, []string{"LABEL_0"}) {
		t.Fatalf("labels %q", p.Labels)
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var q Plan
	if err := json.Unmarshal(b, &q); err != nil || !q.Data.Scores {
		t.Fatalf("through JSON: scores %v, %v", q.Data.Scores, err)
	}
	var got []string
	for _, r := range readAll(t, mustOpen(t, &q, path), &q) {
		got = append(got, r.Labels...)
	}
	if !reflect.DeepEqual(got, []string{"4.5", "0.25", "3"}) {
		t.Fatalf("read %q", got)
	}
	// Without skip_bad_records the bad score fails the plan at its line.
	if _, err := Build(path, shard.Spec{}, opts); err == nil || !strings.Contains(err.Error(), "sts.jsonl:2 ") {
		t.Fatalf("got %v", err)
	}
}
