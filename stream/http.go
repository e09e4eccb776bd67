package stream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/bertnode/bertnode/api"
)

// The block answer's headers: the uncompressed bytes' CRC-32C (hex) and length, so a
// client sees a block damaged in transfer even without its plan.
const (
	HeaderCRC    = "X-Bertnode-Block-Crc32c"
	HeaderLength = "X-Bertnode-Block-Length"
)

// maxBlockBytes bounds a block a client accepts, compressed or not.
const maxBlockBytes = 1 << 30

var (
	encoder = sync.OnceValue(func() *zstd.Encoder {
		e, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault))
		return e
	})
	decoder = sync.OnceValue(func() *zstd.Decoder {
		d, _ := zstd.NewReader(nil, zstd.WithDecoderMaxMemory(maxBlockBytes))
		return d
	})
)

// BlockPath is where the coordinator serves block i of a plan.
func BlockPath(plan string, i int) string {
	return fmt.Sprintf("/v1/datasets/%s/blocks/%d", plan, i)
}

// Handler serves GET .../{plan}/blocks/{i}: block i's bytes, zstd-compressed when the
// request's Accept-Encoding allows it, with HeaderCRC and HeaderLength. open returns a
// plan and the data file's content; an error wrapping fs.ErrNotExist is a 404. When the
// content is also an io.Closer it is closed after the answer. Blocks whose bytes do not
// match the plan are refused (500), naming the plan and block.
func Handler(open func(planID string) (*Plan, io.ReaderAt, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "", "%s %s: only GET", r.Method, r.URL.Path)
			return
		}
		planID, i, err := blockRef(r)
		if err != nil {
			writeError(w, http.StatusBadRequest, "block", "%v", err)
			return
		}
		p, data, err := open(planID)
		if err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, fs.ErrNotExist) {
				code = http.StatusNotFound
			}
			writeError(w, code, "plan", "plan %s: %v", planID, err)
			return
		}
		if c, ok := data.(io.Closer); ok {
			defer c.Close()
		}
		if i >= len(p.Blocks) {
			writeError(w, http.StatusNotFound, "block", "plan %s (%s) has %d blocks, no block %d", planID, p.File, len(p.Blocks), i)
			return
		}
		blk := p.Blocks[i]
		raw := make([]byte, blk.End-blk.Start)
		if _, err := data.ReadAt(raw, blk.Start); err != nil {
			writeError(w, http.StatusInternalServerError, "", "plan %s (%s) block %d: %v", planID, p.File, i, err)
			return
		}
		if err := p.check(i, raw); err != nil {
			writeError(w, http.StatusInternalServerError, "", "plan %s: stored data does not match the plan: %v", planID, err)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Vary", "Accept-Encoding")
		h.Set(HeaderCRC, fmt.Sprintf("%08x", blk.CRC))
		h.Set(HeaderLength, strconv.Itoa(len(raw)))
		body := raw
		if acceptsZstd(r.Header.Values("Accept-Encoding")) {
			body = encoder().EncodeAll(raw, nil)
			h.Set("Content-Encoding", "zstd")
		}
		h.Set("Content-Length", strconv.Itoa(len(body)))
		if r.Method == http.MethodGet {
			w.Write(body)
		}
	})
}

// blockRef reads the plan and block from the path's last segments, .../{plan}/blocks/{i},
// wherever the handler is mounted.
func blockRef(r *http.Request) (string, int, error) {
	seg := strings.Split(strings.TrimSuffix(r.URL.Path, "/"), "/")
	if len(seg) < 3 || seg[len(seg)-2] != "blocks" || seg[len(seg)-3] == "" {
		return "", 0, fmt.Errorf("%s: want .../{plan}/blocks/{i}", r.URL.Path)
	}
	i, err := strconv.Atoi(seg[len(seg)-1])
	if err != nil || i < 0 {
		return "", 0, fmt.Errorf("block %q: want a block number", seg[len(seg)-1])
	}
	return seg[len(seg)-3], i, nil
}

// acceptsZstd reads Accept-Encoding: zstd listed, and not with q=0.
func acceptsZstd(values []string) bool {
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			name, params, _ := strings.Cut(part, ";")
			if strings.TrimSpace(name) != "zstd" {
				continue
			}
			q := strings.ReplaceAll(params, " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}

func writeError(w http.ResponseWriter, code int, field, format string, args ...any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(api.Error{Message: fmt.Sprintf(format, args...), Field: field})
}

// FetchBlock GETs a block from url (the coordinator's BlockPath), asking for zstd, and
// returns its bytes (see DecodeBlock). header is added to the request, e.g. the API
// token.
func FetchBlock(ctx context.Context, c *http.Client, url string, header http.Header) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Accept-Encoding", "zstd")
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	return DecodeBlock(resp)
}

// DecodeBlock reads a block answer and closes its body: on success the block's bytes,
// decompressed and checked against HeaderCRC and HeaderLength; otherwise an error
// with the server's message.
func DecodeBlock(resp *http.Response) (io.ReadCloser, error) {
	defer resp.Body.Close()
	what := "block"
	if resp.Request != nil {
		what = "GET " + resp.Request.URL.String()
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var e api.Error
		if json.Unmarshal(msg, &e) == nil && e.Message != "" {
			return nil, fmt.Errorf("%s: %s: %s", what, resp.Status, e.Message)
		}
		return nil, fmt.Errorf("%s: %s: %s", what, resp.Status, bytes.TrimSpace(msg))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBlockBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if len(body) > maxBlockBytes {
		return nil, fmt.Errorf("%s: more than %d bytes", what, maxBlockBytes)
	}
	switch enc := resp.Header.Get("Content-Encoding"); enc {
	case "", "identity":
	case "zstd":
		if body, err = decoder().DecodeAll(body, nil); err != nil {
			return nil, fmt.Errorf("%s: zstd: %w", what, err)
		}
	default:
		return nil, fmt.Errorf("%s: unknown Content-Encoding %q", what, enc)
	}
	if v := resp.Header.Get(HeaderLength); v != "" && v != strconv.Itoa(len(body)) {
		return nil, fmt.Errorf("%s: %d bytes, the server sent %s: truncated in transfer", what, len(body), v)
	}
	if v := resp.Header.Get(HeaderCRC); v != "" {
		if got := fmt.Sprintf("%08x", crc32.Checksum(body, castagnoli)); got != v {
			return nil, fmt.Errorf("%s: checksum %s, the server sent %s: damaged in transfer", what, got, v)
		}
	}
	return io.NopCloser(bytes.NewReader(body)), nil
}
