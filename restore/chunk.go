package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/retry"
)

// progress counts bytes read and reports them, throttled, to fn.
type progress struct {
	fn    func(done, total int64)
	total int64
	done  atomic.Int64

	mu       sync.Mutex
	reported int64
}

func (p *progress) add(n int64) {
	d := p.done.Add(n)
	if p.fn == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if d > p.reported && (d-p.reported >= progressEveryMB || d >= p.total) {
		p.reported = d
		p.fn(d, p.total)
	}
}

// chunkReader reads a whole file as consecutive range requests of
// restoreChunk bytes, with up to restoreAhead of them in flight, so that one
// large file is not limited to one connection's throughput. Chunks are
// delivered in order.
type chunkReader struct {
	ctx    context.Context
	cancel context.CancelFunc
	c      remote.Client
	info   *ltx.FileInfo
	prog   *progress
	log    *slog.Logger

	next    int64 // offset of the next chunk to request
	pending []chan chunkResult
	cur     []byte // unread part of the current chunk
	curBuf  []byte // the current chunk's whole buffer, reused when consumed
	err     error

	// Consumed chunk buffers are reused: allocating (and zeroing) a fresh
	// buffer per chunk costs as much CPU as copying the data.
	mu   sync.Mutex
	bufs [][]byte

	// whole is used instead when the file's size is unknown.
	whole io.ReadCloser
}

type chunkResult struct {
	b   []byte
	err error
}

// newChunkReader reads info whole, adding the bytes it delivers to prog.
func newChunkReader(ctx context.Context, c remote.Client, info *ltx.FileInfo, prog *progress, log *slog.Logger) *chunkReader {
	ctx, cancel := context.WithCancel(ctx)
	return &chunkReader{ctx: ctx, cancel: cancel, c: c, info: info, prog: prog, log: log}
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if r.info.Size <= 0 {
		return r.readWhole(p)
	}
	for len(r.cur) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		for len(r.pending) < restoreAhead && r.next < r.info.Size {
			r.pending = append(r.pending, r.fetch(r.next, min(restoreChunk, r.info.Size-r.next)))
			r.next += restoreChunk
		}
		if len(r.pending) == 0 {
			return 0, io.EOF
		}
		res := <-r.pending[0]
		r.pending = r.pending[1:]
		if res.err != nil {
			r.err = res.err
			return 0, r.err
		}
		if r.curBuf != nil {
			r.putBuf(r.curBuf)
		}
		r.cur, r.curBuf = res.b, res.b
		// Progress counts chunks as they are consumed.
		r.prog.add(int64(len(res.b)))
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// fetch reads one chunk in the background, retrying transient failures.
func (r *chunkReader) fetch(off, size int64) chan chunkResult {
	ch := make(chan chunkResult, 1)
	go func() {
		backoff := restoreBackoff
		for attempt := 0; ; attempt++ {
			b, err := r.readChunk(off, size)
			if err == nil {
				ch <- chunkResult{b: b}
				return
			}
			// A failure the backend marked permanent (a 403) or already
			// retried to exhaustion is not retried again here.
			if r.ctx.Err() != nil || errors.Is(err, remote.ErrNotExist) || !retry.Retryable(err) || attempt >= restoreRetries {
				ch <- chunkResult{err: err}
				return
			}
			r.log.Warn("restore read failed, retrying", "file", remote.FileDesc(r.info.Level, r.info.MinTXID, r.info.MaxTXID),
				"offset", off, "size", size, "attempt", attempt+1, "error", err)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-r.ctx.Done():
				t.Stop()
				ch <- chunkResult{err: r.ctx.Err()}
				return
			}
			backoff *= 2
		}
	}()
	return ch
}

func (r *chunkReader) readChunk(off, size int64) ([]byte, error) {
	buf := r.getBuf(size)
	b, err := remote.ReadRangeInto(r.ctx, r.c, remote.Range{File: r.info, Offset: off, Size: size}, buf)
	if err != nil {
		r.putBuf(buf)
		return nil, err
	}
	return b, nil
}

// getBuf returns a buffer of size bytes (at most restoreChunk), reusing a
// consumed chunk's buffer when there is one.
func (r *chunkReader) getBuf(size int64) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.bufs); n > 0 && int64(cap(r.bufs[n-1])) >= size {
		b := r.bufs[n-1]
		r.bufs = r.bufs[:n-1]
		return b[:size]
	}
	return make([]byte, size)
}

func (r *chunkReader) putBuf(b []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bufs = append(r.bufs, b[:cap(b)])
}

func (r *chunkReader) readWhole(p []byte) (int, error) {
	if r.whole == nil {
		rc, err := r.c.OpenLTXFile(r.ctx, r.info.Level, r.info.MinTXID, r.info.MaxTXID, 0, 0)
		if err != nil {
			return 0, fmt.Errorf("open: %w", err)
		}
		r.whole = rc
	}
	n, err := r.whole.Read(p)
	r.prog.add(int64(n))
	return n, err
}

// Close stops chunk reads still in flight.
func (r *chunkReader) Close() error {
	r.cancel()
	if r.whole != nil {
		return r.whole.Close()
	}
	return nil
}
