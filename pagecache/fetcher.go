package pagecache

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pierrec/lz4/v4"
	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/internal/flight"
	"github.com/litestream-go/litestream/internal/ltxframe"
	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/retry"
)

// Request asks for page Pgno, whose frame is the byte range Range (as
// index.Version.Lookup returns it) and whose decoded size must be PageSize.
type Request struct {
	remote.Range
	Pgno     uint32
	PageSize uint32
}

// Options tune a Fetcher. Zero values take the defaults.
type Options struct {
	// MaxGap is the most unneeded bytes between two wanted frames of one
	// file that still go into one range request (default 64 KiB: reading a
	// little extra is cheaper than another round trip).
	MaxGap int64
	// MaxRequestBytes bounds one range request (default 4 MiB), so a large
	// batch still spreads over parallel requests.
	MaxRequestBytes int64
	// Parallelism bounds this Fetcher's concurrent range requests
	// (default 8).
	Parallelism int
	// Retry is the policy for a failed range read (zero fields:
	// DefaultRetry's). It retries what retry.Retryable accepts: not a
	// missing file, a cancelled context, a failure the backend marked
	// permanent, or one the backend already retried to exhaustion.
	Retry retry.Policy
	// Logger receives retry warnings (default slog.Default()).
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.MaxGap <= 0 {
		o.MaxGap = 64 << 10
	}
	if o.MaxRequestBytes <= 0 {
		o.MaxRequestBytes = 4 << 20
	}
	if o.Parallelism <= 0 {
		o.Parallelism = 8
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Retry.Attempts <= 0 {
		o.Retry.Attempts = DefaultRetry.Attempts
	}
	if o.Retry.Base <= 0 {
		o.Retry.Base = DefaultRetry.Base
	}
	if o.Retry.Logger == nil {
		o.Retry.Logger = o.Logger
	}
	o.Retry = o.Retry.WithDefaults()
	return o
}

// DefaultRetry is the fetcher's default policy: four tries, 100ms before
// the first retry. The backends retry transient failures themselves; this
// layer covers what they do not, such as a request the VFS cut off for
// taking too long.
var DefaultRetry = retry.Policy{Attempts: 4, Base: 100 * time.Millisecond}

// Stats are a Fetcher's counters since it was created.
type Stats struct {
	Hits    int64 // pages served from the cache
	Misses  int64 // pages this Fetcher fetched
	Waits   int64 // pages that joined another caller's in-flight fetch
	Fetches int64 // range requests issued, retries included
	Bytes   int64 // bytes received from the remote
	Retries int64 // range requests retried after a failure
}

// Fetcher reads pages of one replica through a Cache. It is safe for
// concurrent use; all methods may be called from many goroutines.
type Fetcher struct {
	client remote.Client
	cache  *Cache
	space  uint64
	opts   Options
	sem    chan struct{} // bounds concurrent range requests

	mu       sync.Mutex
	inflight map[key]*call

	hits, misses, waits, fetches, bytes, retries atomic.Int64
}

// call is one page being fetched; done is closed once data or err is set.
type call struct {
	done chan struct{}
	data []byte
	err  error
}

// NewFetcher returns a Fetcher that reads from client and caches in cache.
// Several Fetchers (replicas) may share one cache: each gets its own key
// namespace.
func NewFetcher(client remote.Client, cache *Cache, opts Options) *Fetcher {
	opts = opts.withDefaults()
	return &Fetcher{
		client:   client,
		cache:    cache,
		space:    cache.spaces.Add(1),
		opts:     opts,
		sem:      make(chan struct{}, opts.Parallelism),
		inflight: make(map[key]*call),
	}
}

// Stats returns a snapshot of the counters.
func (f *Fetcher) Stats() Stats {
	return Stats{
		Hits: f.hits.Load(), Misses: f.misses.Load(), Waits: f.waits.Load(),
		Fetches: f.fetches.Load(), Bytes: f.bytes.Load(), Retries: f.retries.Load(),
	}
}

// Cache returns the cache the Fetcher reads through.
func (f *Fetcher) Cache() *Cache { return f.cache }

func (f *Fetcher) key(r Request) key {
	return key{space: f.space, file: remote.IDOf(r.File), pgno: r.Pgno}
}

// Cached reports whether a page is in the cache, without touching its
// recency (for deciding what to read ahead).
func (f *Fetcher) Cached(r Request) bool {
	return r.File != nil && f.cache.contains(f.key(r))
}

// ReadPage returns one decoded page. The returned slice is shared with the
// cache and other readers: it must not be modified.
func (f *Fetcher) ReadPage(ctx context.Context, r Request) ([]byte, error) {
	if r.File != nil {
		if b, ok := f.cache.get(f.key(r)); ok {
			f.hits.Add(1)
			return b, nil
		}
	}
	out, err := f.ReadPages(ctx, []Request{r})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// ReadPages returns the decoded pages of reqs, in order. Cached pages are
// returned at once; pages another caller is already fetching are waited for;
// the rest are fetched in as few range requests as the Options allow, in
// parallel. The returned slices are shared: they must not be modified.
func (f *Fetcher) ReadPages(ctx context.Context, reqs []Request) ([][]byte, error) {
	out := make([][]byte, len(reqs))
	// A page fetched by another caller fails with that caller's context
	// error if it gave up; then this caller fetches it itself. A few rounds
	// bound the loop if callers keep cancelling.
	todo := make([]int, len(reqs))
	for i := range todo {
		todo[i] = i
	}
	for round := 0; ; round++ {
		retry, err := f.readPages(ctx, reqs, todo, out, round < 3)
		if err != nil {
			return nil, err
		}
		if len(retry) == 0 {
			return out, nil
		}
		todo = retry
	}
}

// pending is one page of a ReadPages call that is not yet in out.
type pending struct {
	idx  int
	c    *call
	mine bool // this call fetches it (else another caller does)
}

// readPages serves reqs[i] for i in todo into out. It returns the indexes to
// try again: pages another caller was fetching when that caller's context
// ended (only if retryOthers).
func (f *Fetcher) readPages(ctx context.Context, reqs []Request, todo []int, out [][]byte, retryOthers bool) ([]int, error) {
	var wait []pending
	var mine []pending
	for _, i := range todo {
		r := reqs[i]
		if r.File == nil {
			return nil, fmt.Errorf("read page %d: no file", r.Pgno)
		}
		k := f.key(r)
		if b, ok := f.cache.get(k); ok {
			f.hits.Add(1)
			out[i] = b
			continue
		}
		f.mu.Lock()
		if c, ok := f.inflight[k]; ok {
			f.mu.Unlock()
			f.waits.Add(1)
			wait = append(wait, pending{idx: i, c: c})
			continue
		}
		// A fetch may have completed between the cache miss and the lock:
		// completers fill the cache before leaving inflight, so this second
		// look under the lock cannot miss it.
		if b, ok := f.cache.get(k); ok {
			f.mu.Unlock()
			f.hits.Add(1)
			out[i] = b
			continue
		}
		c := &call{done: make(chan struct{})}
		f.inflight[k] = c
		f.mu.Unlock()
		f.misses.Add(1)
		p := pending{idx: i, c: c, mine: true}
		mine = append(mine, p)
		wait = append(wait, p)
	}

	if len(mine) > 0 {
		f.fetch(ctx, reqs, mine)
	}

	var retry []int
	var firstErr error
	for _, p := range wait {
		select {
		case <-p.c.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if p.c.err == nil {
			out[p.idx] = p.c.data
			continue
		}
		if !p.mine && retryOthers && ctx.Err() == nil && isContextErr(p.c.err) {
			retry = append(retry, p.idx)
			continue
		}
		if firstErr == nil {
			firstErr = p.c.err
		}
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return retry, nil
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// span is one range request: frames of one file, sorted by offset.
type span struct {
	file       *ltx.FileInfo
	start, end int64
	pages      []pending
}

// fetch issues the range requests for pages this caller owns and completes
// every one of their calls (success or error) before returning, so that
// waiters never hang.
func (f *Fetcher) fetch(ctx context.Context, reqs []Request, mine []pending) {
	// Group by file, order by offset, and cut into spans.
	slices.SortFunc(mine, func(a, b pending) int {
		ra, rb := reqs[a.idx], reqs[b.idx]
		return cmp.Or(cmp.Compare(ra.File.Level, rb.File.Level), cmp.Compare(ra.File.MinTXID, rb.File.MinTXID),
			cmp.Compare(ra.File.MaxTXID, rb.File.MaxTXID), cmp.Compare(ra.Offset, rb.Offset))
	})
	var spans []*span
	var cur *span
	for _, p := range mine {
		r := reqs[p.idx]
		end := r.Offset + r.Size
		if cur != nil && remote.SameFile(cur.file, r.File) &&
			r.Offset >= cur.end && r.Offset-cur.end <= f.opts.MaxGap &&
			end-cur.start <= f.opts.MaxRequestBytes {
			cur.end = end
			cur.pages = append(cur.pages, p)
			continue
		}
		cur = &span{file: r.File, start: r.Offset, end: end, pages: []pending{p}}
		spans = append(spans, cur)
	}

	var wg sync.WaitGroup
	for _, s := range spans[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.fetchSpan(ctx, reqs, s)
		}()
	}
	f.fetchSpan(ctx, reqs, spans[0]) // the caller's goroutine does one itself
	wg.Wait()
}

// fetchSpan reads one span, decodes its frames, caches the pages and
// completes their calls.
func (f *Fetcher) fetchSpan(ctx context.Context, reqs []Request, s *span) {
	buf, err := f.readRange(ctx, s.file, s.start, s.end-s.start)
	for _, p := range s.pages {
		r := reqs[p.idx]
		var data []byte
		perr := err
		if perr == nil {
			data, perr = DecodeFrame(buf[r.Offset-s.start:r.Offset-s.start+r.Size], r.Pgno, r.PageSize)
			if perr != nil {
				perr = fmt.Errorf("%s: %w", remote.FileDesc(r.File.Level, r.File.MinTXID, r.File.MaxTXID), perr)
			}
		}
		f.complete(f.key(r), p.c, data, perr)
	}
}

// complete publishes a call's result: into the cache first, then out of
// inflight (see the second cache look in readPages), then to waiters.
func (f *Fetcher) complete(k key, c *call, data []byte, err error) {
	if err == nil {
		f.cache.add(k, data)
	}
	c.data, c.err = data, err
	flight.Finish(&f.mu, f.inflight, k, c.done)
}

// readRange reads size bytes at off of file, retrying failures by the
// Options' policy.
func (f *Fetcher) readRange(ctx context.Context, file *ltx.FileInfo, off, size int64) ([]byte, error) {
	desc := remote.FileDesc(file.Level, file.MinTXID, file.MaxTXID)
	var b []byte
	tries := 0
	err := f.opts.Retry.Do(ctx, fmt.Sprintf("read %s bytes %d+%d", desc, off, size), retry.Retryable, func(ctx context.Context) error {
		if tries++; tries > 1 {
			f.retries.Add(1)
		}
		var err error
		b, err = f.readOnce(ctx, file, off, size)
		return err
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("read %s bytes %d+%d: %w", desc, off, size, err)
	}
	return b, nil
}

func (f *Fetcher) readOnce(ctx context.Context, file *ltx.FileInfo, off, size int64) ([]byte, error) {
	select {
	case f.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-f.sem }()

	f.fetches.Add(1)
	// Through the client's OpenFile when it has one (remote.FileOpener: the
	// VFS reads small files whole and verifies their checksum before
	// serving a page).
	b, err := remote.ReadRange(ctx, f.client, remote.Range{File: file, Offset: off, Size: size})
	f.bytes.Add(int64(len(b)))
	return b, err
}

// DecodeFrame decodes one page frame (page header, then either a 4-byte size
// and an LZ4 block, or an LZ4 frame with its content checksum, as older
// Litestream and this project's writer write) and checks that it holds page
// pgno of pageSize bytes. The result is a new slice of exactly pageSize
// bytes.
func DecodeFrame(b []byte, pgno, pageSize uint32) ([]byte, error) {
	var hdr ltx.PageHeader
	if err := hdr.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("page %d: frame of %d bytes: %w", pgno, len(b), err)
	}
	if hdr.Pgno != pgno {
		return nil, fmt.Errorf("page %d: frame holds page %d", pgno, hdr.Pgno)
	}
	var data []byte
	if hdr.Flags&ltx.PageHeaderFlagSize != 0 {
		// Decode straight into a page-sized buffer: ltx.DecodePageData
		// returns a slice of a 64 KiB buffer, which a cache would then keep
		// alive whole for every 4 KiB page.
		if len(b) < ltx.PageHeaderSize+4 {
			return nil, fmt.Errorf("page %d: frame of %d bytes has no size field", pgno, len(b))
		}
		n := int(binary.BigEndian.Uint32(b[ltx.PageHeaderSize:]))
		body := b[ltx.PageHeaderSize+4:]
		if n > len(body) {
			return nil, fmt.Errorf("page %d: compressed size %d exceeds the %d-byte frame", pgno, n, len(b))
		}
		data = make([]byte, pageSize)
		m, err := lz4.UncompressBlock(body[:n], data)
		if err != nil {
			return nil, fmt.Errorf("page %d: decompress: %w", pgno, err)
		}
		if m != int(pageSize) {
			return nil, fmt.Errorf("page %d: decoded %d bytes, page size is %d", pgno, m, pageSize)
		}
		return data, nil
	}
	// The LZ4 frame encoding: ltxframe.Decode requires the frame's content
	// checksum and verifies it, so a damaged page is an error even though
	// the file's CRC-64 cannot be checked from a range read.
	data = make([]byte, pageSize)
	if err := ltxframe.Decode(data, b[ltx.PageHeaderSize:]); err != nil {
		return nil, fmt.Errorf("page %d: %w", pgno, err)
	}
	return data, nil
}
