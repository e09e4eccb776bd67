package stream

import (
	"context"
	"fmt"
	"os"
)

// OpenFile reads the plan's records from the file at path, a path every node sees.
// The file must have the plan's size; each block is checked against the plan's
// checksum when read (Plan.Verify checks the whole file). Records' positions name path.
func OpenFile(p *Plan, path string) (Source, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if st.Size() != p.Size {
		f.Close()
		return nil, fmt.Errorf("%s: %d bytes, the plan of %s says %d: not the planned file", path, st.Size(), p.File, p.Size)
	}
	load := func(_ context.Context, b int) ([]byte, error) {
		blk := p.Blocks[b]
		raw := make([]byte, blk.End-blk.Start)
		if _, err := f.ReadAt(raw, blk.Start); err != nil {
			return nil, fmt.Errorf("%s: block %d: %w", path, b, err)
		}
		return raw, nil
	}
	return newBlockSource(p, path, DefaultCacheBytes, load, f.Close), nil
}
