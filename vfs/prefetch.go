package vfs

import (
	"cmp"
	"context"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"github.com/litestream-go/litestream/index"
	"github.com/litestream-go/litestream/pagecache"
)

// PrefetchOptions tune read-ahead. Prefetches run in the background and
// never delay the read that triggered them; when the prefetch slots are all
// busy a new prefetch is dropped, not queued.
type PrefetchOptions struct {
	// Disable turns all read-ahead off.
	Disable bool
	// SmallFanout: an interior B-tree page with at most this many children
	// has all its leaves fetched once two of them missed (default 32).
	SmallFanout int
	// MaxSiblings bounds the pages fetched when a second interior child of
	// one page missed: its other children are then interior pages too (a
	// B-tree is balanced) and are fetched together (default 2048).
	MaxSiblings int
	// ReadAhead is how many pages a sequential scan fetches ahead of itself
	// (default 64).
	ReadAhead int
	// Concurrent bounds the prefetches in flight per replica (default 2).
	Concurrent int
	// MinLatency: B-tree prefetching (SmallFanout, MaxSiblings) runs only
	// while remote requests take at least this long on average (default
	// 2ms). It trades bytes for round trips; against a local directory a
	// round trip costs less than the prefetch, which then only steals CPU
	// from the query. Sequential read-ahead is not affected: it saves
	// requests at any latency.
	MinLatency time.Duration
}

func (o PrefetchOptions) withDefaults() PrefetchOptions {
	o.SmallFanout = positiveOr(o.SmallFanout, 32)
	o.MaxSiblings = positiveOr(o.MaxSiblings, 2048)
	o.ReadAhead = positiveOr(o.ReadAhead, 64)
	o.Concurrent = positiveOr(o.Concurrent, 2)
	o.MinLatency = cmp.Or(o.MinLatency, 2*time.Millisecond) // negative: always prefetch
	return o
}

// maxTracked bounds the child pointers the prefetcher remembers (a few
// MiB with the maps' overhead); past it the memory is dropped, as it is
// only a hint.
const maxTracked = 1 << 18

// prefetcher decides what to read ahead for one replica. Its knowledge of
// the tree (which page is whose child) is keyed by page number only: it is
// a hint that may be stale after the primary restructures a tree, which
// costs a useless fetch at worst, never a wrong page (pages are always read
// through the version being queried).
type prefetcher struct {
	r    *Replica
	opts PrefetchOptions
	sem  chan struct{}

	// Counters of prefetches issued, for Status.
	tree, ahead atomic.Int64

	mu       sync.Mutex
	children map[uint32][]uint32 // interior page -> its child pages
	parent   map[uint32]uint32   // page -> the interior page that points to it
	done     map[uint32]bool     // interior pages whose children were prefetched
	// firstMiss: interior page -> the first of its children that missed.
	firstMiss map[uint32]uint32
	tracked   int // child pointers held in children
}

func newPrefetcher(r *Replica, opts PrefetchOptions) *prefetcher {
	return &prefetcher{
		r: r, opts: opts, sem: make(chan struct{}, opts.Concurrent),
		children: make(map[uint32][]uint32), parent: make(map[uint32]uint32), done: make(map[uint32]bool), firstMiss: make(map[uint32]uint32),
	}
}

// missed is told about every page that had to be fetched from the remote.
func (p *prefetcher) missed(v *index.Version, pgno uint32, data []byte) {
	if p.opts.Disable || p.r.latency.get() < p.opts.MinLatency {
		return
	}
	kids := interiorChildren(data, pgno, v.Commit()) // nil for a leaf
	var fetch []uint32
	p.mu.Lock()
	if p.tracked+len(kids) > maxTracked {
		clear(p.children)
		clear(p.parent)
		clear(p.done)
		clear(p.firstMiss)
		p.tracked = 0
	}
	if kids != nil {
		if old, ok := p.children[pgno]; ok {
			p.tracked -= len(old)
		}
		p.children[pgno] = kids
		p.tracked += len(kids)
		for _, k := range kids {
			p.parent[k] = pgno
		}
	}
	// A page's siblings (the other children of its parent) are fetched
	// only once a second child of that parent missed: a lone point query
	// reads one child per level, which it fetches itself at once, so
	// fetching the siblings would not shorten its critical path and would
	// cost a request each (issue 11: a cold point query spends no more
	// requests than Litestream's). The second miss shows a workload that
	// spreads over the tree; from then on the level is cached. Interior
	// siblings are fetched at any fanout (up to MaxSiblings), leaves only
	// under a parent of at most SmallFanout children.
	if par, ok := p.parent[pgno]; ok && !p.done[par] {
		if first, seen := p.firstMiss[par]; !seen {
			p.firstMiss[par] = pgno
		} else if first != pgno && (kids != nil || len(p.children[par]) <= p.opts.SmallFanout) {
			p.done[par] = true
			fetch = p.children[par]
			if len(fetch) > p.opts.MaxSiblings {
				fetch = fetch[:p.opts.MaxSiblings]
			}
		}
	}
	p.mu.Unlock()
	if len(fetch) > 0 && p.fetch(v, fetch) {
		p.tree.Add(1)
	}
}

// fetch reads pgnos of v into the cache in the background, skipping pages
// that are cached already. It returns at once.
func (p *prefetcher) fetch(v *index.Version, pgnos []uint32) bool {
	select {
	case p.sem <- struct{}{}:
	default:
		return false // busy: read-ahead is an optimization, drop it
	}
	reqs := make([]pagecache.Request, 0, len(pgnos))
	for _, pgno := range pgnos {
		e, ok := v.Lookup(pgno)
		if !ok {
			continue
		}
		req := pagecache.Request{Range: e, Pgno: pgno, PageSize: v.PageSize()}
		if !p.r.fetcher.Cached(req) {
			reqs = append(reqs, req)
		}
	}
	if len(reqs) == 0 {
		<-p.sem
		return true
	}
	go func() {
		defer func() { <-p.sem }()
		defer func() { _ = recover() }() // never take the host process down for a hint
		if _, err := p.r.fetcher.ReadPages(context.Background(), reqs); err != nil {
			p.r.log.Debug("prefetch failed", "pages", len(reqs), "error", err)
		}
	}()
	return true
}

// seqState detects a sequential scan on one connection.
type seqState struct {
	last    uint32 // last page read
	run     int    // consecutive reads of last+1
	fetched uint32 // read-ahead has been issued up to this page
}

// read is told about every page a connection reads; during a sequential
// scan it keeps ReadAhead pages fetched ahead, topping up when half are used.
func (p *prefetcher) read(s *seqState, v *index.Version, pgno uint32) {
	if p.opts.Disable {
		return
	}
	// last is 0 before the first read: page 1 then page 2 (the header,
	// then a table's root) is not a scan.
	if s.last != 0 && pgno == s.last+1 {
		s.run++
	} else {
		s.run = 0
		s.fetched = 0
	}
	s.last = pgno
	if s.run < 2 {
		return
	}
	ra := uint32(p.opts.ReadAhead)
	if s.fetched >= pgno+ra/2 {
		return
	}
	from := max(pgno+1, s.fetched+1)
	to := min(pgno+ra, v.Commit())
	if from > to {
		return
	}
	pgnos := make([]uint32, 0, to-from+1)
	for n := from; n <= to; n++ {
		pgnos = append(pgnos, n)
	}
	if p.fetch(v, pgnos) {
		s.fetched = to
		p.ahead.Add(1)
	}
}

// interiorChildren returns the child page numbers of an interior B-tree
// page (table or index), or nil for any other page. Values that do not make
// sense (a corrupt or non-B-tree page) end the parse: this is only a hint.
func interiorChildren(data []byte, pgno uint32, commit uint32) []uint32 {
	hdr := 0
	if pgno == 1 {
		hdr = 100
	}
	if len(data) < hdr+12 {
		return nil
	}
	if t := data[hdr]; t != 0x02 && t != 0x05 {
		return nil
	}
	ncells := int(binary.BigEndian.Uint16(data[hdr+3:]))
	if hdr+12+2*ncells > len(data) {
		return nil
	}
	kids := make([]uint32, 0, ncells+1)
	ok := func(c uint32) bool { return c >= 1 && c <= commit }
	for i := 0; i < ncells; i++ {
		off := int(binary.BigEndian.Uint16(data[hdr+12+2*i:]))
		if off+4 > len(data) {
			return nil
		}
		c := binary.BigEndian.Uint32(data[off:])
		if !ok(c) {
			return nil
		}
		kids = append(kids, c)
	}
	if right := binary.BigEndian.Uint32(data[hdr+8:]); ok(right) {
		kids = append(kids, right)
	}
	return kids
}
