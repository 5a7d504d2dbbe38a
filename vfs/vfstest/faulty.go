package vfstest

import (
	"context"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/remote"
)

// Request describes one request to a Faulty client, for its Hook.
type Request struct {
	Op       string // "list" or "open"
	Level    int
	MinTXID  ltx.TXID
	MaxTXID  ltx.TXID
	Seek     ltx.TXID // list
	Offset   int64    // open
	Size     int64    // open
	ReadBody bool     // the hook runs again before the body is read ("open" only)
}

// Faulty wraps a remote.Client for tests: it counts requests and bytes,
// adds a fixed latency to every request, and lets a Hook fail or stall any
// of them. Only tests use it.
type Faulty struct {
	remote.Client

	// Delay is added to every list and open request.
	Delay time.Duration
	// Hook runs before each request (and, with ReadBody set, before the
	// body of an open is read). A non-nil error fails the request; a hook
	// may also block until ctx is done to stall it. Set before use.
	Hook func(ctx context.Context, r Request) error

	Lists atomic.Int64
	Opens atomic.Int64
	Bytes atomic.Int64

	mu    sync.Mutex
	spans []span // when each request started and ended
}

// span is one request's lifetime: a list until it returned, an open until
// its body was closed.
type span struct{ start, end time.Time }

func (f *Faulty) record(start time.Time) {
	f.mu.Lock()
	f.spans = append(f.spans, span{start, time.Now()})
	f.mu.Unlock()
}

// SequentialRoundTrips returns the length of the longest chain of requests
// in which each started after the previous one ended: the round trips a
// caller waited for one after another, however many ran in parallel.
func (f *Faulty) SequentialRoundTrips() int {
	f.mu.Lock()
	spans := slices.Clone(f.spans)
	f.mu.Unlock()
	slices.SortFunc(spans, func(a, b span) int { return a.end.Compare(b.end) })
	chain := make([]int, len(spans)) // longest chain ending with spans[i]
	best := 0
	for i, s := range spans {
		chain[i] = 1
		for j := 0; j < i; j++ {
			if !spans[j].end.After(s.start) && chain[j]+1 > chain[i] {
				chain[i] = chain[j] + 1
			}
		}
		best = max(best, chain[i])
	}
	return best
}

// Requests returns lists plus opens.
func (f *Faulty) Requests() int64 { return f.Lists.Load() + f.Opens.Load() }

// Reset zeroes the counters.
func (f *Faulty) Reset() {
	f.Lists.Store(0)
	f.Opens.Store(0)
	f.Bytes.Store(0)
	f.mu.Lock()
	f.spans = nil
	f.mu.Unlock()
}

func (f *Faulty) wait(ctx context.Context) error {
	if f.Delay <= 0 {
		return nil
	}
	t := time.NewTimer(f.Delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// LTXFiles implements remote.Client.
func (f *Faulty) LTXFiles(ctx context.Context, level int, seek ltx.TXID) ([]*ltx.FileInfo, error) {
	f.Lists.Add(1)
	defer f.record(time.Now())
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	if f.Hook != nil {
		if err := f.Hook(ctx, Request{Op: "list", Level: level, Seek: seek}); err != nil {
			return nil, err
		}
	}
	return f.Client.LTXFiles(ctx, level, seek)
}

// OpenLTXFile implements remote.Client.
func (f *Faulty) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	f.Opens.Add(1)
	start := time.Now()
	if err := f.wait(ctx); err != nil {
		f.record(start)
		return nil, err
	}
	req := Request{Op: "open", Level: level, MinTXID: minTXID, MaxTXID: maxTXID, Offset: offset, Size: size}
	if f.Hook != nil {
		if err := f.Hook(ctx, req); err != nil {
			f.record(start)
			return nil, err
		}
	}
	rc, err := f.Client.OpenLTXFile(ctx, level, minTXID, maxTXID, offset, size)
	if err != nil {
		f.record(start)
		return nil, err
	}
	req.ReadBody = true
	return &countingReader{rc: rc, f: f, ctx: ctx, req: req, start: start}, nil
}

type countingReader struct {
	rc     io.ReadCloser
	f      *Faulty
	ctx    context.Context
	req    Request
	hooked bool
	start  time.Time
}

func (r *countingReader) Read(p []byte) (int, error) {
	if !r.hooked && r.f.Hook != nil {
		r.hooked = true
		if err := r.f.Hook(r.ctx, r.req); err != nil {
			return 0, err
		}
	}
	n, err := r.rc.Read(p)
	r.f.Bytes.Add(int64(n))
	return n, err
}

func (r *countingReader) Close() error {
	r.f.record(r.start)
	return r.rc.Close()
}
