package stream

import (
	"container/list"
	"context"
	"errors"
	"sync"
)

// cache holds parsed blocks, least recently used first out, their cost at most max in
// all. A block that is loading is loaded once, whoever asks for it meanwhile.
type cache struct {
	mu       sync.Mutex
	max      int64
	used     int64
	lru      list.List // of *block, most recent at the front
	at       map[int]*list.Element
	inflight map[int]*call
	loads    int // blocks loaded, for tests and the bench
	peak     int64
}

type call struct {
	done chan struct{}
	blk  *block
	err  error
}

func newCache(max int64) *cache {
	return &cache{max: max, at: map[int]*list.Element{}, inflight: map[int]*call{}}
}

func (c *cache) has(b int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.at[b]
	_, loading := c.inflight[b]
	return ok || loading
}

// get returns block b, loading it with load when it is neither cached nor loading.
func (c *cache) get(ctx context.Context, b int, load func(context.Context) (*block, error)) (*block, error) {
	for {
		c.mu.Lock()
		if e, ok := c.at[b]; ok {
			c.lru.MoveToFront(e)
			c.mu.Unlock()
			return e.Value.(*block), nil
		}
		if cl, ok := c.inflight[b]; ok {
			c.mu.Unlock()
			select {
			case <-cl.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if cl.err != nil && ctx.Err() == nil && cl.loaderGone() {
				continue // the loader's context ended, not ours: load it ourselves
			}
			return cl.blk, cl.err
		}
		cl := &call{done: make(chan struct{})}
		c.inflight[b] = cl
		c.loads++
		c.mu.Unlock()

		cl.blk, cl.err = load(ctx)
		c.mu.Lock()
		delete(c.inflight, b)
		if cl.err == nil {
			c.add(cl.blk)
		}
		c.mu.Unlock()
		close(cl.done)
		return cl.blk, cl.err
	}
}

// loaderGone says whether the call failed because its loader's context ended.
func (cl *call) loaderGone() bool {
	return errors.Is(cl.err, context.Canceled) || errors.Is(cl.err, context.DeadlineExceeded)
}

// add caches blk, evicting the least recently used blocks to make room; a block larger
// than the whole cache is not kept.
func (c *cache) add(blk *block) {
	if blk.cost > c.max {
		return
	}
	for c.used+blk.cost > c.max {
		e := c.lru.Back()
		old := c.lru.Remove(e).(*block)
		delete(c.at, old.index)
		c.used -= old.cost
	}
	c.at[blk.index] = c.lru.PushFront(blk)
	c.used += blk.cost
	c.peak = max(c.peak, c.used)
}
