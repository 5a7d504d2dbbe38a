package vfs

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/remote"
)

// timeoutClient bounds every request of a remote.Client, so a stalled
// request becomes an error instead of a hung query. The error does not wrap
// context.DeadlineExceeded on purpose: the fetcher treats context errors as
// final, but a stalled request is worth retrying.
//
// It also measures how long requests take (latency), which decides whether
// prefetching is worth its bytes.
type timeoutClient struct {
	remote.Client
	timeout time.Duration
	latency latencyEWMA
}

// latencyEWMA is a moving average of request durations (open to close),
// in nanoseconds. Updates may race and lose a sample; it is an estimate.
type latencyEWMA struct{ ns atomic.Int64 }

func (l *latencyEWMA) add(d time.Duration) {
	old := l.ns.Load()
	if old == 0 {
		l.ns.Store(int64(d))
		return
	}
	l.ns.Store(old + (int64(d)-old)/8)
}

func (l *latencyEWMA) get() time.Duration { return time.Duration(l.ns.Load()) }

// errStalled is the error of a request that exceeded the timeout.
type errStalled struct {
	op      string
	timeout time.Duration
}

func (e *errStalled) Error() string {
	return fmt.Sprintf("%s: no answer within %s", e.op, e.timeout)
}

// Timeout makes retry.Transient (and net.Error-style checks) see a stall
// as worth retrying.
func (e *errStalled) Timeout() bool { return true }

func (c *timeoutClient) LTXFiles(ctx context.Context, level int, seek ltx.TXID) ([]*ltx.FileInfo, error) {
	tctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	infos, err := c.Client.LTXFiles(tctx, level, seek)
	if err != nil && ctx.Err() == nil && tctx.Err() != nil {
		return nil, &errStalled{op: fmt.Sprintf("list level %d of %s replica (%v)", level, c.Type(), err), timeout: c.timeout}
	}
	return infos, err
}

// LTXFilesAll lists every level (in one listing where the backend can)
// under one timeout.
func (c *timeoutClient) LTXFilesAll(ctx context.Context, exactTimes bool) ([]*ltx.FileInfo, error) {
	tctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	infos, err := remote.ListAllWith(tctx, c.Client, exactTimes)
	if err != nil && ctx.Err() == nil && tctx.Err() != nil {
		return nil, &errStalled{op: fmt.Sprintf("list %s replica (%v)", c.Type(), err), timeout: c.timeout}
	}
	return infos, err
}

// RequestCounts passes the backend's counts on.
func (c *timeoutClient) RequestCounts() remote.RequestCounts {
	n, _ := remote.CountsOf(c.Client)
	return n
}

func (c *timeoutClient) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	start := time.Now()
	tctx, cancel := context.WithTimeout(ctx, c.timeout)
	rc, err := c.Client.OpenLTXFile(tctx, level, minTXID, maxTXID, offset, size)
	if err != nil {
		stalled := ctx.Err() == nil && tctx.Err() != nil
		cancel()
		if stalled {
			return nil, &errStalled{op: fmt.Sprintf("open %s (%v)", remote.FileDesc(level, minTXID, maxTXID), err), timeout: c.timeout}
		}
		return nil, err
	}
	return &timeoutReader{rc: rc, ctx: ctx, tctx: tctx, cancel: cancel, timeout: c.timeout, start: start, latency: &c.latency}, nil
}

// timeoutReader keeps the request's deadline while the body is read and
// releases it on Close.
type timeoutReader struct {
	rc      io.ReadCloser
	ctx     context.Context // the caller's
	tctx    context.Context
	cancel  context.CancelFunc
	timeout time.Duration
	start   time.Time
	latency *latencyEWMA
}

func (r *timeoutReader) Read(p []byte) (int, error) {
	if r.tctx.Err() != nil && r.ctx.Err() == nil {
		return 0, &errStalled{op: "read body", timeout: r.timeout}
	}
	n, err := r.rc.Read(p)
	if err != nil && err != io.EOF && r.ctx.Err() == nil && r.tctx.Err() != nil {
		return n, &errStalled{op: fmt.Sprintf("read body (%v)", err), timeout: r.timeout}
	}
	return n, err
}

func (r *timeoutReader) Close() error {
	defer r.cancel()
	r.latency.add(time.Since(r.start))
	return r.rc.Close()
}
