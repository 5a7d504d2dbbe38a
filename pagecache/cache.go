// Package pagecache holds decoded database pages in memory, bounded by
// bytes, and fetches missing pages from a remote with as few requests as it
// can: neighbouring frames of one file share one range request, concurrent
// misses of one page share one request, and independent requests run in
// parallel.
//
// Pages are keyed by the identity of the LTX file that holds them
// (remote.FileID: level, MinTXID, MaxTXID) and the page number. LTX files are
// immutable (docs/ARCHITECTURE.md invariant 1), so an entry never needs
// invalidation: a newer version of a page lives in a newer file and has a
// different key.
package pagecache

import (
	"sync"
	"sync/atomic"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/litestream-go/litestream/remote"
)

// key identifies one decoded page. space separates the Fetchers (replicas)
// that share one Cache, since two replicas can hold different files with the
// same name.
type key struct {
	space uint64
	file  remote.FileID
	pgno  uint32
}

// shardMinBytes is the smallest budget worth a shard of its own; below
// shards*shardMinBytes the cache uses one shard so a small budget still
// behaves as one LRU.
const (
	shards        = 16
	shardMinBytes = 1 << 20
)

// Cache is an LRU of decoded pages bounded by the total bytes of the pages
// it holds. It is split into shards, each an exact LRU with an equal share of
// the budget, so concurrent readers rarely contend on one lock. It is safe
// for concurrent use and may be shared by several Fetchers.
type Cache struct {
	maxBytes  int64
	shards    []shard
	spaces    atomic.Uint64 // last namespace handed to a Fetcher
	evictions atomic.Int64
}

type shard struct {
	mu       sync.Mutex
	lru      *simplelru.LRU[key, []byte]
	bytes    int64
	maxBytes int64
	_        [32]byte // keep shards' locks on separate cache lines
}

// New returns a cache holding at most maxBytes of page data (map and list
// overhead, about 150 bytes per page, is not counted). A maxBytes <= 0
// caches nothing.
func New(maxBytes int64) *Cache {
	n := 1
	if maxBytes >= shards*shardMinBytes {
		n = shards
	}
	c := &Cache{maxBytes: maxBytes, shards: make([]shard, n)}
	for i := range c.shards {
		s := &c.shards[i]
		s.maxBytes = maxBytes / int64(n)
		// The count bound is never the binding one: bytes are.
		s.lru, _ = simplelru.NewLRU[key, []byte](1<<62, nil)
	}
	return c
}

func (c *Cache) shard(k key) *shard {
	if len(c.shards) == 1 {
		return &c.shards[0]
	}
	h := uint64(k.pgno)*0x9e3779b97f4a7c15 ^ uint64(k.file.MinTXID)*0xc2b2ae3d27d4eb4f ^ k.space
	h ^= h >> 29
	return &c.shards[h%uint64(len(c.shards))]
}

func (c *Cache) get(k key) ([]byte, bool) {
	s := c.shard(k)
	s.mu.Lock()
	b, ok := s.lru.Get(k)
	s.mu.Unlock()
	return b, ok
}

func (c *Cache) contains(k key) bool {
	s := c.shard(k)
	s.mu.Lock()
	ok := s.lru.Contains(k)
	s.mu.Unlock()
	return ok
}

// add stores a page unless it alone exceeds the shard's budget, evicting the
// least recently used pages until the shard fits again.
func (c *Cache) add(k key, b []byte) {
	s := c.shard(k)
	size := int64(len(b))
	if size > s.maxBytes {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lru.Contains(k) {
		return // pages of a key never change; keep the existing one
	}
	s.lru.Add(k, b)
	s.bytes += size
	for s.bytes > s.maxBytes {
		_, old, ok := s.lru.RemoveOldest()
		if !ok {
			break
		}
		s.bytes -= int64(len(old))
		c.evictions.Add(1)
	}
}

// CacheStats describes a Cache's contents.
type CacheStats struct {
	Pages     int
	Bytes     int64
	MaxBytes  int64
	Evictions int64
}

// Stats returns the cache's current size and eviction count.
func (c *Cache) Stats() CacheStats {
	st := CacheStats{MaxBytes: c.maxBytes, Evictions: c.evictions.Load()}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		st.Pages += s.lru.Len()
		st.Bytes += s.bytes
		s.mu.Unlock()
	}
	return st
}

// Purge empties the cache.
func (c *Cache) Purge() {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		s.lru.Purge()
		s.bytes = 0
		s.mu.Unlock()
	}
}
