package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

// OpenFunc opens bytes [offset, offset+size) of an object with one request
// (no retries of its own); size 0 means "to the end". It returns the body
// and the exact number of bytes the body is to yield, which it has checked
// against what the server said it sends (a Content-Range, say), or -1 if
// the server did not say (size 0 only; the body's own end is then the end
// of the data, and a resumed read asks for the rest to the end). ctx bounds
// the request and the reading of its body.
type OpenFunc func(ctx context.Context, offset, size int64) (body io.ReadCloser, n int64, err error)

// resumeProgress is how many bytes a try must deliver for its failure not
// to count against the budget: a read that keeps advancing is worth
// continuing, one that fails early again and again is not.
const resumeProgress = 64 << 10

// OpenRange opens bytes [offset, offset+size) (size 0: to the end) with
// open and returns a reader that yields exactly those bytes or fails.
//
// Failures that retryable accepts, before or in the middle of the body, are
// retried: the read resumes with a new request for the bytes not yet
// delivered, so bytes are never delivered twice or skipped. A body that
// ends early is a failure (io.ErrUnexpectedEOF), never the end of the data.
// With AttemptTimeout set, a request that gets no response, or a body that
// delivers nothing, for that long is cut off and resumed. The budget is
// p.Attempts tries in a row that each deliver less than 64 KiB; a try that
// made progress restarts the count (and the backoff), so a large read over
// a flaky link finishes while a dead one fails after p.Attempts quick
// tries. The error OpenRange or the reader gives up with is an
// *ExhaustedError after more than one try. what names the object in logs
// and errors.
func (p Policy) OpenRange(ctx context.Context, what string, retryable func(error) bool, offset, size int64, open OpenFunc) (io.ReadCloser, error) {
	r := &rangeReader{p: p.WithDefaults(), ctx: ctx, what: what, retryable: retryable, open: open, off: offset}
	if err := r.connect(true, size); err != nil {
		return nil, err
	}
	return r, nil
}

type rangeReader struct {
	p         Policy
	ctx       context.Context
	what      string
	retryable func(error) bool
	open      OpenFunc

	off  int64 // offset of the next byte to deliver
	left int64 // bytes still to deliver (-1: unknown); set by the first open

	body     io.ReadCloser
	cancel   context.CancelFunc // ends the current try's context
	watchdog *time.Timer        // cuts off a try that makes no progress
	stalled  *atomic.Bool       // the current try's watchdog fired

	tries    int   // failed tries since the last progress
	progress int64 // bytes the current try delivered
	err      error // sticky
	closed   bool
}

// connect opens the remaining range (on the first call, size), retrying
// within the budget. The first call learns the length to deliver.
func (r *rangeReader) connect(first bool, size int64) error {
	for {
		want := max(r.left, 0) // unknown: to the end
		if first {
			want = size
		}
		body, n, err := r.try(want)
		if err == nil {
			switch {
			case n < -1 || (n == -1 && want != 0):
				body.Close()
				r.stop()
				return r.fail(fmt.Errorf("open at offset %d: invalid length %d", r.off, n))
			case first || r.left < 0:
				r.left = n
			case n != r.left:
				body.Close()
				r.stop()
				return r.fail(fmt.Errorf("resume at offset %d: the server offers %d bytes, want %d", r.off, n, r.left))
			}
			r.body, r.progress = body, 0
			return nil
		}
		if err := r.retry(err, "open"); err != nil {
			return err
		}
	}
}

// try makes one request, with the watchdog armed. Each try has its own
// flag, so a watchdog that fires late cannot mark the next try.
func (r *rangeReader) try(size int64) (io.ReadCloser, int64, error) {
	ctx, cancel := context.WithCancel(r.ctx)
	stalled := &atomic.Bool{}
	r.cancel, r.stalled = cancel, stalled
	if d := r.p.AttemptTimeout; d > 0 {
		r.watchdog = time.AfterFunc(d, func() {
			stalled.Store(true)
			cancel()
		})
	}
	body, n, err := r.open(ctx, r.off, size)
	if err != nil {
		r.stop()
		return nil, 0, err
	}
	return body, n, nil
}

// stop ends the current try's context and watchdog.
func (r *rangeReader) stop() {
	if r.watchdog != nil {
		r.watchdog.Stop()
		r.watchdog = nil
	}
	if r.cancel != nil {
		r.cancel()
		r.cancel = nil
	}
}

func (r *rangeReader) isStalled() bool { return r.stalled != nil && r.stalled.Load() }

// retry decides whether to try again after err, and waits. A nil result
// means try again; otherwise it is the error to give up with.
func (r *rangeReader) retry(err error, op string) error {
	if r.ctx.Err() != nil {
		return r.fail(err)
	}
	stalled := r.isStalled()
	if stalled {
		err = &AttemptTimeoutError{Limit: r.p.AttemptTimeout, Err: err}
	}
	if !stalled && !r.retryable(err) {
		return r.fail(err)
	}
	if r.progress > 0 && (r.progress >= resumeProgress || r.left == 0) {
		r.tries = 0
	}
	r.progress = 0
	r.tries++
	if r.tries >= r.p.Attempts {
		return r.fail(&ExhaustedError{Attempts: r.tries, Err: err})
	}
	d := r.p.Backoff(r.tries)
	r.p.Logger.Warn("remote read failed, retrying", "op", r.what, "stage", op, "offset", r.off, "left", r.left,
		"attempt", r.tries, "backoff", d, "error", err)
	if !sleep(r.ctx, d) {
		return r.fail(err)
	}
	return nil
}

func (r *rangeReader) fail(err error) error {
	r.err = fmt.Errorf("%s: %w", r.what, err)
	return r.err
}

func (r *rangeReader) Read(p []byte) (int, error) {
	for {
		if r.err != nil {
			return 0, r.err
		}
		if r.closed {
			return 0, errors.New("read after close")
		}
		if r.left == 0 {
			r.release()
			return 0, io.EOF
		}
		if r.body == nil {
			if err := r.connect(false, 0); err != nil {
				return 0, err
			}
		}
		if r.left > 0 && int64(len(p)) > r.left {
			p = p[:r.left]
		}
		n, err := r.body.Read(p)
		if n > 0 {
			r.off += int64(n)
			if r.left > 0 {
				r.left -= int64(n)
			}
			r.progress += int64(n)
			if r.watchdog != nil {
				r.watchdog.Reset(r.p.AttemptTimeout)
			}
		}
		if err == io.EOF && r.left < 0 {
			r.left = 0 // unknown length: the body's end is the data's
		}
		switch {
		case err == nil || (err == io.EOF && r.left == 0):
			if r.left == 0 {
				r.release()
			}
			if n > 0 {
				return n, nil
			}
			if err == io.EOF {
				return 0, io.EOF
			}
			continue
		case err == io.EOF:
			// The body ended before the length it promised.
			err = fmt.Errorf("body ended %d bytes short: %w", r.left, io.ErrUnexpectedEOF)
		}
		r.release()
		if rerr := r.retry(err, "body"); rerr != nil {
			return n, rerr
		}
		if n > 0 {
			return n, nil // resume on the next Read
		}
	}
}

// release closes the current body and ends its try.
func (r *rangeReader) release() {
	if r.body != nil {
		r.body.Close()
		r.body = nil
	}
	r.stop()
}

func (r *rangeReader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	var err error
	if r.body != nil {
		err = r.body.Close()
		r.body = nil
	}
	r.stop()
	return err
}
