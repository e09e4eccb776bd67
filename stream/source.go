package stream

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"sync"
	"unsafe"

	"github.com/bertnode/bertnode/shard"
)

// Source reads records of a plan by ID.
type Source interface {
	// Read fills dst[i] with record ids[i]. The records are the caller's: they share
	// nothing with the source.
	Read(ctx context.Context, ids []int32, dst []shard.Record) error
	Close() error
}

// Prefetcher is a Source that can start loading the blocks of records it will be asked
// for, e.g. the next batch while the current one trains.
type Prefetcher interface {
	Prefetch(ids []int32)
}

// DefaultCacheBytes bounds OpenFile's cache of parsed blocks.
const DefaultCacheBytes = 64 << 20

// prefetchers bounds the blocks loaded in the background at a time.
const prefetchers = 4

// blockSource reads records through a cache of parsed blocks, loading a missing block
// with load: its bytes, which it checks against the plan before parsing them.
type blockSource struct {
	p     *Plan
	file  string // the records' Pos.File
	load  func(ctx context.Context, b int) ([]byte, error)
	cache *cache

	ctx    context.Context // the prefetches'; Close cancels it
	cancel context.CancelFunc
	sem    chan struct{}
	wg     sync.WaitGroup
	close  func() error
}

func newBlockSource(p *Plan, file string, cacheBytes int64, load func(context.Context, int) ([]byte, error), close func() error) *blockSource {
	s := &blockSource{p: p, file: file, load: load, cache: newCache(cacheBytes), sem: make(chan struct{}, prefetchers), close: close}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

func (s *blockSource) Read(ctx context.Context, ids []int32, dst []shard.Record) error {
	if len(dst) < len(ids) {
		return fmt.Errorf("stream: read %d records into %d", len(ids), len(dst))
	}
	// Visit each block once, however the IDs interleave.
	order := make([]int, len(ids))
	for i, id := range ids {
		if id < 0 || int(id) >= s.p.Records {
			return fmt.Errorf("%s: no record %d (the plan has %d)", s.p.File, id, s.p.Records)
		}
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return s.p.BlockOf(int(ids[a])) - s.p.BlockOf(int(ids[b])) })
	var blk *block
	for _, i := range order {
		b := s.p.BlockOf(int(ids[i]))
		if blk == nil || blk.index != b {
			var err error
			if blk, err = s.block(ctx, b); err != nil {
				return err
			}
		}
		dst[i] = blk.recs[int(ids[i])-s.p.Blocks[b].First].Clone()
	}
	return nil
}

// Prefetch starts loading the blocks of ids that are neither cached nor loading.
func (s *blockSource) Prefetch(ids []int32) {
	var seen []int
	for _, id := range ids {
		if id < 0 || int(id) >= s.p.Records {
			continue
		}
		b := s.p.BlockOf(int(id))
		if slices.Contains(seen, b) || s.cache.has(b) {
			continue
		}
		seen = append(seen, b)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			select {
			case s.sem <- struct{}{}:
			case <-s.ctx.Done():
				return
			}
			defer func() { <-s.sem }()
			s.block(s.ctx, b) // a failure shows again when Read asks for the block
		}()
	}
}

// Close stops the prefetches and releases the source.
func (s *blockSource) Close() error {
	s.cancel()
	s.wg.Wait()
	if s.close != nil {
		return s.close()
	}
	return nil
}

func (s *blockSource) block(ctx context.Context, b int) (*block, error) {
	return s.cache.get(ctx, b, func(ctx context.Context) (*block, error) {
		raw, err := s.load(ctx, b)
		if err != nil {
			return nil, err
		}
		if err := s.p.check(b, raw); err != nil {
			return nil, err
		}
		return s.p.parse(b, s.file, raw)
	})
}

// check verifies a block's bytes against the plan.
func (p *Plan) check(b int, raw []byte) error {
	blk := p.Blocks[b]
	if want := blk.End - blk.Start; int64(len(raw)) != want {
		return fmt.Errorf("%s: block %d (bytes %d-%d): got %d bytes, the plan says %d: truncated or changed", p.File, b, blk.Start, blk.End, len(raw), want)
	}
	if crc := crc32.Checksum(raw, castagnoli); crc != blk.CRC {
		return fmt.Errorf("%s: block %d (bytes %d-%d): checksum %08x, the plan says %08x: corrupt or changed", p.File, b, blk.Start, blk.End, crc, blk.CRC)
	}
	return nil
}

// recordSize is what a parsed record costs beyond its text.
const recordSize = int64(unsafe.Sizeof(shard.Record{}))

// parse reads block b's records out of its bytes.
func (p *Plan) parse(b int, file string, raw []byte) (*block, error) {
	blk := p.Blocks[b]
	r, err := shard.OpenBytes(p.Data, file, p.Head, raw, shard.Pos{Offset: blk.Start, Index: blk.Index, Line: blk.Line})
	if err != nil {
		return nil, err
	}
	out := &block{index: b, recs: make([]shard.Record, blk.Count), cost: int64(len(raw)) + int64(blk.Count)*recordSize}
	for i := range out.recs {
		if err := r.Next(&out.recs[i]); err != nil {
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("%s: block %d (line %d): %d records, the plan says %d: has the file changed?", p.File, b, blk.Line, i, blk.Count)
			}
			return nil, err
		}
	}
	return out, nil
}

// block is one block's records, parsed.
type block struct {
	index int
	recs  []shard.Record
	cost  int64 // bytes it holds, about
}
