package metrics

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/remote"
)

// Client wraps c so that every request it serves for database db is counted:
// requests, errors, bytes and latency per operation, files written per level
// (level 0 syncs, 1-8 compactions, 9 snapshots) and files deleted.
//
// Where c counts the requests it sends to the storage by kind
// (remote.RequestCounter: every backend does), those counts are exported as
// litestream_storage_requests_total{db,type,kind} at each scrape: the
// requests a store bills, a listing's pages, HEADs and retries included.
func (m *Metrics) Client(db string, c remote.Client) remote.Client {
	cl := &client{Client: c, m: m, db: db, typ: c.Type()}
	if _, ok := c.(remote.RequestCounter); ok {
		m.mu.Lock()
		m.counts[db] = countsSource{typ: cl.typ, c: c}
		m.mu.Unlock()
	}
	return cl
}

// countsSource is where a database's storage request counts are read.
type countsSource struct {
	typ string
	c   remote.Client
}

// RequestCounts passes the wrapped client's counts on.
func (c *client) RequestCounts() remote.RequestCounts {
	n, _ := remote.CountsOf(c.Client)
	return n
}

// LTXFilesAll lists every level through the wrapped client's one listing
// where it has one (remote.AllLister), counted as one LIST operation.
func (c *client) LTXFilesAll(ctx context.Context, exactTimes bool) ([]*ltx.FileInfo, error) {
	start := time.Now()
	files, err := remote.ListAllWith(ctx, c.Client, exactTimes)
	c.done(OpList, start, err)
	return files, err
}

type client struct {
	remote.Client
	m   *Metrics
	db  string
	typ string
}

func (c *client) done(op string, start time.Time, err error) {
	c.m.ls.operation(c.typ, op, time.Since(start), err)
	c.m.requests.WithLabelValues(c.db, c.typ, op).Inc()
	c.m.reqSeconds.WithLabelValues(c.db, c.typ, op).Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(err, context.Canceled) {
		c.m.reqErrors.WithLabelValues(c.db, c.typ, op).Inc()
	}
}

func (c *client) bytes(op string, n int64) {
	if n > 0 {
		c.m.reqBytes.WithLabelValues(c.db, c.typ, op).Add(float64(n))
		c.m.ls.bytes(c.typ, op, n)
	}
}

func (c *client) LTXFiles(ctx context.Context, level int, seek ltx.TXID) ([]*ltx.FileInfo, error) {
	start := time.Now()
	files, err := c.Client.LTXFiles(ctx, level, seek)
	c.done(OpList, start, err)
	return files, err
}

func (c *client) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	start := time.Now()
	rc, err := c.Client.OpenLTXFile(ctx, level, minTXID, maxTXID, offset, size)
	if err != nil {
		c.done(OpGet, start, err)
		return nil, err
	}
	return &countingReader{rc: rc, c: c, start: start}, nil
}

// countingReader counts a GET's body bytes and ends its timing at Close.
type countingReader struct {
	rc    io.ReadCloser
	c     *client
	start time.Time
	n     int64
	err   error
	once  sync.Once
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	r.n += int64(n)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}

func (r *countingReader) Close() error {
	err := r.rc.Close()
	r.once.Do(func() {
		r.c.bytes(OpGet, r.n)
		r.c.done(OpGet, r.start, r.err)
	})
	return err
}

func (c *client) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	start := time.Now()
	cr := &remote.CountingReader{R: r}
	info, err := c.Client.WriteLTXFile(ctx, level, minTXID, maxTXID, cr)
	c.done(OpPut, start, err)
	if err != nil {
		return info, err
	}
	n := cr.N
	if info != nil && info.Size > 0 {
		n = info.Size
	}
	c.bytes(OpPut, n)
	c.m.filesWritten.WithLabelValues(c.db, levelLabel(level)).Inc()
	switch {
	case level == remote.SnapshotLevel:
		c.m.snapshots.WithLabelValues(c.db).Inc()
	case level > remote.L0:
		c.m.compactions.WithLabelValues(c.db).Inc()
	}
	return info, nil
}

func (c *client) DeleteLTXFiles(ctx context.Context, files []*ltx.FileInfo) error {
	start := time.Now()
	err := c.Client.DeleteLTXFiles(ctx, files)
	c.done(OpDelete, start, err)
	if err == nil {
		c.m.retentionFiles.WithLabelValues(c.db).Add(float64(len(files)))
	}
	return err
}

func (c *client) DeleteAll(ctx context.Context) error {
	start := time.Now()
	err := c.Client.DeleteAll(ctx)
	c.done(OpDelete, start, err)
	return err
}
