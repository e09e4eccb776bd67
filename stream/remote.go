package stream

import (
	"context"
	"fmt"
	"io"
)

// NewRemote reads the plan's records block by block through fetch, which returns a
// block's bytes (FetchBlock over the coordinator's API), keeping parsed blocks up to
// about cacheBytes. Each block is checked against the plan before it is parsed.
// Records' positions name the plan's file.
func NewRemote(p *Plan, fetch func(ctx context.Context, block int) (io.ReadCloser, error), cacheBytes int64) Source {
	load := func(ctx context.Context, b int) ([]byte, error) {
		rc, err := fetch(ctx, b)
		if err != nil {
			return nil, fmt.Errorf("%s: block %d: %w", p.File, b, err)
		}
		defer rc.Close()
		// One byte more than the block, to see a block that is too long.
		raw, err := io.ReadAll(io.LimitReader(rc, p.Blocks[b].End-p.Blocks[b].Start+1))
		if err != nil {
			return nil, fmt.Errorf("%s: block %d: %w", p.File, b, err)
		}
		return raw, nil
	}
	return newBlockSource(p, p.File, cacheBytes, load, nil)
}
