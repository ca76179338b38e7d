package squashfs

import (
	"container/list"
	"sync"
)

// lru is a small mutex-guarded cache of decompressed blocks keyed by their position in the
// image. Values are shared between goroutines and must not be modified.
type lru struct {
	mu    sync.Mutex
	max   int
	ll    *list.List
	items map[uint64]*list.Element
}

type lruItem struct {
	key uint64
	val cachedBlock
}

// cachedBlock is a decompressed block and, for metadata, the position of the block after it.
type cachedBlock struct {
	data []byte
	next uint64
}

func newLRU(max int) *lru {
	return &lru{max: max, ll: list.New(), items: make(map[uint64]*list.Element)}
}

func (c *lru) get(key uint64) (cachedBlock, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[key]
	if !ok {
		return cachedBlock{}, false
	}
	c.ll.MoveToFront(e)
	return e.Value.(*lruItem).val, true
}

func (c *lru) put(key uint64, val cachedBlock) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.ll.MoveToFront(e)
		e.Value.(*lruItem).val = val
		return
	}
	c.items[key] = c.ll.PushFront(&lruItem{key, val})
	for c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.items, old.Value.(*lruItem).key)
	}
}
